"""Web chat: the person's browser page. Outbound messages are pushed live to that page (SSE)."""

from __future__ import annotations

import re
import uuid

from bots.base import BadPayload, Choice, clean_text, InboundMessage, Location, OutboundMessage, SendResult

MAX_TEXT = 4096
_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what the page makes: hex of a random UUID


def valid_page_id(value: object) -> bool:
    """An identity or message id made by the page: 8-64 ASCII letters, digits, '-' or '_'."""
    return isinstance(value, str) and _PAGE_ID.fullmatch(value) is not None


class WebChatChannel:
    name = "webchat"

    def __init__(self, notifier) -> None:
        self.notifier = notifier

    def parse(self, data: object) -> InboundMessage:
        """One message posted by the page: {uid, client_id, text | choice | location: [lat, lon]}."""
        if not isinstance(data, dict):
            raise BadPayload("expected a JSON object")
        uid, client_id = data.get("uid"), data.get("client_id")
        for name, value in (("uid", uid), ("client_id", client_id)):
            if not valid_page_id(value):
                raise BadPayload(f"missing or invalid {name}")
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
        return InboundMessage(channel=self.name, user_id=uid, external_id=f"{uid}:{client_id}",
                              text=text, choice=choice, location=point, locale=locale)

    async def send(self, user_id: str, message: OutboundMessage, *, account: str | None = None) -> SendResult:
        platform_id = uuid.uuid4().hex
        await self.notifier.publish(f"webchat:{user_id}", shown(platform_id, message))
        return SendResult(platform_message_id=platform_id)

    async def close(self) -> None:
        pass


def shown(platform_id: str, message: OutboundMessage) -> dict:
    """What the page renders for one outbound message."""
    return {
        "id": platform_id,
        "from": "bot",
        "text": message.text,
        "choices": [[c.value, c.title] for c in message.choices],
        "request_location": message.request_location,
        "audio": message.attachment.media_id if message.attachment and message.attachment.media_id else None,
    }


__all__ = ["WebChatChannel", "Choice", "shown"]
