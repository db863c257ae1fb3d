"""Web chat: the person's browser page. Outbound messages are pushed live to that page (SSE)."""

from __future__ import annotations

import math
import re
import uuid

from bots.base import BadPayload, Choice, clean_text, InboundMessage, Link, Location, OutboundMessage, SendResult, Venue
from words.catalogue import direction

MAX_TEXT = 16_000  # a long story is taken whole (the flows offer a person for it); Telegram's 4,096 is its own
MAX_CLIENT_ID = 48  # the message's dedupe key "<identity>:<client_id>" fits its 128 characters


def valid_client_id(value: object) -> bool:
    """The page's id of one message (its retry key): 8 to 48 ASCII letters, digits, - or _."""
    return isinstance(value, str) and 8 <= len(value) <= MAX_CLIENT_ID and value.isascii() \
        and value.replace("-", "").replace("_", "").isalnum()


class WebChatChannel:
    name = "webchat"

    def __init__(self, notifier) -> None:
        self.notifier = notifier

    def parse(self, data: object, user_id: str) -> InboundMessage:
        """One message posted by the page: {client_id, text | choice | location: [lat, lon]}.
        `user_id` is the person's identity, read by the route from the identity cookie (never from
        the body: a "uid" the body may carry is ignored)."""
        if not isinstance(data, dict):
            raise BadPayload("expected a JSON object")
        client_id = data.get("client_id")
        if not valid_client_id(client_id):
            raise BadPayload("missing or invalid client_id (8 to 48 letters, digits, - or _)")
        uid = user_id
        text, choice, location = data.get("text"), data.get("choice"), data.get("location")
        if isinstance(text, str):
            text = clean_text(text)  # before the emptiness check: "\x00" is empty
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise BadPayload("text must be a non-empty string")
        if isinstance(text, str) and len(text) > MAX_TEXT:
            raise BadPayload(f"text longer than {MAX_TEXT} characters")
        if choice is not None and (not isinstance(choice, str) or len(choice) > 64):
            raise BadPayload("invalid choice")
        point = None
        if location is not None:
            if not (isinstance(location, list) and len(location) == 2
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in location)):
                raise BadPayload("location must be [latitude, longitude]")
            point = Location(location[0], location[1])  # refuses NaN, 400 digits, out of range
        if text is None and choice is None and point is None:
            raise BadPayload("nothing to send: text, choice or location is required")
        locale = data.get("locale") if isinstance(data.get("locale"), str) else None
        # The page's ?src= (an outreach source's code): kept only when it has a code's shape.
        src = data.get("src")
        source = src if isinstance(src, str) and 4 <= len(src) <= 16 and src.isascii() and src.isalnum() else None
        return InboundMessage(channel=self.name, user_id=uid, external_id=f"{uid}:{client_id}",
                              text=text, choice=choice, location=point, locale=locale, source=source)

    async def send(self, user_id: str, message: OutboundMessage, *, account: str | None = None) -> SendResult:
        platform_id = uuid.uuid4().hex
        await self.notifier.publish(f"webchat:{user_id}", shown(platform_id, message))
        return SendResult(platform_message_id=platform_id)

    async def close(self) -> None:
        pass


def shown(platform_id: str, message: OutboundMessage) -> dict:
    """What the page renders for one outbound message (the history says the same: `shown_row`)."""
    return {
        "id": platform_id,
        "from": "bot",
        "text": message.text,
        "speaker": speaker_of(message.text),
        "locale": locale_of(message.locale) or "fr",
        "dir": direction(locale_of(message.locale) or "fr"),
        "choices": [[c.value, c.title] for c in message.choices],
        "links": safe_links([[link.title, link.url] for link in message.links]),
        "venue": venue_of(message.venue),
        "request_location": message.request_location,
        "audio": message.attachment.media_id if message.attachment and message.attachment.media_id else None,
    }


def shown_row(platform_id: str, text: str | None, payload: dict | None) -> dict:
    """One stored outbound message (its outbox payload) as the page renders it, like `shown`."""
    payload = payload if isinstance(payload, dict) else {}
    venue = payload.get("venue")
    try:
        place = Venue(**venue) if isinstance(venue, dict) else None
    except TypeError:  # a payload of another shape: no venue rather than a 500
        place = None
    return {
        "id": platform_id,
        "from": "bot",
        "text": text or "",
        "speaker": speaker_of(text),
        "locale": locale_of(payload.get("locale")) or "fr",  # like conversations.deliver.outbound_of
        "dir": direction(locale_of(payload.get("locale")) or "fr"),
        "choices": payload.get("choices", []),
        "links": safe_links(payload.get("links")),
        "venue": venue_of(place),
        "request_location": bool(payload.get("request_location", False)),
        "audio": payload.get("media_id"),
    }


def label_of(payload: dict | None, titles: dict[str, str]) -> str:
    """The words of a tap, shown back in the history: the payload's `label` (the button's title,
    kept by receive), else the title the last question's button had, else the value."""
    payload = payload if isinstance(payload, dict) else {}
    label, choice = payload.get("label"), payload.get("choice")
    if isinstance(label, str) and label.strip():
        return label
    if isinstance(choice, str):
        return titles.get(choice, choice)
    return ""


# A worker's reply is signed on its last line ("\n— Camille", handoff.transitions.signed): the page
# then says "Camille dit :" before it rather than "Allervers dit :".
_SIGNATURE = re.compile(r"\n— ([^\W\d_][\w' .-]{0,39})\Z")


def speaker_of(text: str | None) -> str | None:
    """The first name of the worker who signed `text`, or None (the bot speaks)."""
    found = _SIGNATURE.search(text or "")
    return found.group(1).strip() if found else None


def locale_of(value: object) -> str | None:
    """The language of a message's text for the page's lang attribute: a short tag, or None."""
    if isinstance(value, str) and 2 <= len(value) <= 8 and value.replace("-", "").isascii() \
            and value.replace("-", "").isalpha():
        return value.lower()
    return None


def safe_links(links: object) -> list[list[str]]:
    """[[title, url], ...] that a page may render as a link: https:// or tel: only, with words."""
    kept = []
    for item in links if isinstance(links, (list, tuple)) else ():
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            continue
        title, url = item[0].strip(), item[1].strip()
        if title and (re.fullmatch(r"https://[^\s<>\"'\\]{1,2000}", url) or re.fullmatch(r"tel:\+?[0-9 .\-]{2,20}", url)):
            kept.append([title, url])
    return kept


def venue_of(venue: Venue | None) -> dict | None:
    """A place as the page shows it: its title and address, and an OpenStreetMap link built from the
    coordinates (the page words it "🗺️ Voir sur la carte")."""
    if venue is None:
        return None
    try:
        lat, lon = float(venue.latitude), float(venue.longitude)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {"latitude": lat, "longitude": lon, "title": str(venue.title or ""), "address": str(venue.address or ""),
            "url": f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=17/{lat:.6f}/{lon:.6f}"}


__all__ = ["WebChatChannel", "Choice", "Link", "shown", "shown_row", "label_of", "speaker_of", "valid_client_id"]
