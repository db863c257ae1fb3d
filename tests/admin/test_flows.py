"""The flows room through its real routes, on SQLite and on PostgreSQL + Redis: drafts change
nothing for people, French validation, publish reaches /chat, stale saves, rollback, export/import,
the simulator on the real engine."""

from __future__ import annotations

import html
import re
import time

import yaml

from tests.conftest import app_client, csrf_of, login
from tests.webchat import Person, text_of

ADMIN = ("admin@demo.allervers.fr", "allervers-demo")
NEW_WELCOME = "👋 Salut ! Ici l'assistant tout neuf de {{ organisation }}."


async def admin_client(client):
    response = await login(client, *ADMIN)
    assert response.status_code == 303, response.text
    return client


def fields_of(page: str) -> dict[str, str]:
    """The editor form's values as the browser would send them (inputs, textareas)."""
    form = page.split('id="flow-form"', 1)[1].split("</form>", 1)[0]
    values: dict[str, str] = {}
    for name, value in re.findall(r'<input[^>]*?name="([^"]+)"[^>]*?value="([^"]*)"', form):
        values[html.unescape(name)] = html.unescape(value)
    for name, value in re.findall(r'<textarea[^>]*?name="([^"]+)"[^>]*>(.*?)</textarea>', form, flags=re.S):
        values[html.unescape(name)] = html.unescape(value)
    return values


async def editor(client, flow_id="welcome", tab="form"):
    page = await client.get(f"/admin/flows/{flow_id}", params={"tab": tab})
    assert page.status_code == 200, page.text
    return page.text, fields_of(page.text)


async def welcome_text(client) -> str:
    person = Person(client)
    return text_of(await person.send("bonjour"))


async def save_and_publish(client, fields: dict) -> None:
    saved = await client.post("/admin/flows/welcome/save", data=fields)
    assert saved.status_code == 303, saved.text
    preview = await client.get("/admin/flows/welcome/publish")
    assert preview.status_code == 200
    published = await client.post("/admin/flows/welcome/publish",
                                  data={"csrf_token": csrf_of(preview.text),
                                        "version": re.search(r'name="version" value="(\d+)"', preview.text).group(1)})
    assert published.status_code == 303, published.text


