"""A PlacesAnswer as short plain French messages with emoji signposts (📍 🕒 ☎️)."""

from __future__ import annotations

from directory.finder import PlacesAnswer

MAX_MESSAGE_CHARS = 4000


def distance_text(kilometres: float) -> str:
    if kilometres < 1:
        return f"{max(int(round(kilometres * 1000, -1)), 10)} m"
    if kilometres < 10:
        return f"{kilometres:.1f} km".replace(".", ",")
    return f"{kilometres:.0f} km"


def _emergency_block(answer: PlacesAnswer) -> list[str]:
    if not answer.emergency_numbers:
        return []
    lines = ["🆘 En cas d'urgence (numéros gratuits, 24 h/24) :"]
    lines += [f"📞 {entry.text}" for entry in answer.emergency_numbers]
    return ["\n".join(lines)]


def _heading(answer: PlacesAnswer) -> str:
    where = f"près de {answer.commune.name}" if answer.commune else "près de vous"
    if answer.from_position and answer.commune:
        where = f"près de votre position ({answer.commune.name})"
    need = f" pour « {answer.need_label} »" if answer.need_label else ""
    radius = f"{answer.radius_km:g}"
    if answer.offset:
        return f"D'autres lieux{need} {where}, à moins de {radius} km :"
    if answer.widened:
        return f"Peu de lieux tout près : j'ai élargi la recherche à {radius} km.\nVoici des lieux{need} {where} :"
    return f"Voici des lieux{need} {where}, à moins de {radius} km :"


OLD_DATA_YEARS = 3  # data older than this: "informations de 2019, à vérifier"


def _old_data(card) -> str | None:
    from datetime import date

    if not card.date_maj or len(card.date_maj) < 4 or not card.date_maj[:4].isdigit():
        return None
    year = int(card.date_maj[:4])
    return f"ℹ️ informations de {year}, à vérifier" if date.today().year - year >= OLD_DATA_YEARS else None


def _place_block(number: int | None, card) -> str:
    where = card.where_text if card.approximate_location and card.where_text else distance_text(card.distance_km)
    lines = [f"{number}. {card.name} — {where}" if number is not None else f"{card.name} — {where}"]
    if card.address:
        lines.append(f"📍 {card.address}")
    lines.append(f"🕒 {card.hours_text}")
    if card.phone:
        lines.append(f"☎️ {card.phone}")
    old = _old_data(card)
    if old:
        lines.append(old)
    lines.append(f"🗺️ {card.map_link}")
    return "\n".join(lines)


def _numbers_block(answer: PlacesAnswer) -> list[str]:
    from directory.texts import text

    if not answer.numbers:
        return []
    return ["\n".join([text("numbers_heading")] + [f"• {line}" for line in answer.numbers])]


def _fallback_blocks(answer: PlacesAnswer) -> list[str]:
    from directory.texts import text

    blocks = [answer.honest or ""]
    if answer.mairie is not None:
        blocks.append(text("mairie_first") + "\n" + _place_block(None, answer.mairie))
    blocks += _numbers_block(answer)
    if answer.places:
        blocks.append(text("farther"))
        blocks += [_place_block(index, card) for index, card in enumerate(answer.places, start=1)]
    blocks.append(text("worker_now"))
    return blocks


def render_lines(answer: PlacesAnswer) -> list[str]:
    """The answer as blocks of text (one block per place), in reading order."""
    blocks = _emergency_block(answer)
    if answer.status == "choose_commune":
        blocks.append(answer.message or "Laquelle est la vôtre ?")
        blocks.append("\n".join(f"• {commune.label}" for commune in answer.candidates))
        return blocks
    if answer.status == "unknown_place":
        blocks.append(answer.message or "Je ne trouve pas ce lieu.")
        return blocks
    if answer.numbers_only:
        blocks.append(answer.message or "")
        blocks += ["\n".join(f"📞 {line}" for line in answer.numbers)]
        return blocks
    if answer.fallback:
        return blocks + _fallback_blocks(answer)
    if not answer.places:
        blocks.append(answer.message or "Je n'ai trouvé aucun lieu.")
        return blocks
    blocks.append(_heading(answer))
    blocks += [_place_block(answer.offset + index, card) for index, card in enumerate(answer.places, start=1)]
    if answer.has_more:
        blocks.append("D'autres lieux existent plus loin : demandez « voir plus ».")
    if answer.offset == 0:
        blocks += _numbers_block(answer)
    return blocks


def render_answer(answer: PlacesAnswer, max_chars: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Messages of at most `max_chars` characters, blocks never split unless one is too long."""
    messages: list[str] = []
    current = ""
    for block in render_lines(answer):
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
