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


def _place_block(number: int, card) -> str:
    distance = distance_text(card.distance_km)
    if card.approximate_location:
        distance = f"environ {distance}"
    lines = [f"{number}. {card.name} — {distance}"]
    if card.address:
        lines.append(f"📍 {card.address}")
    lines.append(f"🕒 {card.hours_text}")
    if card.phone:
        lines.append(f"☎️ {card.phone}")
    lines.append(f"🗺️ {card.map_link}")
    return "\n".join(lines)


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
    if not answer.places:
        blocks.append(answer.message or "Je n'ai trouvé aucun lieu.")
        return blocks
    blocks.append(_heading(answer))
    blocks += [_place_block(answer.offset + index, card) for index, card in enumerate(answer.places, start=1)]
    if answer.has_more:
        blocks.append("D'autres lieux existent plus loin : demandez « voir plus ».")
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
