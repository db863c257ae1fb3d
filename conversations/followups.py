"""What follows a stored inbound message, outside its transaction: fetch its file.

(Held WhatsApp messages are released inside the inbound's own transaction: conversations.window.release_held.)"""

from __future__ import annotations

from conversations.media import schedule_fetch


async def after_receive(rt, inbound, received) -> None:
    if received.duplicate or received.message_id is None:
        return
    if inbound.attachment is not None and inbound.attachment.platform_id:
        schedule_fetch(rt, received.message_id)
