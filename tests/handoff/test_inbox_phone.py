"""The inbox at phone size, over HTTP: the summary in the flows' words, the timeline in pages (1,000
messages), the live region apart from the reply box and the actions, the lists with the history and
their search (organisations kept apart), times in Paris words, unknown events by their label."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from conversations.models import Conversation, Event, Message
from conversations.store import log_event
from handoff.inbox_view import paris_day_bounds, paris_time
from tests.conftest import app_client, csrf_of, login
from tests.conversations.test_commands import consented
from tests.handoff.seeding import organisation_id, seed_conversations, seed_timeline, worker_id
from tests.handoff.test_inbox import add_worker

CAMILLE = ("camille@demo.allervers.fr", "allervers-demo")


def test_times_in_paris_words():
    now = datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc)  # 16 h in Paris (winter: UTC+1)
    assert paris_time(datetime(2026, 12, 3, 13, 5, tzinfo=timezone.utc), now) == "aujourd'hui 14 h 05"
    assert paris_time(datetime(2026, 12, 2, 8, 30, tzinfo=timezone.utc), now) == "hier 9 h 30"
    assert paris_time(datetime(2026, 12, 1, 13, 5, tzinfo=timezone.utc), now) == "1 déc. 14 h 05"
    assert paris_time(datetime(2025, 7, 14, 20, 0, tzinfo=timezone.utc), now) == "14 juil. 2025 22 h 00"  # summer: UTC+2
    # 23 h 30 UTC on the 2nd is already the 3rd in Paris
    assert paris_time(datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc), now) == "aujourd'hui 0 h 30"
    assert paris_time(datetime(2026, 12, 3, 13, 5), now) == "aujourd'hui 14 h 05"  # naive: UTC
    assert paris_time("2026-12-03T13:05:00+00:00", now) == "aujourd'hui 14 h 05"
    start, end = paris_day_bounds(datetime(2026, 12, 3).date())
    assert start == datetime(2026, 12, 2, 23, 0, tzinfo=timezone.utc) and end - start == timedelta(hours=24)


async def test_summary_in_the_flows_words_and_the_page_around_the_live_region(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send(choice="parler")
        await person.send(choice="logement")
        await person.send("J'ai reçu une lettre de mon bailleur.")
        assert (await login(client, *CAMILLE)).status_code == 303
        async with client.app.state.rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        summary = page.split('id="summary"')[1].split("</section>")[0]
        # labels and button labels, not keys and codes
        assert "<dt>Sujet</dt><dd>🏠 Logement</dd>" in summary
        assert "consent_answer" not in summary and "menu_choice" not in summary and ">logement<" not in summary
        assert ('<dt>Langue</dt><dd><span aria-hidden="true">🌐</span> <span lang="fr" dir="ltr">Français</span></dd>'
                in summary and "Discussion sur le site" in summary)
        # folded behind « Ce que la personne a dit »
        assert re.search(r'<details class="panel transcript" id="transcript">\s*<summary>🧾 Ce que la personne a dit', page)
        # the hooks' places, the reply box and the actions sheet outside the live region
        live = page.split('id="conversation"')[1].split('id="notify-feed"')[0]
        assert "J&#39;ai reçu une lettre de mon bailleur." in live
        assert 'id="reply-text"' not in live and "actions-sheet" not in live and 'name="outcome"' not in live
        assert 'id="reply-text"' in page and '<dialog id="actions-sheet"' in page
        for outcome in ("answered", "oriented", "appointment", "claim_started", "no_answer", "other"):
            assert f'<option value="{outcome}">' in page
        assert "aujourd&#39;hui" in live and "UTC" not in live  # times in Paris words
        partial = (await client.get(f"/inbox/conversations/{conversation_id}/timeline")).text
        assert 'id="timeline"' in partial and "reply-text" not in partial and "<dialog" not in partial
        assert "note-text" not in partial and "close-detail" not in partial


async def test_unknown_events_show_their_label(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send("humain")
        rt = client.app.state.rt
        async with rt.sessionmaker() as session, session.begin():
            conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
            log_event(session, conversation_id, "referral_sent", {"label": "orientée vers le CCAS de Rezé"})
            log_event(session, conversation_id, "mystery_happened", {})
        await login(client, *CAMILLE)
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        assert "• orientée vers le CCAS de Rezé ·" in page
        assert "• mystery_happened ·" in page
        assert "• demande à parler à une personne ·" in page  # the known labels are kept


async def test_a_timeline_of_1000_messages_comes_in_pages(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send("humain")
        rt = client.app.state.rt
        async with rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
            before = (await session.execute(select(func.count()).select_from(Message))).scalar()
        ids = await seed_timeline(rt, conversation_id, 1000)
        await login(client, *CAMILLE)
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        shown = [int(i) for i in re.findall(r'data-message="(\d+)"', page)]
        assert len(shown) == 50 and shown == ids[-50:]  # the newest page, in order
        cursor = re.search(rf"/inbox/conversations/{conversation_id}/older\?before=(\d+)", page)
        assert cursor and int(cursor.group(1)) == shown[0]
        seen = list(shown)
        while cursor:
            older = await client.get(f"/inbox/conversations/{conversation_id}/older?before={cursor.group(1)}")
            assert older.status_code == 200
            got = [int(i) for i in re.findall(r'data-message="(\d+)"', older.text)]
            assert 0 < len(got) <= 50
            seen = got + seen
            cursor = re.search(rf"/inbox/conversations/{conversation_id}/older\?before=(\d+)", older.text)
        assert len(seen) == 1000 + before and seen == sorted(set(seen))  # every message once, in order
        # the live region keeps its first message: what came after is added, nothing drops off
        since = re.search(r"/timeline\?since=(\d+)", page).group(1)
        await person.send("encore un message")
        live = (await client.get(f"/inbox/conversations/{conversation_id}/timeline?since={since}")).text
        got = [int(i) for i in re.findall(r'data-message="(\d+)"', live)]
        assert set(shown) < set(got) and len(got) == 51 and "encore un message" in live
        # bad cursors: 4xx
        for bad in ("0", "-1", "abc", "99999999999", "2147483648"):
            assert (await client.get(f"/inbox/conversations/{conversation_id}/older?before={bad}")).status_code == 422
        assert (await client.get(f"/inbox/conversations/{conversation_id}/older")).status_code == 422
        empty = await client.get(f"/inbox/conversations/{conversation_id}/older?before=2147483647")
        assert empty.status_code == 200 and "data-message" not in empty.text


async def test_the_handoff_starts_the_workers_part(settings_for):
    """The bot's transcript before the handoff is folded: loaded with « Messages plus anciens »."""
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send(choice="parler")
        await person.send(choice="logement")
        await person.send("Après la mise en relation")
        await login(client, *CAMILLE)
        async with client.app.state.rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        live = page.split('id="conversation"')[1]
        assert "Après la mise en relation" in live and "Que voulez-vous faire" not in live
        cursor = re.search(rf"/inbox/conversations/{conversation_id}/older\?before=(\d+)", page).group(1)
        older = (await client.get(f"/inbox/conversations/{conversation_id}/older?before={cursor}")).text
        assert "Que voulez-vous faire" in older