async def test_draft_validate_publish_rollback(settings_for):
    async with app_client(settings_for()) as client:
        await admin_client(client)
        listing = await client.get("/admin/flows")
        assert listing.status_code == 200 and "version livrée" in listing.text and "/admin/flows/welcome" in listing.text
        page, fields = await editor(client)
        assert fields["f|hello|say"].startswith("👋 Bonjour !")

        # An error, live, in French, naming the step; then fixed.
        broken = {**fields, "f|hello|say": "👋 Salut {{ organisation"}
        check = await client.post("/admin/flows/welcome/check", data=broken)
        assert check.status_code == 200
        assert "Étape « hello » : le texte contient une erreur de modèle" in html.unescape(check.text)
        broken_link = {**fields, "f|hello|next": "privazy"}
        check = await client.post("/admin/flows/welcome/check", data=broken_link)
        assert "Étape « hello » : elle mène à l'étape « privazy », qui n'existe pas" in html.unescape(check.text)
        assert "Aucune étape n'y mène" in html.unescape(check.text)  # the outline: privacy is cut off
        fixed = {**fields, "f|hello|say": NEW_WELCOME}
        check = await client.post("/admin/flows/welcome/check", data=fixed)
        assert "Aucune erreur" in check.text

        # Saving a draft changes nothing for people.
        saved = await client.post("/admin/flows/welcome/save", data=fixed)
        assert saved.status_code == 303
        assert "Bonjour ! Je suis l'assistant" in await welcome_text(client)
        page, after = await editor(client)
        assert after["f|hello|say"] == NEW_WELCOME and after["version"] == "1"

        # The publish preview says what changes in plain words; then publish: people get it.
        preview = await client.get("/admin/flows/welcome/publish")
        assert "Message « 👋 Bonjour ! Je suis l'assista… » changé en « 👋 Salut ! Ici l'assistant tou… »" \
            in html.unescape(preview.text)
        published = await client.post("/admin/flows/welcome/publish",
                                      data={"csrf_token": csrf_of(preview.text), "version": "1"})
        assert published.status_code == 303
        said = await welcome_text(client)
        assert "Salut ! Ici l'assistant tout neuf de" in said and "Bonjour ! Je suis" not in said
        listing = await client.get("/admin/flows")
        assert "révision n° 1" in listing.text

        # A stale copy (the editor loaded before someone else saved) is refused, nothing changed.
        page, one = await editor(client)
        page, two = await editor(client)
        first = await client.post("/admin/flows/welcome/save", data={**one, "f|hello|say": "Version A"})
        assert first.status_code == 303
        second = await client.post("/admin/flows/welcome/save", data={**two, "f|hello|say": "Version B"})
        assert second.status_code == 409
        assert "modifié par quelqu'un d'autre" in html.unescape(second.text)
        assert "Version B" in second.text  # what they typed is still on the page
        page, now = await editor(client)
        assert now["f|hello|say"] == "Version A"
        discard = await client.post("/admin/flows/welcome/discard", data=now)
        assert discard.status_code == 303

        # A second publish, then a rollback to revision 1 republishes it as revision 3.
        page, fields = await editor(client)
        await save_and_publish(client, {**fields, "f|hello|say": "Deuxième version de l'accueil."})
        assert "Deuxième version" in await welcome_text(client)
        revisions = await client.get("/admin/flows/welcome/revisions")
        assert "Révision n° 2" in revisions.text
        rollback = await client.post("/admin/flows/welcome/rollback",
                                     data={"csrf_token": csrf_of(revisions.text), "number": "1"})
        assert rollback.status_code == 303
        said = await welcome_text(client)
        assert "Salut ! Ici l'assistant tout neuf" in said
        revisions = await client.get("/admin/flows/welcome/revisions")
        assert "Révision n° 3" in revisions.text and "Retour à la révision n° 1" in html.unescape(revisions.text)

        # Every change is in the audit log, with the revision.
        from sqlalchemy import select

        from admin.audit import AuditEntry

        async with client.app.state.rt.sessionmaker() as session:
            actions = (await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars().all()
        assert actions.count("flow.published") == 2 and "flow.rolled_back" in actions
        assert "flow.draft_saved" in actions and "flow.draft_discarded" in actions


async def test_publish_refused_with_errors_and_csrf(settings_for):
    async with app_client(settings_for()) as client:
        await admin_client(client)
        page, fields = await editor(client)
        saved = await client.post("/admin/flows/welcome/save", data={**fields, "f|hello|next": "nowhere"})
        assert saved.status_code == 303  # a draft may be unfinished
        preview = await client.get("/admin/flows/welcome/publish")
        assert "ne peut pas être publié" in html.unescape(preview.text) and "Publier maintenant" not in preview.text
        refused = await client.post("/admin/flows/welcome/publish", data={"csrf_token": fields["csrf_token"],
                                                                          "version": "1"})
        assert refused.status_code == 400
        no_csrf = await client.post("/admin/flows/welcome/save", data={**fields, "csrf_token": "nope"},
                                    headers={"x-csrf-token": ""})
        assert no_csrf.status_code == 403
        assert "Bonjour ! Je suis l'assistant" in await welcome_text(client)
        # A worker without the admin role cannot reach the room.
    async with app_client(settings_for()) as worker:
        await login(worker, "camille@demo.allervers.fr", "allervers-demo")
        assert (await worker.get("/admin/flows")).status_code == 403
        assert (await worker.get("/admin/flows/welcome/export")).status_code == 403


async def test_yaml_tab_export_import_round_trip(settings_for):
    async with app_client(settings_for()) as client:
        await admin_client(client)
        exported = await client.get("/admin/flows/menu/export")
        assert exported.status_code == 200
        assert 'filename="menu.yaml"' in exported.headers["content-disposition"]
        source = exported.text
        assert yaml.safe_load(source)["flow"] == "menu"

        # The raw-YAML tab goes through the same validator.
        page, fields = await editor(client, "menu", tab="yaml")
        assert fields["mode"] == "yaml" and "Que voulez-vous faire" in fields["source"]
        bad = {**fields, "source": source.replace("save: menu_choice", "save: menu_choice\n    colour: blue")}
        check = await client.post("/admin/flows/menu/check", data=bad)
        assert "Étape « choose » : le champ « colour » n'existe pas" in html.unescape(check.text)

        changed = source.replace("Que voulez-vous faire ? 👇", "Que puis-je faire pour vous ? 👇")
        bogus = await client.post("/admin/flows/import", data={"csrf_token": fields["csrf_token"]},
                                  files={"file": ("menu.yaml", changed.replace("start: choose", "start: nope"),
                                                  "application/yaml")})
        assert bogus.status_code == 400 and "L'étape de départ « nope » n'existe pas" in html.unescape(bogus.text)
        imported = await client.post("/admin/flows/import", data={"csrf_token": fields["csrf_token"]},
                                     files={"file": ("menu.yaml", changed, "application/yaml")})
        assert imported.status_code == 303 and imported.headers["location"].startswith("/admin/flows/menu")
        draft = await client.get("/admin/flows/menu/export", params={"which": "draft"})
        assert draft.text == changed  # byte for byte
        assert (await client.get("/admin/flows/menu/export")).text == source  # still the published one
        page, fields = await editor(client, "menu")
        preview = await client.get("/admin/flows/menu/publish")
        assert "Question « Que voulez-vous faire ? 👇 » changée en « Que puis-je faire pour vous ?… »" \
            in html.unescape(preview.text)


async def test_translations_table_and_button_limits(settings_for):
    async with app_client(settings_for()) as client:
        await admin_client(client)
        page, fields = await editor(client)
        assert "Textes × langues" in page and "placeholder=\"manquant\"" in page
        fields["tr|hello|say|en"] = "👋 Hello! I am the assistant of {{ organisation }}."
        fields["f|privacy|buttons.0.label"] = "✅ Oui, je suis tout à fait d'accord"
        check = await client.post("/admin/flows/welcome/check", data=fields)
        text = html.unescape(check.text)
        assert "Aucune erreur" in text  # a warning only: WhatsApp cuts the button
        assert "Étape « privacy » : le bouton « ✅ Oui, je suis tout à fait d'accord » fait 35 caractères, " \
               "WhatsApp en permet 20" in text
        saved = await client.post("/admin/flows/welcome/save", data=fields)
        assert saved.status_code == 303
        draft = yaml.safe_load((await client.get("/admin/flows/welcome/export", params={"which": "draft"})).text)
        assert draft["steps"]["hello"]["say"]["en"].startswith("👋 Hello!")
        assert draft["steps"]["hello"]["say"]["fr"].startswith("👋 Bonjour !")
        preview = await client.get("/admin/flows/welcome/publish")
        assert "Traduction en anglais" in html.unescape(preview.text)


async def test_simulator_runs_the_draft(settings_for):
    async with app_client(settings_for()) as client:
        await admin_client(client)
        page, fields = await editor(client)
        fields["f|hello|say"] = "🧪 Accueil du brouillon."
        started = time.perf_counter()
        turn = await client.post("/admin/flows/welcome/simulate", data={**fields, "sim_start": "new"})
        first = time.perf_counter() - started
        assert turn.status_code == 200
        text = html.unescape(turn.text)
        assert "🧪 Accueil du brouillon." in text and "Êtes-vous d'accord" in text
        assert 'name="sim_choice" value="oui"' in turn.text
        timings = [first]
        state = {k: html.unescape(v) for k, v in re.findall(r'name="(sim_state|sim_lines)" value="([^"]*)"', turn.text)}
        for choice in ("oui", "droits"):
            started = time.perf_counter()
            turn = await client.post("/admin/flows/welcome/simulate", data={**fields, **state, "sim_choice": choice})
            timings.append(time.perf_counter() - started)
            assert turn.status_code == 200
            state = {k: html.unescape(v) for k, v in
                     re.findall(r'name="(sim_state|sim_lines)" value="([^"]*)"', turn.text)}
        text = html.unescape(turn.text)
        assert "Que voulez-vous faire" in text  # the menu, reached through the published flows
        # Nothing was written: no conversation, the draft unsaved.
        from sqlalchemy import func, select

        from conversations.models import Conversation

        async with client.app.state.rt.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(Conversation))).scalar() == 0
        # From a step, with a call step answered by sample results (OpenFisca is off here).
        turn = await client.post("/admin/flows/welcome/simulate", data={**fields, "sim_start": "step",
                                                                        "sim_from": "privacy"})
        assert "depuis l'étape « privacy »" in html.unescape(turn.text)
        page, places = await editor(client, "places")
        turn = await client.post("/admin/flows/places/simulate", data={**places, "sim_start": "step",
                                                                       "sim_from": "search"})
        text = html.unescape(turn.text)
        assert turn.status_code == 200 and "Action « find_places » : résultat" in text
        # OpenFisca is off in tests: the estimate is a sample, labelled as such, and the flow goes on.
        page, rights = await editor(client, "rights")
        turn = await client.post("/admin/flows/rights/simulate", data={**rights, "sim_start": "step",
                                                                       "sim_from": "compute"})
        text = html.unescape(turn.text)
        assert "Action « check_rights » : résultat d'exemple" in text
        assert "🧪 Exemple (OpenFisca se charge encore)" in text and "C'est une estimation" in text
        engine_ms = [float(m.replace(",", ".")) for m in re.findall(r"Moteur : ([\d.]+) ms", text)]
        assert engine_ms
        print("simulator per turn (HTTP round trip, ms):", ", ".join(f"{t * 1000:.1f}" for t in timings),
              "| engine for the rights estimate turn (ms):", ", ".join(f"{t:.2f}" for t in engine_ms))


