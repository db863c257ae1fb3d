"""A person on WhatsApp reaches a named worker, over real HTTP: Meta-shaped webhooks (signed), the
fake Graph API on loopback, the worker's inbox. Then the 24-hour window: refusal without a template,
the invitation template with held messages, the asynchronous 131047, statuses, rate limits, and a
second phone number owned by another organisation.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from kernel.database import utcnow
from conversations.models import Contact, Message
from handoff.models import Organisation
from tests.conftest import LiveServer, csrf_of, wait_until
from tests.e2e.whatsapp_helpers import (
    NUMBER,
    OTHER_NUMBER,
    PERSON,
    body_text,
    button,
    first_conversation,
    in_db,
    interactive,
    list_reply,
    login,
    post,
    reply,
    sent_to,
    status,
    text,
    wait_sent,
    whatsapp_settings,
)
from tests.fakes.graph_api import FakeGraphApi

WINDOW_CLOSED = "fenêtre de 24 h fermée : la personne doit d'abord réécrire"


@pytest.fixture
def graph():
    with FakeGraphApi(access_token="test-access-token") as fake:
        yield fake


def move_window_back(settings, hours: float = 25) -> None:
    async def work(session):
        await session.execute(update(Contact).values(last_inbound_at=utcnow() - timedelta(hours=hours)))
    in_db(settings, work)


def set_templates(settings, templates: dict) -> None:
    async def work(session):
        await session.execute(update(Organisation).values(whatsapp_templates=templates))
    in_db(settings, work)


def outbound_rows(settings) -> list[tuple[int, str, str | None, str | None]]:
    async def work(session):
        rows = await session.execute(select(Message.id, Message.status, Message.text, Message.error)
                                     .where(Message.direction == "out").order_by(Message.id))
        return [tuple(r) for r in rows.all()]
    return in_db(settings, work)


def page_of(client: httpx.Client, conversation_id: int) -> str:
    return client.get(f"/inbox/conversations/{conversation_id}").text


def test_whatsapp_journey_window_and_statuses(settings_for, graph):
    settings = whatsapp_settings(settings_for, graph)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        # The verification handshake.
        ok = client.get("/bots/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                                                          "hub.challenge": "1158201444"})
        assert ok.status_code == 200 and ok.text == "1158201444"
        assert client.get("/bots/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                                            "hub.challenge": "1"}).status_code == 403

        # Wrong or missing signatures: 401 and nothing changes.
        assert post(client, text("1", "Bonjour"), secret="wrong-secret").status_code == 401
        assert post(client, text("1", "Bonjour"), secret=None).status_code == 401
        assert graph.requests_for(PERSON) == []
        assert in_db(settings, lambda s: _count_contacts(s)) == 0

        # Consent: reply buttons.
        assert post(client, text("1", "Bonjour, j'ai besoin d'aide pour mon loyer")).status_code == 200
        consent = wait_sent(graph, "Êtes-vous d'accord")
        assert interactive(consent) == "button"
        assert [b["reply"]["id"] for b in consent["interactive"]["action"]["buttons"]] == ["oui", "non"]
        assert post(client, text("1", "Bonjour")).status_code == 200  # Meta's retry: a no-op

        # Menu, then "talk to someone": its topic question has 6 choices, so a list message.
        assert post(client, button("2", "oui", "✅ D'accord")).status_code == 200
        wait_sent(graph, "Que voulez-vous faire")
        assert post(client, button("3", "parler")).status_code == 200
        topic = wait_sent(graph, "C'est à quel sujet")
        assert interactive(topic) == "list"
        rows = topic["interactive"]["action"]["sections"][0]["rows"]
        assert len(rows) == 6 and all(len(r["title"]) <= 24 for r in rows)

        # The person answers by number: "2" is the second choice (logement).
        assert post(client, text("4", "2")).status_code == 200
        intro = wait_sent(graph, "Camille")
        assert "conseillère numérique" in body_text(intro)

        # The worker answers inside the window: free text signed with her first name.
        login(client, settings)
        conversation_id = first_conversation(client)
        page = page_of(client, conversation_id)
        assert "logement" in page and "fenêtre 24 h ouverte" in page
        reply(client, conversation_id, "Bonjour, je regarde votre dossier.")
        signed = wait_sent(graph, "je regarde votre dossier")
        assert signed["type"] == "text" and body_text(signed).endswith("— Camille")

        # Delivery statuses reach the inbox.
        wamid = wait_until(lambda: _wamid_of(settings, "je regarde votre dossier"))
        assert post(client, status(wamid, "sent")).status_code == 200
        wait_until(lambda: "✓ envoyé" in page_of(client, conversation_id))
        assert post(client, status(wamid, "delivered")).status_code == 200
        wait_until(lambda: "✓✓ reçu" in page_of(client, conversation_id))
        assert post(client, status(wamid, "read")).status_code == 200
        wait_until(lambda: "✓✓ lu" in page_of(client, conversation_id))
        assert post(client, status(wamid, "delivered")).status_code == 200  # late: never goes back
        assert "✓✓ lu" in page_of(client, conversation_id)

        # 25 hours later, no template configured: refused, with a clear reason for the worker.
        move_window_back(settings)
        assert "fenêtre 24 h fermée" in page_of(client, conversation_id)
        before = len(graph.requests_for(PERSON))
        reply(client, conversation_id, "Avez-vous reçu le courrier ?")
        wait_until(lambda: any(r[1] == "failed" and r[3] == WINDOW_CLOSED for r in outbound_rows(settings)))
        page = page_of(client, conversation_id)
        assert "⚠️ échec" in page and WINDOW_CLOSED.replace("'", "&#39;") in page
        assert len(graph.requests_for(PERSON)) == before  # nothing sent that Meta would refuse

        # With an approved template: the invitation goes out, the worker's message is held.
        set_templates(settings, {"reply": "allervers_reponse"})
        reply(client, conversation_id, "Je vous propose un rendez-vous mardi.")
        template = wait_until(lambda: [b for b in graph.requests_for(PERSON) if b["type"] == "template"])[-1]
        assert template["template"]["name"] == "allervers_reponse"
        assert template["template"]["language"]["code"] == "fr"
        assert template["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Camille"}]
        wait_until(lambda: "⏸️ en attente" in page_of(client, conversation_id))
        reply(client, conversation_id, "Et apportez votre avis d'imposition.")
        wait_until(lambda: sum(r[1] == "held" for r in outbound_rows(settings)) == 2)
        assert len([b for b in graph.requests_for(PERSON) if b["type"] == "template"]) == 1  # one invitation
        assert not sent_to(graph, PERSON, "rendez-vous mardi")

        # The person answers: the held messages go out as written, in order.
        assert post(client, text("5", "Oui je suis là")).status_code == 200
        wait_sent(graph, "avis d'imposition")
        texts = [body_text(b) for b in graph.requests_for(PERSON)]
        assert texts.index(next(t for t in texts if "rendez-vous mardi" in t)) < \
            texts.index(next(t for t in texts if "avis d'imposition" in t))
        assert not any(r[1] == "held" for r in outbound_rows(settings))

        # Asynchronous 131047 on a message the platform refused later: the template path again.
        late = wait_until(lambda: _wamid_of(settings, "avis d'imposition"))
        move_window_back(settings)
        templates_before = len([b for b in graph.requests_for(PERSON) if b["type"] == "template"])
        assert post(client, status(late, "failed", code=131047)).status_code == 200
        wait_until(lambda: len([b for b in graph.requests_for(PERSON) if b["type"] == "template"]) == templates_before + 1)
        wait_until(lambda: any(r[1] == "held" and "avis d'imposition" in (r[2] or "") for r in outbound_rows(settings)))

        # Rate limits: HTTP 429 and 130429 are retried with backoff by the outbox.
        assert post(client, text("6", "merci")).status_code == 200  # the window opens again
        wait_until(lambda: len(sent_to(graph, PERSON, "avis d'imposition")) == 2)
        attempts = graph.attempts
        graph.fail_next(429, retry_after=0.1)
        graph.fail_next(130429)
        reply(client, conversation_id, "Bonne journée.")
        wait_sent(graph, "Bonne journée")
        assert graph.attempts == attempts + 3
        # Recorded once the send has returned: wait for the row, not only for the request.
        wait_until(lambda: any(r[1] == "sent" and "Bonne journée" in (r[2] or "") for r in outbound_rows(settings)))


def test_whatsapp_second_number_and_numbered_choices(settings_for, graph, tmp_path):
    settings = whatsapp_settings(settings_for, graph)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        # A second organisation owns the second number: its new contacts belong to it, and
        # replies go out from the number the person wrote to.
        async def add_organisation(session):
            session.add(Organisation(slug="asso-b", name="Asso B", whatsapp_phone_number_id=OTHER_NUMBER,
                                     whatsapp_templates={}))
        in_db(settings, add_organisation)
        other = "33639980009"
        assert post(client, text("b1", "Bonjour", person=other, number=OTHER_NUMBER)).status_code == 200
        wait_sent(graph, "Êtes-vous d'accord", person=other)
        assert graph.sent_from(OTHER_NUMBER) and not graph.sent_from(NUMBER)

        async def organisation_of(session):
            return (await session.execute(select(Organisation.slug)
                                          .join(Contact, Contact.organisation_id == Organisation.id))).scalar()
        assert in_db(settings, organisation_of) == "asso-b"

        # More than 10 choices go as numbered text, and "2" picks the second one.
        from flows.definition import load_flow_file

        path = tmp_path / "many.yaml"
        buttons = "\n".join(f'      - {{value: c{i}, label: "Choix {i}"}}' for i in range(1, 13))
        path.write_text(f"""spec_version: 1
