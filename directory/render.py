"""A PlacesAnswer as short plain messages with emoji signposts (📍 🕒 ☎️), in the person's language.

Each place is its own message (`Part`): its text is words only (name, what it offers, address,
distance, opening hours in words, the phone number as digits a phone makes tappable); the map,
the phone and the website are `Link`s with words ("🗺️ Voir sur la carte", "📞 Appeler" tel:+33…,
"🌐 Site"); a place with a real position also carries a `Venue` (Telegram sendVenue, WhatsApp
location message). A place without coordinates keeps "à Bordeaux (adresse à vérifier)", a map
link that searches its address, and no venue. Emergency numbers are tel: links too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from bots.base import Link, Venue
from bots.phones import display, tel_url
from directory.finder import PlacesAnswer
from words.catalogue import language_of, room

WORDS = room(__file__)
MAX_MESSAGE_CHARS = 4000
MAX_SERVICES = 3  # "what it offers": the first service names
OLD_DATA_YEARS = 3  # data older than this: "informations de 2019, à vérifier"
_MAP_POSITION = re.compile(r"[?&]mlat=(-?\d+(?:\.\d+)?)&mlon=(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Part:
    """One message of the answer: words, links as words, maybe a place to open in a maps app."""

    text: str
    links: tuple[Link, ...] = ()
    venue: Venue | None = None

    def to_dict(self) -> dict:
        """The outbox payload's shape ("links": [[title, url]], "venue": {...})."""
        found = {"text": self.text, "links": [[link.title, link.url] for link in self.links]}
        if self.venue is not None:
            v = self.venue
            found["venue"] = {"latitude": v.latitude, "longitude": v.longitude, "title": v.title, "address": v.address}
        return found


@dataclass(frozen=True)
class PlaceDetails:
    """What the card does not carry, from the directory's own record of the place."""

    latitude: float | None = None
    longitude: float | None = None
    hours: str | None = None  # the OSM expression, said again in the person's language
    services: tuple[str, ...] = ()
    website: str | None = None


Lookup = Callable[[str], "PlaceDetails | None"]


@dataclass
class _Context:
    locale: str
    now: datetime | None
    lookup: Lookup | None
    today: date = field(default_factory=date.today)
    kinds: tuple[str, ...] = ()  # a need matched by kinds of service: its services said first


def _offers(services: tuple[str, ...], kinds: tuple[str, ...]) -> list[str]:
    """What a place offers, the services of the asked kinds first ("Douches, Laverie, …" for
    « Se laver, toilettes »), at most MAX_SERVICES."""
    if kinds:
        from directory.needs import service_kinds

        wanted = set(kinds)
        services = tuple(sorted(services, key=lambda name: not (service_kinds(name) & wanted)))
    return list(services[:MAX_SERVICES])


def _w(key: str, context: _Context, **values) -> str:
    return WORDS.text(key, context.locale, **values)


def _number(value: float, locale: str, digits: int) -> str:
    from babel.numbers import format_decimal

    return format_decimal(round(value, digits), format="#,##0" + ("." + "0" * digits if digits else ""),
                          locale=language_of(locale))


def distance_text(kilometres: float, locale: str | None = "fr") -> str:
    """"à 350 m", "à 1,2 km", "à 14 km" (never below 10 m: positions are not that precise)."""
    locale = language_of(locale)
    if kilometres < 1:
        return WORDS.text("places.distance_m", locale, n=max(int(round(kilometres * 1000, -1)), 10))
    if kilometres < 10:
        return WORDS.text("places.distance_km", locale, n=_number(kilometres, locale, 1))
    return WORDS.text("places.distance_km", locale, n=_number(kilometres, locale, 0))


def _emergency(answer: PlacesAnswer, context: _Context) -> list[Part]:
    if not answer.emergency_numbers:
        return []
    lines = [_w("emergency.heading", context)]
    lines += [f"📞 {entry.text_in(context.locale)}" for entry in answer.emergency_numbers]
    links = tuple(Link(entry.link_title(context.locale), f"tel:{entry.number}")
                  for entry in answer.emergency_numbers if entry.how != "SMS")
    return [Part("\n".join(lines), links)]