async def test_a_person_mid_flow_when_their_step_is_published_away(settings_for):
    """The person waits on the consent question; a publish renames that step: their answer is not
    lost in an error, they get the new welcome (nothing stored unhandled)."""
    from flows.library import shipped_sources

    async with app_client(settings_for()) as client:
        await admin_client(client)
        person = Person(client)
        assert "Êtes-vous d'accord" in text_of(await person.send("bonjour"))
        renamed = shipped_sources()["welcome"].replace("next: privacy", "next: consent_question") \
            .replace("  privacy:\n", "  consent_question:\n")
        listing = await client.get("/admin/flows")
        imported = await client.post("/admin/flows/import", data={"csrf_token": csrf_of(listing.text)},
                                     files={"file": ("welcome.yaml", renamed, "application/yaml")})
        assert imported.status_code == 303, imported.text
        preview = await client.get("/admin/flows/welcome/publish")
        assert "Étape « consent_question » ajoutée" in html.unescape(preview.text)
        assert "Étape « privacy » supprimée" in html.unescape(preview.text)
        version = re.search(r'name="version" value="(\d+)"', preview.text).group(1)
        published = await client.post("/admin/flows/welcome/publish",
                                      data={"csrf_token": csrf_of(preview.text), "version": version})
        assert published.status_code == 303
        said = text_of(await person.send(choice="oui"))
        assert "Êtes-vous d'accord" in said  # asked again, under the new step
        from sqlalchemy import func, select

        from conversations.models import INBOUND, Message

        async with client.app.state.rt.sessionmaker() as session:
            unhandled = (await session.execute(select(func.count()).select_from(Message).where(
                Message.direction == INBOUND, Message.handled_at.is_(None)))).scalar()
        assert unhandled == 0