async def test_lists_history_and_search_in_one_organisation(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        org = await organisation_id(rt)
        camille = await worker_id(rt, CAMILLE[0])
        day = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
        waiting = await seed_conversations(rt, org, 3, status="waiting", names=["Zoé", "Ali", "Léa"], channel="whatsapp")
        mine = await seed_conversations(rt, org, 2, status="assigned", assignee_id=camille, start=10, channel="webchat",
                                        locale="en")
        closed = await seed_conversations(rt, org, 60, status="closed", assignee_id=camille, start=20,
                                          names=["Nour"], when=day)
        await add_worker(rt, "other@ailleurs.fr", "Zoé", organisation_slug="ailleurs")
        other_org = await organisation_id(rt, "ailleurs")
        foreign = await seed_conversations(rt, other_org, 2, status="closed", names=["Zoé"], start=90, channel="whatsapp")

        await login(client, *CAMILLE)
        inbox = (await client.get("/inbox")).text
        assert "En attente (3)" in inbox and "Mes conversations (2)" in inbox
        # The channel, and the language by its own name, marked for screen readers (title: for workers).
        assert "WhatsApp" in inbox and '<span lang="en" dir="ltr">English</span>' in inbox
        assert '<span lang="fr" dir="ltr">Français</span>' in inbox and 'title="Langue de la personne : anglais"' in inbox
        assert "Zoé · Conversation" in inbox and "🏠 Logement" in inbox
        assert f'data-conversation="{closed[0]}"' not in inbox  # the history is its own list

        history = (await client.get("/inbox?view=closed")).text
        assert history.count('class="card"') == 50 and "Plus anciennes" in history
        page2 = (await client.get("/inbox?view=closed&page=1")).text
        assert page2.count('class="card"') == 10 and "Plus récentes" in page2

        def cards(html):
            return {int(i) for i in re.findall(r'class="card" href="/inbox/conversations/(\d+)"', html)}

        # first name (any case), phone as typed, conversation number, channel, day (Paris)
        assert cards((await client.get("/inbox", params={"q": "zoé"})).text) == {waiting[0]}
        assert cards((await client.get("/inbox", params={"q": "ZO"})).text) == {waiting[0]}
        assert cards((await client.get("/inbox", params={"q": "06 10 00 00 01"})).text) == {waiting[1]}
        assert cards((await client.get("/inbox", params={"q": "+33 6 10 00 00 02"})).text) == {waiting[2]}
        assert cards((await client.get("/inbox", params={"q": f"n° {mine[1]}"})).text) == {mine[1]}
        assert cards((await client.get("/inbox", params={"channel": "webchat"})).text) == set(mine)
        by_day = cards((await client.get("/inbox", params={"view": "closed", "date": "2026-11-20"})).text)
        assert by_day and by_day <= set(closed)
        assert cards((await client.get("/inbox", params={"view": "closed", "date": "2026-11-22"})).text) == set()
        found = cards((await client.get("/inbox", params={"view": "closed", "q": "nour"})).text)
        assert len(found) == 50 and found <= set(closed)
        # a closed conversation is found by search from the main list too
        assert closed[-1] in cards((await client.get("/inbox", params={"q": str(closed[-1])})).text)
        # never another organisation's
        for params in ({"q": "zoé", "view": "closed"}, {"q": str(foreign[0])}, {"view": "closed", "channel": "whatsapp"}):
            assert not cards((await client.get("/inbox", params=params)).text) & set(foreign)
        partial = (await client.get("/inbox/partials/lists", params={"view": "closed", "q": "nour"})).text
        assert len(cards(partial)) == 50

        # bad input: 4xx with a reason, never 5xx
        for params in ({"channel": "fax"}, {"view": "everything"}, {"date": "2026-13-01"}, {"date": "yesterday"},
                       {"q": "x" * 81}, {"page": "-1"}, {"page": "10001"}, {"date": "1900-01-01"}):
            response = await client.get("/inbox", params=params)
            assert 400 <= response.status_code < 500, (params, response.status_code)


async def test_the_lists_with_1000_open_conversations_show_their_counts(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        org = await organisation_id(rt)
        camille = await worker_id(rt, CAMILLE[0])
        await seed_conversations(rt, org, 700, status="waiting", messages_each=2)
        await seed_conversations(rt, org, 300, status="assigned", assignee_id=camille, messages_each=2, start=1000)
        await login(client, *CAMILLE)
        page = (await client.get("/inbox")).text
        assert "En attente (700)" in page and "Mes conversations (300)" in page
        assert page.count('class="card"') == 100 and "Et 650 de plus" in page and "Et 250 de plus" in page


async def test_actions_still_work_from_the_sheet(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send("humain")
        rt = client.app.state.rt
        async with rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
        await login(client, *CAMILLE)
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        token = csrf_of(page)
        close = await client.post(f"/inbox/conversations/{conversation_id}/close",
                                  data={"outcome": "oriented", "detail": "CCAS de Rezé", "csrf_token": token})
        assert close.status_code == 303
        async with rt.sessionmaker() as session:
            conversation = await session.get(Conversation, conversation_id)
            closed_event = (await session.execute(select(Event).where(Event.type == "conversation_closed"))).scalar_one()
        assert conversation.status == "closed" and conversation.outcome == "Orientée vers une structure — CCAS de Rezé"
        assert closed_event.data
        history = (await client.get("/inbox?view=closed")).text
        assert f'data-conversation="{conversation_id}"' in history and "CCAS de Rezé" in history