def need_label(need: str | None, locale: str | None, french: str | None = None) -> str | None:
    """A need's name in the person's language (Need.name), else its French name (a thématique)."""
    from directory.needs import NEEDS_BY_ID

    found = NEEDS_BY_ID.get(need) if need else None
    return found.name(locale) if found is not None else french


def _said(answer: PlacesAnswer, context: _Context, words: tuple[str, dict] | None, french: str | None,
          default: str | None = None) -> str:
    """The finder's message in the person's language (its key and values), else its French."""
    if words is None:
        return french or (_w(default, context) if default else "")
    key, values = words
    if "need" in values:
        values = {**values, "need": need_label(values["need"], context.locale, answer.need_label) or ""}
    return _w(key, context, **values)


def _heading(answer: PlacesAnswer, context: _Context) -> str:
    commune = answer.commune.name if answer.commune else None
    if answer.from_position and commune:
        where = _w("places.near_position", context, commune=commune)
    elif commune:
        where = _w("places.near_commune", context, commune=commune)
    else:
        where = _w("places.near_you", context)
    radius = f"{answer.radius_km:g}"
    key = "places.heading_more" if answer.offset else "places.heading"
    if not answer.need_label:
        key += "_any"
    line = _w(key, context, need=need_label(answer.need, context.locale, answer.need_label) or "", where=where,
              radius=radius)
    if answer.widened and not answer.offset:
        return _w("places.widened", context, radius=radius) + "\n" + line
    return line


def _old_data(card, context: _Context) -> str | None:
    if not card.date_maj or len(card.date_maj) < 4 or not card.date_maj[:4].isdigit():
        return None
    year = int(card.date_maj[:4])
    return _w("places.old_data", context, year=year) if context.today.year - year >= OLD_DATA_YEARS else None


def _position(card, details: PlaceDetails | None) -> tuple[float, float] | None:
    """A real position (never for a place sitting on its commune's centre)."""
    if card.approximate_location:
        return None
    if details is not None and details.latitude is not None and details.longitude is not None:
        return details.latitude, details.longitude
    found = _MAP_POSITION.search(card.map_link or "")
    return (float(found.group(1)), float(found.group(2))) if found else None


def _hours(card, details: PlaceDetails | None, context: _Context) -> str:
    if details is not None and details.hours is not None and context.locale != "fr":
        from directory.hours import describe

        return describe(details.hours, context.now, context.locale).text
    if details is not None and not details.hours and context.locale != "fr":
        return _w("hours.unknown", context)
    return card.hours_text  # French, as the finder said it


def place_part(number: int | None, card, context: _Context) -> Part:
    details = context.lookup(card.id) if context.lookup is not None else None
    if card.approximate_location and card.where_text:
        where = card.where_text if context.locale == "fr" else \
            _w("approximate_place", context, commune=_commune_of(card.where_text))
    else:
        where = distance_text(card.distance_km, context.locale)
    lines = [f"{number}. {card.name} — {where}" if number is not None else f"{card.name} — {where}"]
    if details is not None and details.services:
        lines.append(_w("places.offers", context, services=", ".join(_offers(details.services, context.kinds))))
    if card.address:
        lines.append(f"📍 {card.address}")
    lines.append(f"🕒 {_hours(card, details, context)}")
    links = [Link(_w("places.map", context), card.map_link)] if card.map_link else []
    phone = tel_url(card.phone)
    if phone:
        lines.append(f"☎️ {display(phone)}")  # digits the phone makes tappable, and the button
        links.append(Link(_w("places.call", context), phone))
    elif card.phone:
        lines.append(f"☎️ {card.phone}")
    if details is not None and details.website and details.website.startswith(("https://", "http://")):
        links.append(Link(_w("places.site", context), details.website))
    old = _old_data(card, context)
    if old:
        lines.append(old)
    position = _position(card, details)
    venue = None
    if position is not None:
        venue = Venue(position[0], position[1], card.name[:100], (card.address or where)[:200])
    return Part("\n".join(lines), tuple(links), venue)


def _commune_of(where_text: str) -> str:
    """"à Bordeaux (adresse à vérifier)" -> "Bordeaux" (the finder words it in French)."""
    found = re.fullmatch(r"à (.+) \(adresse à vérifier\)", where_text)
    return found.group(1) if found else where_text


