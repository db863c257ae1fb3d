"""A press on an old question is told apart from a press on the current one (conversations.deliver
.stale_press, from the platform id the press carries), through the real app and the fake Bot API."""

from __future__ import annotations

import json

from sqlalchemy import select

from conversations.deliver import stale_press
from conversations.models import OUTBOUND, Message
from tests.conftest import app_client, eventually
from tests.fakes.telegram_api import FakeTelegram, callback_update, text_update

SECRET = "stale-secret"
CHAT = 6363


async def _post(client, update: dict) -> dict:
    """The webhook's answer (its body carries the answerCallbackQuery of a press)."""
    response = await client.post("/bots/telegram/webhook", content=json.dumps(update), headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    assert response.status_code == 200
    return response.json()


def _settings(settings_for, fake):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET, telegram_api_base=fake.base_url)


async def _consent_asked(client, fake) -> list:
    """/start, then the consent question's sends (the fake's calls)."""
    await _post(client, text_update("/start", chat_id=CHAT))
    return await eventually(lambda: [c for c in fake.sent_messages(CHAT) if "Êtes-vous d'accord" in c.params["text"]])


async def test_an_answered_question_is_stale_the_current_one_is_not(settings_for):
    with FakeTelegram() as fake:
        async with app_client(_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            consent = await _consent_asked(client, fake)
            await _post(client, callback_update("oui", chat_id=CHAT, message_id=consent[-1].result["message_id"]))
            menu = await eventually(lambda: [c for c in fake.sent_messages(CHAT) if "Que voulez-vous faire" in c.params["text"]])
            await rt.drain(timeout=15)
            channel = rt.channels["telegram"]
            old = channel.parse(json.dumps(callback_update("oui", chat_id=CHAT, message=fake.message(
                CHAT, consent[-1].result["message_id"]))).encode())[0]
            current = channel.parse(json.dumps(callback_update("lieux", chat_id=CHAT, message=fake.message(
                CHAT, menu[-1].result["message_id"]))).encode())[0]
            async with rt.sessionmaker() as session:
                conversation = (await session.execute(select(Message.conversation_id).where(
                    Message.direction == OUTBOUND))).scalar()
                assert await stale_press(session, conversation, old.reply_to) is True
                assert await stale_press(session, conversation, current.reply_to) is False
                assert await stale_press(session, conversation, "424242") is False  # not ours: the benefit of the doubt
                assert await stale_press(session, conversation, None) is False
            assert await channel.settle_press(old.callback_id, accepted=False)
            assert "reply_markup" not in fake.message(CHAT, consent[-1].result["message_id"])


async def test_through_the_webhook_an_old_press_is_told_and_changes_nothing_a_current_one_shows_its_tap(
        settings_for):
    with FakeTelegram() as fake:
        async with app_client(_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            consent = await _consent_asked(client, fake)
            consent_id = consent[-1].result["message_id"]
            # The current question: accepted, answered with no notice, then shown as tapped, keyboard gone.
            answer = await _post(client, callback_update("oui", chat_id=CHAT, message=fake.message(CHAT, consent_id)))
            assert answer["method"] == "answerCallbackQuery" and not answer.get("text")
            await eventually(lambda: [c for c in fake.sent_messages(CHAT) if "Que voulez-vous faire" in c.params["text"]])
            edits = await eventually(lambda: fake.calls("editMessageText") + fake.calls("editMessageReplyMarkup"))
            assert edits[0].params["message_id"] == consent_id
            if edits[0].method == "editMessageText":
                assert edits[0].params["text"].endswith("✔️ ✅ D'accord")
            await rt.drain(timeout=15)
            async with rt.sessionmaker() as session:
                before = (await session.execute(select(Message.id).where(Message.direction == OUTBOUND))).all()

            # The same old button pressed again: "cette question est passée", nothing said, nothing moved.
            answer = await _post(client, callback_update("oui", chat_id=CHAT, message=fake.message(CHAT, consent_id)))
            assert answer["method"] == "answerCallbackQuery"
            assert answer["text"] == "⏳ Cette question est passée."
            await rt.drain(timeout=15)
            async with rt.sessionmaker() as session:
                after = (await session.execute(select(Message.id).where(Message.direction == OUTBOUND))).all()
                pressed = (await session.execute(select(Message).where(Message.direction == "in")
                                                 .order_by(Message.id.desc()))).scalars().first()
            assert after == before and pressed.payload["choice"] == "oui"  # stored, not handled


async def test_a_press_reads_its_conversations_recent_rows_once(settings_for):
    """The button's label (kept with the inbound row) and the old-question check both come from
    the conversation's recent outbound rows: one query per batch of presses, not two per press."""
    from sqlalchemy import event

    with FakeTelegram() as fake:
        async with app_client(_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            consent = await _consent_asked(client, fake)
            await rt.drain(timeout=15)
            statements: list[str] = []

            def seen(conn, cursor, statement, parameters, context, executemany):
                statements.append(" ".join(statement.split()))

            event.listen(rt.engine.sync_engine, "before_cursor_execute", seen)
            try:
                press = callback_update("oui", chat_id=CHAT, message=fake.message(CHAT, consent[-1].result["message_id"]))
                await _post(client, press)
            finally:
                event.remove(rt.engine.sync_engine, "before_cursor_execute", seen)
            # the conversation's newest outbound rows, read before the bot's turn
            reads = [s for s in statements if s.startswith("SELECT") and "FROM messages" in s
                     and "messages.direction" in s and ("ORDER BY messages.id DESC" in s or "row_number" in s.lower())]
            assert len(reads) == 1, reads
            async with rt.sessionmaker() as session:
                stored = (await session.execute(select(Message.payload).where(
                    Message.direction == "in", Message.external_id == str(press["update_id"])))).scalar()
            assert stored.get("label"), stored  # the button's words, kept for the timelines
            menu = await eventually(lambda: [c for c in fake.sent_messages(CHAT) if "Que voulez-vous faire" in c.params["text"]])
            assert menu
