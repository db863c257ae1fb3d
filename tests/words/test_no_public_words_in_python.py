"""No public (person-facing) words in Python code: they live in `<room>/words/*.yaml`.

Walks the Python files of the public-facing rooms with `ast` and reports every string constant
that looks like words for a person (an emoji, a French accented letter, or a phrase of three words
or more with French stop-words), outside docstrings, logging calls, exception messages and the
short allowlist below. Each finding is listed as file:line and the start of the text.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("bots", "conversations", "flows", "handoff", "followups", "casework", "directory", "rights",
         "outreach", "words")

# Rooms other helpers are emptying on their branches at the same time: reported, not failed. The
# lead empties this set after merging, so that the test is strict everywhere.
PENDING_ROOMS: set[str] = set()

# Files whose French is for workers (French-speaking) only, never for the person. Keep it short.
WORKER_FACING = {
    "handoff/inbox.py",  # the inbox pages' form errors and list names
    "handoff/media_routes.py",  # a worker's own voice note refused
    "casework/routes.py",  # the casework forms (transfer, referral)
    "casework/console.py",  # the canned answers' console
    "casework/canned.py",  # the canned answers' variables ({prénom}, {date}) typed by workers
    "conversations/window.py",  # the WhatsApp window's failure, shown on the worker's timeline
    "bots/whatsapp.py",  # delivery failure reasons, shown on the worker's timeline
    "directory/cli.py",  # `allervers places …`: the admin's command line, in French
    "directory/importer.py",  # import reports and per-row errors, for the admin who imports
    "directory/sources.py",  # builds the shipped files from raw open data (a maintainer's script)
    "directory/flow.py",  # the worker's summary lines of what the person was shown
    "rights/answers.py",  # the person's answers as the worker's card reads them
    "rights/flow.py",  # the worker's card: readable answers and assumptions of the estimate
    "rights/mapping.py",  # the assumptions made for OpenFisca, on the worker's card
    "rights/estimator.py",  # a failure reason, logged and shown to the worker
    "outreach/routes.py",  # the admin console's campaign and source forms
    "outreach/campaigns.py",  # the admin's preview of a WhatsApp template
}

# Single strings allowed in a public room's code, as (file, start of the text): each with a reason.
ALLOWED: set[tuple[str, str]] = {
    ("conversations/language.py", "🌐"),  # the globe a person may type to open the language chooser
    ("handoff/inbox_view.py", "prénom"),  # an answer key of the flows, not words
    ("handoff/models.py", "du lundi au vendredi"),  # the default of an admin-edited column
    ("handoff/inbox_view.py", '<span aria-hidden="true">🌐</span>'),  # markup around a language's own name
    ("bots/telegram.py", "📍"),  # a signpost put before an address the catalogue words
    ("bots/telegram.py", "🔗"),  # a signpost put before a link line
    ("directory/render.py", "📞 "), ("directory/render.py", "📍 "), ("directory/render.py", "🕒 "),
    ("directory/render.py", "☎️ "),  # signposts before the words of a place (name, hours, phone)
    ("directory/render.py", "à (.+) \\(adresse à vérifier\\)"),  # reads back the finder's French
    ("directory/needs.py", "difficultes-administratives-ou-juridiques--prendre-en-compte-une-probl"),  # a thématique
    ("directory/communes.py", "^(?:(?:je suis|je vis|j habite|j habites|je dors|je reste|on est|nous "),  # parses
    ("directory/communes.py", "æ"), ("directory/communes.py", "œ"),  # letters folded when matching names
    ("directory/emergency.py", "\\b(a la rue|dehors ce soir|dormir dehors|dors dehors|sans abri|sdf|pas"),  # parses
    ("directory/needs.py", "\\blaveries?\\b|\\blaver (?:son|le|votre|mon) linge\\b|\\blave linge\\b|\\bma"),  # parses service names
}

EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u231A-\u23FF]")
ACCENTED = re.compile("[àâäçéèêëîïôöùûüÿœæÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸŒÆ«»]")
STOP_WORDS = {"le", "la", "les", "un", "une", "des", "du", "de", "et", "ou", "vous", "votre", "vos",
              "nous", "est", "pas", "pour", "avec", "sur", "dans", "au", "aux", "ce", "cette", "qui",
              "que", "je", "il", "elle", "en", "ne", "se", "sont", "mais"}
WORD = re.compile(r"[A-Za-zÀ-ÿ']+")
LOGGING = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def looks_public(text: str) -> bool:
    if EMOJI.search(text) or ACCENTED.search(text):
        return True
    words = WORD.findall(text)
    if len(words) >= 3 and sum(word.lower() in STOP_WORDS for word in words) >= 2:
        return True
    return False


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _excused(tree: ast.AST) -> set[int]:
    """Constants inside logging calls, raise statements and exception constructors."""
    ids: set[int] = set()

    def mark(node):
        for inner in ast.walk(node):
            if isinstance(inner, ast.Constant):
                ids.add(id(inner))

    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            mark(node)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            if (name in LOGGING and owner in ("log", "logger", "logging", "_log")) or name.endswith(("Error", "Exception")):
                mark(node)
        elif isinstance(node, ast.Assert):
            mark(node)
    return ids


def findings(path: Path, relative: str = "") -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _docstrings(tree) | _excused(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
            if looks_public(text) and not any(relative == file and text.startswith(start) for file, start in ALLOWED):
                found.append((node.lineno, text))
    return sorted(found)


def report(rooms) -> list[str]:
    lines = []
    for room in rooms:
        for path in sorted((ROOT / room).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in WORKER_FACING or "/migrations/" in relative:
                continue
            for line, text in findings(path, relative):
                lines.append(f"{relative}:{line}: {text[:70]!r}")
    return lines


def test_no_public_words_in_the_python_of_public_rooms():
    found = report([room for room in ROOMS if room not in PENDING_ROOMS])
    assert not found, ("public words in Python code (move them to <room>/words/fr.yaml and translate):\n"
                       + "\n".join(found))


def test_the_detector_sees_public_words_and_ignores_code():
    assert looks_public("🤔 Je n'ai pas bien compris.")
    assert looks_public("Votre message est bien arrivé")
    assert looks_public("Vous pouvez nous écrire ici")
    assert looks_public("vous pouvez nous contacter pour un rendez-vous")
    assert not looks_public("conversation_assigned")
    assert not looks_public("select id from message where contact_id = :id")
    assert not looks_public("text/event-stream")


def test_the_walk_reports_file_and_line(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Docstring with é."""\nimport logging\nlog = logging.getLogger()\n'
                      'log.info("déjà logged")\nTEXT = "👋 Bonjour"\nraise ValueError("évité")\n', encoding="utf-8")
    assert findings(sample) == [(5, "👋 Bonjour")]