flow: many
title: Many choices
start: pick
triggers: ["beaucoup de choix"]
steps:
  pick:
    ask: "Lequel ?"
    buttons:
{buttons}
    save: picked
    next: {{c2: two, default: other}}
  two:
    end: "Vous avez choisi le deux."
  other:
    end: "Un autre choix."
""")
        live.rt.flow_engine.flows["many"] = load_flow_file(path)
        assert post(client, button("b2", "oui", person=other, number=OTHER_NUMBER)).status_code == 200
        wait_sent(graph, "Que voulez-vous faire", person=other)
        assert post(client, text("b3", "beaucoup de choix", person=other, number=OTHER_NUMBER)).status_code == 200
        numbered = wait_sent(graph, "Lequel", person=other)
        assert numbered["type"] == "text" and "12. Choix 12" in body_text(numbered)
        assert post(client, text("b4", "2", person=other, number=OTHER_NUMBER)).status_code == 200
        wait_sent(graph, "Vous avez choisi le deux", person=other)
        assert list_reply  # (list replies are covered by the adapter tests)


async def _count_contacts(session) -> int:
    return len((await session.execute(select(Contact.id))).all())


def _wamid_of(settings, fragment: str) -> str | None:
    async def work(session):
        rows = await session.execute(select(Message.platform_message_id, Message.text)
                                     .where(Message.direction == "out", Message.platform_message_id.is_not(None)))
        return next((wamid for wamid, t in rows.all() if fragment in (t or "")), None)
    return in_db(settings, work)


def handed_to_camille(client: httpx.Client, graph: FakeGraphApi, settings) -> int:
    """The person agrees, asks for someone about housing and is introduced to Camille; the worker
    logs in. Returns the conversation's id."""
    assert post(client, text("1", "Bonjour, j'ai besoin d'aide")).status_code == 200
    wait_sent(graph, "Êtes-vous d'accord")
    assert post(client, button("2", "oui", "✅ D'accord")).status_code == 200
    wait_sent(graph, "Que voulez-vous faire")
    assert post(client, button("3", "parler")).status_code == 200
    wait_sent(graph, "C'est à quel sujet")
    assert post(client, text("4", "2")).status_code == 200
    wait_sent(graph, "Camille")
    login(client, settings)
    return first_conversation(client)