async def test_strings_by_languages_table_edits_one_cell_in_the_draft(settings_for):
    """The shipped flows are complete in fr/en/ar/uk; an admin empties then fills a cell of the
    draft (a multi-line text stays multi-line); the save is audited; people still see the published text."""
    async with app_client(settings_for()) as client:
        await admin_client(client)
        page, fields = await editor(client, "rights", tab="languages")
        assert "Textes × langues : tout est traduit" in html.unescape(page)
        assert 'id="flow-translations" open' in page
        assert fields["tr|age|ask|uk"] == "🎂 Скільки вам років?"
        assert "\n" in fields["tr|intro|say|ar"]  # a textarea: its lines survive a save
        fields["tr|age|ask|uk"] = ""
        await client.post("/admin/flows/rights/save", data=fields)
        page, fields = await editor(client, "rights")
        assert "1 case manquante" in html.unescape(page) and "❓ Manquant" in page
        fields["tr|age|ask|uk"] = "🎂 Скільки Вам років?"
        saved = await client.post("/admin/flows/rights/save", data=fields)
        assert saved.status_code == 303
        draft = yaml.safe_load((await client.get("/admin/flows/rights/export", params={"which": "draft"})).text)
        assert draft["steps"]["age"]["ask"]["uk"] == "🎂 Скільки Вам років?"
        assert draft["steps"]["intro"]["say"]["ar"].count("\n") >= 2
        assert draft["steps"]["couple"]["buttons"][0]["label"]["fr"] == "🧍 Seul ou seule"  # untouched
        from sqlalchemy import select

        from admin.audit import AuditEntry

        async with client.app.state.rt.sessionmaker() as session:
            actions = (await session.execute(select(AuditEntry.action))).scalars().all()
        assert actions.count("flow.draft_saved") == 2
