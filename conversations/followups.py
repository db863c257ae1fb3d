"""What follows a stored inbound message, outside its transaction: fetch its file, release held messages."""

from __future__ import annotations

from conversations.media import schedule_fetch
from conversations.window import release_held


async def after_receive(rt, inbound, received) -> None:
    if received.duplicate or received.message_id is None:
        return
    if inbound.channel == "whatsapp":
        await release_held(rt, inbound.channel, inbound.user_id)  # the window is open again
    if inbound.attachment is not None and inbound.attachment.platform_id:
        schedule_fetch(rt, received.message_id)