def test_whatsapp_replies_in_the_window_go_in_one_burst_and_a_refusal_still_holds(settings_for, graph):
    """Inside the 24-hour window the outbox claims a person's replies together, without the
    window's context; a window that closes anyway (the platform says 131047 at once) sends the
    invitation and holds the message, as before; one that closes within WINDOW_MARGIN takes the
    window's path (still sent as written: the window is open)."""
    settings = whatsapp_settings(settings_for, graph)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        conversation_id = handed_to_camille(client, graph, settings)

        # Several replies at once: all sent, in the order written.
        for n in range(1, 5):
            reply(client, conversation_id, f"Message numéro {n}.")
        wait_sent(graph, "Message numéro 4")
        texts = [body_text(b) for b in graph.requests_for(PERSON) if b["type"] == "text"]
        numbered = [t for t in texts if "Message numéro" in t]
        assert [int(t.split("numéro ")[1][0]) for t in numbered] == [1, 2, 3, 4]
        wait_until(lambda: sum(r[1] == "sent" and "Message numéro" in (r[2] or "") for r in outbound_rows(settings)) == 4)

        # The platform finds the window closed though ours is open: invitation, message held.
        set_templates(settings, {"reply": "allervers_reponse"})
        graph.fail_next(131047)
        reply(client, conversation_id, "Le rendez-vous est confirmé.")
        template = wait_until(lambda: [b for b in graph.requests_for(PERSON) if b["type"] == "template"])
        assert len(template) == 1 and template[0]["template"]["name"] == "allervers_reponse"
        wait_until(lambda: any(r[1] == "held" and "rendez-vous est confirmé" in (r[2] or "")
                               for r in outbound_rows(settings)))
        assert not sent_to(graph, PERSON, "rendez-vous est confirmé")

        # The person writes again: the held message goes out; then a window closing in a minute.
        assert post(client, text("5", "Je suis là")).status_code == 200
        wait_sent(graph, "rendez-vous est confirmé")
        move_window_back(settings, hours=24 - 1 / 60)
        reply(client, conversation_id, "À bientôt.")
        sent = wait_sent(graph, "À bientôt")
        assert sent["type"] == "text"
        assert len([b for b in graph.requests_for(PERSON) if b["type"] == "template"]) == 1


def test_held_messages_go_before_the_bots_reply_and_never_after_a_stop(settings_for, graph):
    """Held messages are released in the transaction of the person's next message: they go out
    before the bot's answer to it (that answer is not claimed at once while something is held), and
    a person who writes « stop » gets none of them."""
    settings = whatsapp_settings(settings_for, graph)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        conversation_id = handed_to_camille(client, graph, settings)

        # Outside the window: the invitation, the worker's message held; given back to the bot,
        # whose menu is held behind the same invitation.
        move_window_back(settings)
        set_templates(settings, {"reply": "allervers_reponse"})
        reply(client, conversation_id, "Votre dossier est complet.")
        wait_until(lambda: any(r[1] == "held" and "dossier est complet" in (r[2] or "") for r in outbound_rows(settings)))
        page = page_of(client, conversation_id)
        client.post(f"/inbox/conversations/{conversation_id}/return-to-bot", data={"csrf_token": csrf_of(page)})
        wait_until(lambda: sum(r[1] == "held" for r in outbound_rows(settings)) == 2)
        menus_before = len(sent_to(graph, PERSON, "Que voulez-vous faire"))

        # The person writes « menu »: the held ones first, in order, then the bot's new menu.
        assert post(client, text("5", "menu")).status_code == 200
        wait_until(lambda: len(sent_to(graph, PERSON, "Que voulez-vous faire")) == menus_before + 2)
        texts = [body_text(b) for b in graph.requests_for(PERSON)]
        assert "dossier est complet" in texts[-3] and "Que voulez-vous faire" in texts[-2] \
            and "Que voulez-vous faire" in texts[-1]
        wait_until(lambda: not any(r[1] in ("held", "queued", "sending") for r in outbound_rows(settings)))

        # Held again, then « stop »: those are failed, never sent.
        move_window_back(settings)
        reply(client, conversation_id, "Un dernier mot.")
        wait_until(lambda: any(r[1] == "held" and "dernier mot" in (r[2] or "") for r in outbound_rows(settings)))
        assert post(client, text("6", "stop")).status_code == 200
        wait_until(lambda: any(r[1] == "failed" and "dernier mot" in (r[2] or "") for r in outbound_rows(settings)))
        wait_until(lambda: not any(r[1] in ("queued", "sending") for r in outbound_rows(settings)))
        assert not sent_to(graph, PERSON, "dernier mot")


def test_an_answer_is_not_claimed_ahead_of_a_row_another_process_has_still_to_send(settings_for, graph):
    """The bot's answer to a person who has just written is claimed in the inbound's transaction
    only when nothing of theirs waits: a row queued for a retry (as another process leaves it, with
    no runner here) goes first, then the answer."""
    settings = whatsapp_settings(settings_for, graph)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        assert post(client, text("1", "Bonjour")).status_code == 200
        wait_sent(graph, "Êtes-vous d'accord")
        assert post(client, button("2", "oui", "✅ D'accord")).status_code == 200
        wait_sent(graph, "Que voulez-vous faire")
        wait_until(lambda: not any(r[1] in ("queued", "sending") for r in outbound_rows(settings)))

        async def queue_a_retry(session):
            last = (await session.execute(select(Message).where(Message.direction == "out")
                                          .order_by(Message.id.desc()).limit(1))).scalar_one()
            session.add(Message(conversation_id=last.conversation_id, contact_id=last.contact_id,
                                channel="whatsapp", direction="out", text="Un message plus ancien.",
                                payload={"locale": "fr"}, status="queued", attempts=1, error="HTTP 503",
                                next_attempt_at=utcnow() + timedelta(seconds=1.5), created_at=utcnow()))
        in_db(settings, queue_a_retry)
        menus_before = len(sent_to(graph, PERSON, "Que voulez-vous faire"))

        assert post(client, text("3", "menu")).status_code == 200
        wait_until(lambda: len(sent_to(graph, PERSON, "Que voulez-vous faire")) == menus_before + 1)
        texts = [body_text(b) for b in graph.requests_for(PERSON)]
        assert "plus ancien" in texts[-2] and "Que voulez-vous faire" in texts[-1]
