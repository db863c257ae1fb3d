"""Web chat: the person's browser page. Outbound messages are pushed live to that page (SSE)."""

from __future__ import annotations

import uuid

from bots.base import BadPayload, Choice, clean_text, InboundMessage, Location, OutboundMessage, SendResult

MAX_TEXT = 4096
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
    """What the page renders for one outbound message."""
    return {
        "id": platform_id,
        "from": "bot",
        "text": message.text,
        "choices": [[c.value, c.title] for c in message.choices],
        "request_location": message.request_location,
        "audio": message.attachment.media_id if message.attachment and message.attachment.media_id else None,
    }


__all__ = ["WebChatChannel", "Choice", "shown", "valid_client_id"]
