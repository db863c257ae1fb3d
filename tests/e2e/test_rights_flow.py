""""Vérifier mes droits", end to end through the web chat API, with the REAL OpenFisca-France.

One RightsEstimator (child process, reference month pinned to November 2025) is built once per test
session and lent to each app after its start-up (settings rights_backend="off", then rt.rights is
replaced): every app still answers over HTTP, runs the check_rights action after commit, and the
worker reads the summary card in the inbox. The figures the chat shows are compared with the same
estimator run directly on the equivalent `Answers`.

The last tests are fast (no OpenFisca): the estimator off, and a fake estimator that holds its
answer while another person chats (the event loop is not blocked; the real child-process estimator
is measured by tests/rights/test_estimator.py::test_event_loop_stays_responsive_while_estimating).
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager

import pytest

from rights.answers import Answers
from rights.flow import euros
from tests.conftest import app_client, login
from tests.webchat import Person, text_of, values

MONTH = "2025-11"
class Lent:
    """The session's estimator lent to one app: the app's shutdown must not close it."""

    def __init__(self, estimator):
        self.estimator = estimator

    @property
    def ready(self) -> bool:
        return self.estimator.ready

    async def estimate(self, answers, month=None):
        return await self.estimator.estimate(answers, month)

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def openfisca():
    """The real estimator, loading in its child process from the first test that asks for it."""
    from rights.estimator import RightsEstimator

    estimator = RightsEstimator(mode="process", month=MONTH)
    estimator.start_loading()
    yield estimator
    estimator.close()


@asynccontextmanager
async def chat_app(settings, estimator):
    async with app_client(settings) as client:
        client.app.state.rt.rights = estimator
        yield client


async def at_first_question(client) -> Person:
    person = Person(client, drain_timeout=120)
    await person.send("/start")
    menu = await person.send(choice="oui")
    assert values(menu[-1])[0] == "droits" and menu[-1]["choices"][0][1] == "💶 Mes droits"
    asked = await person.send(choice="droits")
    assert "quelques questions" in asked[0]["text"] and asked[-1]["text"] == "🎂 Quel âge avez-vous ?"
    return person


async def answer(person: Person, steps: list[tuple[str, dict]]) -> list[dict]:
    """Give answers in order; each answer must lead to the question whose text contains `expect`."""
    said: list[dict] = []
    for expect, given in steps:
        said = await person.send(**given)
        assert said, f"no answer before {expect!r}"
        assert expect in said[-1]["text"], f"expected {expect!r}, got {said[-1]['text']!r}"
    return said


async def rights_summary(client) -> dict:
    from sqlalchemy import select

    from conversations.models import Conversation

    async with client.app.state.rt.sessionmaker() as session:
        summaries = (await session.execute(select(Conversation.summary).order_by(Conversation.id))).scalars().all()
    return (summaries[-1] or {}).get("rights") or {}


async def worker_page(client, settings) -> str:
    assert (await login(client, settings.demo_worker_email, settings.demo_worker_password)).status_code in (200, 303)
    inbox = await client.get("/inbox")
    conversation_id = int(inbox.text.split('data-conversation="')[1].split('"')[0])
    return (await client.get(f"/inbox/conversations/{conversation_id}")).text


def shown_amount(benefit: dict) -> str:
    return euros(benefit["monthly_amount"] if benefit["monthly_amount"] is not None else benefit["yearly_amount"])


@pytest.mark.slow
async def test_single_without_resources_tenant_in_nantes_sees_rsa_and_housing_aid_then_a_named_worker(
        settings_for, openfisca):
    settings = settings_for(action_notice_after_seconds=0)  # the waiting message always, first
    async with chat_app(settings, Lent(openfisca)) as client:
        person = await at_first_question(client)
        said = await answer(person, [
            ("seul ou en couple", {"text": "35"}),
            ("Combien d'enfants", {"choice": "seul"}),
            ("Où vivez-vous", {"choice": "0"}),  # no children: no ages, no alimony
            ("Quel type de logement", {"choice": "tenant"}),
            ("loyer par mois", {"choice": "private"}),
            ("Dans quelle commune habitez-vous", {"text": "450"}),
            ("Que faites-vous", {"text": "44000"}),
            ("salaire net", {"choice": "other"}),
            ("d'autres revenus", {"choice": "0"}),  # no unemployment or pension question
            ("déjà une de ces aides", {"choice": "0"}),
        ])
        assert len(said[-1]["choices"]) == 10 and all(len(c[1]) <= 20 for c in said[-1]["choices"])
        started = time.perf_counter()
        results = await person.send(choice="aucune")
        latency = time.perf_counter() - started
        text = text_of(results)
        assert results[0]["text"] == "⏳ Je calcule… cela peut prendre quelques secondes."

        # Same figures as the estimator on the equivalent answers
        direct = await openfisca.estimate(Answers(age=35, depcom="44109", housing="tenant", tenant_kind="private",
                                                  rent=450))
        amounts = {b["id"]: b for b in direct["benefits"]}
        assert {"rsa", "aide_logement", "css"} <= set(amounts)
        assert amounts["rsa"]["monthly_amount"] == 560.0  # 646.52 € minus the forfait logement, floored to 10 €
        for benefit in direct["benefits"]:
            assert benefit["label"] in text
        assert f"Revenu de solidarité active (RSA) : environ {shown_amount(amounts['rsa'])} par mois" in text
        assert f"Aide au logement (APL, ALS ou ALF) : environ {shown_amount(amounts['aide_logement'])} par mois" in text
        assert "Complémentaire santé solidaire : gratuite" in text
        applying = [link for message in results for link in message.get("links") or []
                    if link[1] == "https://www.service-public.fr/particuliers/vosdroits/N19775"]
        assert applying and applying[0][0] == "👉 Faire la demande" and "https://" not in text  # a link in words
        assert "Un revenu minimum pour les personnes avec peu ou pas de ressources." in text
        assert "novembre 2025" in results[1]["text"] and f"environ {euros(direct['monthly_total'])} par mois" in text
        offer = results[-1]
        assert "C'est une estimation, pas une décision" in offer["text"] and "France services Démo" in offer["text"]
        assert values(offer) == ["parler", "pourquoi", "menu"] and all(len(c[1]) <= 20 for c in offer["choices"])
        assert len(offer["text"]) <= 1024
        assert "Prime d'activité" not in text  # zeros are not listed one by one

        why = await person.send(choice="pourquoi")
        assert "Prime d'activité : il faut avoir des revenus du travail" in why[0]["text"]
        assert "Allocations familiales : pas d'enfant à charge" in why[0]["text"]
        assert values(why[-1]) == ["parler", "menu"]

        handed = await person.send(choice="parler")
        assert "Camille" in text_of(handed)

        card = await rights_summary(client)
        assert card["ok"] and card["reference_month"] == MONTH and card["answers"]["depcom"] == "44109"
        page = await worker_page(client, settings)
        assert "💶 Estimation des droits" in page
        assert "novembre 2025" in page and "législation 2025" in page and "OpenFisca-France 176" in page
        assert re.search(r"Revenu de solidarité active \(RSA\)</a>.*?<td>560 €</td>\s*<td>6 720 €</td>", page, re.S)
        assert "Nantes (44000) — INSEE 44109" in page and "450 € / mois" in page
        assert "Aucune aide déclarée comme déjà perçue" in page  # an assumption
        assert "Prime d&#39;activité : il faut avoir des revenus du travail" in page
        assert "summary_key" not in page and "{&#34;" not in page
        assert "<dt>rent</dt>" not in page and "<dt>Loyer hors charges</dt>" in page  # readable, not repeated raw
        print(f"\nrights estimate in the chat: {latency:.2f} s (action {card['seconds']:.2f} s)")


@pytest.mark.slow
async def test_couple_with_two_children_is_asked_ages_not_alimony(settings_for, openfisca):
    settings = settings_for(action_notice_after_seconds=60)  # longer than any estimate, loading included
    async with chat_app(settings, Lent(openfisca)) as client:
        person = await at_first_question(client)
        await answer(person, [
            ("seul ou en couple", {"text": "38"}),
            ("âge a votre conjoint", {"choice": "couple"}),
            ("Combien d'enfants", {"text": "36"}),
            ("Quel âge ont vos enfants", {"choice": "2"}),
            ("Où vivez-vous", {"text": "4 et 9"}),  # couple: no alimony, no single-parent question
            ("Quel type de logement", {"choice": "tenant"}),
            ("loyer par mois", {"choice": "social"}),
            ("Dans quelle commune", {"text": "520 €"}),
            ("Que faites-vous", {"text": "Rezé"}),
            ("conjointe, que fait", {"choice": "employee"}),
            ("Combien gagnez-vous à deux en salaire net", {"choice": "job_seeker"}),
            ("allocation chômage", {"text": "1 400"}),
            ("d'autres revenus", {"text": "900"}),
            ("déjà une de ces aides", {"choice": "0"}),
            ("Une autre", {"choice": "af"}),
        ])
        results = await person.send(choice="fini")
        questions = [m["text"] for m in await person.bot_lines()]
        assert not any("pension alimentaire" in q or "depuis moins de 18 mois" in q for q in questions)
        card = await rights_summary(client)
        assert card["ok"] and card["answers"]["couple"] is True
        assert [c["age"] for c in card["answers"]["children"]] == [4, 9]
        assert card["answers"]["resources"]["salary"] == 1400 and card["answers"]["partner_resources"]["unemployment"] == 900
        assert card["answers"]["benefits_received"] == ["af"] and card["answers"]["depcom"] == "44143"
        assert ["Aides déjà reçues", "Allocations familiales"] in card["answers_readable"]
        direct = await openfisca.estimate(Answers(
            age=38, activity="employee", resources={"salary": 1400}, couple=True, partner_age=36,
            partner_activity="job_seeker", partner_resources={"unemployment": 900},
            children=[{"age": 4}, {"age": 9}], housing="tenant", tenant_kind="social", rent=520, depcom="44143",
            benefits_received=["af"]))
        assert [(b["id"], b["monthly_amount"], b["yearly_amount"]) for b in card["benefits"]] == \
            [(b["id"], b["monthly_amount"], b["yearly_amount"]) for b in direct["benefits"]]
        text = text_of(results)
        assert "Allocations familiales" in text and "(vous la touchez déjà)" in text
        assert "Je calcule" not in text  # answered before the delay: no waiting message
        assert any("Scolarité des enfants déduite de leur âge" in a for a in card["assumptions"])


@pytest.mark.slow
async def test_hosted_person_is_not_asked_rent_and_sees_the_hosted_assumption(settings_for, openfisca):
    settings = settings_for()
    async with chat_app(settings, Lent(openfisca)) as client:
        person = await at_first_question(client)
        said = await answer(person, [
            ("seul ou en couple", {"text": "45 ans"}),
            ("Combien d'enfants", {"choice": "seul"}),
            ("Où vivez-vous", {"choice": "0"}),
            ("Dans quelle commune habitez-vous", {"choice": "hosted"}),  # no tenant kind, no rent
            ("Que faites-vous", {"text": "75011"}),
            ("salaire net", {"choice": "job_seeker"}),
            ("allocation chômage", {"choice": "0"}),
            ("d'autres revenus", {"choice": "0"}),
            ("déjà une de ces aides", {"choice": "0"}),
        ])
        assert said
        results = await person.send(choice="aucune")
        questions = " ".join(m["text"] for m in await person.bot_lines())
        assert "loyer" not in questions and "type de logement" not in questions
        card = await rights_summary(client)
        assert card["answers"]["housing"] == "hosted" and card["answers"]["depcom"] == "75056"  # Paris 11e -> Paris
        assert any("Hébergé·e sans participer aux frais" in a for a in card["assumptions"])
        direct = await openfisca.estimate(Answers(age=45, activity="job_seeker", housing="hosted", depcom="75056"))
        rsa = next(b for b in direct["benefits"] if b["id"] == "rsa")
        assert f"(RSA) : environ {shown_amount(rsa)} par mois" in text_of(results)
        assert "Aide au logement" not in text_of(results)


@pytest.mark.slow
async def test_impossible_answers_are_asked_again_kindly_and_dont_know_becomes_an_assumption(settings_for, openfisca):
    settings = settings_for()
    async with chat_app(settings, Lent(openfisca)) as client:
        person = await at_first_question(client)
        for wrong in ("beaucoup", "140", "-3"):
            again = await person.send(wrong)
            assert again[-1]["text"].startswith("🤔 Écrivez votre âge en chiffres, entre 16 et 120 ans")
        await answer(person, [
            ("seul ou en couple", {"text": "29"}),
            ("Combien d'enfants", {"choice": "seul"}),
            ("Où vivez-vous", {"text": "aucun"}),  # a button's words
            ("Quel type de logement", {"choice": "tenant"}),
            ("loyer par mois", {"choice": "private"}),
        ])
        negative = await person.send("-5")
        assert negative[-1]["text"].startswith("🤔 Écrivez le loyer en chiffres")
        assert values(negative[-1]) == ["nsp"]  # the same choices, still offered
        words = await person.send("cher")
        assert words[-1]["text"].startswith("🤔 Écrivez le loyer en chiffres")
        unknown_place = await answer(person, [("Dans quelle commune", {"text": "380"}),
                                              ("Je ne connais pas cette commune", {"text": "99999"})])
        assert "code postal" in unknown_place[-1]["text"]
        await answer(person, [
            ("Que faites-vous", {"text": "Nantes"}),
            ("salaire net", {"choice": "employee"}),
            ("d'autres revenus", {"text": "je ne sais pas"}),  # typed, matched to the button
            ("déjà une de ces aides", {"choice": "0"}),
        ])
        results = await person.send(choice="aucune")
        assert "j'ai compté 0 €" in text_of(results)
        await person.send(choice="parler")
        card = await rights_summary(client)
        assert card["answers"]["resources"]["salary"] is None and card["answers"]["rent"] == 380
        page = await worker_page(client, settings)
        assert "Revenus inconnus, comptés à 0 € : salaire (vous)." in page
        assert "<dt>Salaires du foyer</dt><dd>ne sait pas</dd>" in page


# -- fast: no OpenFisca ------------------------------------------------------------------------------


async def go_to_estimate(person: Person) -> list[dict]:
    return await answer(person, [
        ("seul ou en couple", {"text": "50"}),
        ("Combien d'enfants", {"choice": "seul"}),
        ("Où vivez-vous", {"choice": "0"}),
        ("Dans quelle commune", {"choice": "homeless"}),
        ("Que faites-vous", {"text": "44000"}),
        ("salaire net", {"choice": "other"}),
        ("d'autres revenus", {"choice": "0"}),
        ("déjà une de ces aides", {"choice": "0"}),
    ])


async def test_estimator_off_offers_a_worker_instead(settings_for):
    settings = settings_for()  # rights_backend="off": rt.rights is None
    async with app_client(settings) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        said = await person.send(choice="aucune")
        assert "Je n'arrive pas à faire le calcul" in said[-1]["text"] and values(said[-1]) == ["parler", "menu"]
        handed = await person.send(choice="parler")
        assert "Camille" in text_of(handed)
        page = await worker_page(client, settings)
        assert "Le calcul n'a pas pu se faire (estimateur désactivé)" in page
        assert "<dt>Logement</dt><dd>sans logement fixe</dd>" in page


class HeldEstimator:
    """A fake estimator whose answer waits for the test (as if OpenFisca were still loading)."""

    ready = False

    def __init__(self):
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def estimate(self, answers):
        self.asked.set()
        await self.release.wait()
        return {"reference_month": MONTH, "legislation_year": 2025, "computed_at": "2025-11-22T10:00:00+00:00",
                "openfisca_france_version": "fake", "answers": answers.model_dump(mode="json"),
                "assumptions": [], "monthly_total": 560.0, "disclaimer": "",
                "benefits": [{"id": "rsa", "label": "Revenu de solidarité active (RSA)", "description": "Un revenu.",
                              "monthly_amount": 560.0, "yearly_amount": None, "period": "mois",
                              "link": "https://www.service-public.fr/particuliers/vosdroits/N19775",
                              "conditional": False, "already_received": False, "note": None}],
                "zero_benefits": []}

    def close(self):
        pass


async def test_while_an_estimate_runs_other_people_are_answered_at_once(settings_for):
    settings = settings_for(action_notice_after_seconds=0.2)
    held = HeldEstimator()
    async with chat_app(settings, held) as client:
        rt = client.app.state.rt
        waiting = await at_first_question(client)
        await go_to_estimate(waiting)
        await waiting.post(choice="aucune")  # the POST returns: the estimate runs after commit
        await asyncio.wait_for(held.asked.wait(), 5)
        for _ in range(250):  # the estimate is slow: the waiting message comes after the delay
            said = await waiting.new()
            if said:
                break
            await asyncio.sleep(0.02)
        assert said and said[-1]["text"].startswith("⏳ Je calcule")

        other = Person(client, drain_timeout=120)
        started = time.perf_counter()
        await other.post("/start")
        for _ in range(100):  # answered while the estimate is still pending
            if await other.bot_lines():
                break
            await asyncio.sleep(0.02)
        answered = time.perf_counter() - started
        assert (await other.bot_lines())[0]["text"].startswith("👋 Bonjour"), "the other person was not answered"
        assert answered < 1.5, f"answered in {answered:.2f} s"

        await waiting.post("alors ?")  # the person writes meanwhile: told to wait, nothing lost
        for _ in range(100):
            said = await waiting.new()
            if said:
                break
            await asyncio.sleep(0.02)
        assert said[-1]["text"] == "⏳ Un instant, je cherche encore…"

        held.release.set()
        await rt.drain(timeout=10)
        results = await waiting.new()
        assert "Revenu de solidarité active (RSA) : environ 560 € par mois" in text_of(results)
        assert values(results[-1]) == ["parler", "pourquoi", "menu"]