def _numbers(answer: PlacesAnswer, context: _Context) -> list[Part]:
    from directory.texts import numbers

    lines = numbers(answer.need, context.locale) if answer.need else []
    if not lines or context.locale == "fr":
        lines = list(answer.numbers)
    if not lines:
        return []
    return [Part("\n".join([_w("numbers_heading", context)] + [f"• {line}" for line in lines]), _tel_links(lines))]


def _tel_links(lines: list[str]) -> tuple[Link, ...]:
    """"3237 — pharmacie de garde" -> a 📞 3237 link (numbers that open a line: "15 — SAMU")."""
    links = []
    for line in lines:
        head = re.match(r"([\d ]{2,14}) — ", line) or re.search(r": ((?:0 ?\d|\d{2})[\d ]{4,14}\d)\b", line)
        url = tel_url(head.group(1)) if head else None
        if url and all(url != link.url for link in links):
            links.append(Link(f"📞 {display(url)}", url))
    return tuple(links)


def _fallback(answer: PlacesAnswer, context: _Context) -> list[Part]:
    parts = [Part(_said(answer, context, answer.honest_words, answer.honest))] if answer.honest else []
    if answer.mairie is not None:
        mairie = place_part(None, answer.mairie, context)
        parts.append(Part(_w("mairie_first", context) + "\n" + mairie.text, mairie.links, mairie.venue))
    parts += _numbers(answer, context)
    if answer.places:
        parts.append(Part(_w("farther", context)))
        parts += [place_part(index, card, context) for index, card in enumerate(answer.places, start=1)]
    parts.append(Part(_w("worker_now", context)))
    return parts


def render_parts(answer: PlacesAnswer, locale: str | None = "fr", *, now: datetime | None = None,
                 lookup: Lookup | None = None, more_hint: bool = True) -> list[Part]:
    """The answer as messages, in reading order: emergency numbers, the heading with the first
    place, one message per place, the useful numbers. `lookup(id)`: the directory's details of a
    place (position, hours expression, services). `more_hint`: say "demandez « voir plus »" (the
    chat flow offers a button instead)."""
    context = _Context(language_of(locale), now, lookup,
                       kinds=answer.resolved.kinds if answer.resolved is not None else ())
    parts = _emergency(answer, context)
    if answer.status == "choose_commune":
        parts.append(Part(_said(answer, context, answer.words, answer.message, "places.which_commune")))
        parts.append(Part("\n".join(f"• {commune.label}" for commune in answer.candidates)))
        return parts
    if answer.status == "unknown_place":
        return parts + [Part(_said(answer, context, answer.words, answer.message, "places.unknown_place"))]
    if answer.numbers_only:
        lines = list(answer.numbers)
        parts.append(Part(_said(answer, context, answer.words, answer.message) + "\n" + "\n".join(f"📞 {line}" for line in lines),
                          _tel_links(lines)))
        return parts
    if answer.fallback:
        return parts + _fallback(answer, context)
    if not answer.places:
        return parts + [Part(_said(answer, context, answer.words, answer.message, "places.none"))]
    places = [place_part(answer.offset + index, card, context) for index, card in enumerate(answer.places, start=1)]
    first = places[0]
    places[0] = Part(_heading(answer, context) + "\n\n" + first.text, first.links, first.venue)
    parts += places
    if answer.has_more and more_hint:
        parts.append(Part(_w("places.more_hint", context)))
    if answer.offset == 0:
        parts += _numbers(answer, context)
    return parts


def render_lines(answer: PlacesAnswer, locale: str | None = "fr", **options) -> list[str]:
    """The answer as blocks of text (one block per place), in reading order."""
    return [part.text for part in render_parts(answer, locale, **options)]


def render_answer(answer: PlacesAnswer, max_chars: int = MAX_MESSAGE_CHARS, locale: str | None = "fr") -> list[str]:
    """Messages of at most `max_chars` characters, blocks never split unless one is too long (CLI)."""
    messages: list[str] = []
    current = ""
    for block in render_lines(answer, locale):
        block = block[:max_chars]
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) <= max_chars:
            current = candidate
        else:
            messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages
