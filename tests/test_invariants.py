"""Architecture rules, checked on the source (ARCHITECTURE.md, "Invariants")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["allervers", "bots", "conversations", "flows", "handoff", "rights", "directory"]


def sources(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_flows_import_nothing_from_the_rest():
    for path, tree in sources("flows"):
        forbidden = imported_modules(tree) & {"bots", "handoff", "conversations", "allervers", "sqlalchemy", "fastapi"}
        assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


def test_bots_never_touch_the_database():
    for path, tree in sources("bots"):
        forbidden = imported_modules(tree) & {"sqlalchemy", "conversations", "handoff", "allervers"}
        assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


def test_only_receive_and_transitions_write_conversation_status():
    allowed = {ROOT / "conversations" / "receive.py", ROOT / "handoff" / "transitions.py"}
    for package in PACKAGES:
        for path, tree in sources(package):
            for node in ast.walk(tree):
                targets = node.targets if isinstance(node, ast.Assign) else []
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == "status":
                        owner = ast.unparse(target.value)
                        if "conversation" in owner.lower():
                            assert path in allowed, f"{path.relative_to(ROOT)} writes {owner}.status"
                if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("update(Conversation)"):
                    raise AssertionError(f"{path.relative_to(ROOT)} updates conversations in bulk")


def test_only_settings_reads_the_environment():
    for package in PACKAGES:
        for path, tree in sources(package):
            if path == ROOT / "allervers" / "settings.py":
                continue
            text = ast.unparse(tree)
            assert "os.environ" not in text and "getenv(" not in text, f"{path.relative_to(ROOT)} reads the environment"
