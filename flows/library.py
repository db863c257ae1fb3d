"""The set of flows in use: loaded from YAML files, validated as a whole, swapped atomically.

An invalid file is refused with an error naming the file, the step and the problem; the previous
valid set stays in use.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from flows.definition import Flow, FlowError, check_flow, parse_flow

DEFINITIONS = Path(__file__).parent / "definitions"
REQUIRED = ("welcome", "menu", "talk")


@dataclass
class FlowLibrary:
    flows: dict[str, Flow] = field(default_factory=dict)
    revision: str = ""
    actions: set[str] = field(default_factory=set)

    def load(self, directory: Path = DEFINITIONS) -> list[str]:
        """(Re)load every *.yaml of `directory`. Returns errors; on any error nothing changes."""
        paths = sorted(directory.glob("*.yaml"))
        flows, errors = load_set(paths, self.actions or None)
        if errors:
            return errors
        self.flows = flows
        self.revision = hashlib.sha256(
            b"".join(p.read_bytes() for p in paths)
        ).hexdigest()[:12]
        return []

    def menu_flows(self) -> list[Flow]:
        return [flow for flow in self.flows.values() if flow.menu_label]


def load_set(paths: list[Path], actions: set[str] | None = None) -> tuple[dict[str, Flow], list[str]]:
    """Every file of `paths` parsed and validated, then the set checked as a whole; errors name the
    file. The parse and the check are load_sources' remembered ones (_parsed, _checked), keyed by
    the file's name and text: every app start loads the same shipped files."""
    flows: dict[str, Flow] = {}
    files: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    for path in paths:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            errors.append(f"{path.name}: cannot be read: {error}")
            continue
        try:
            flow = _parsed(source, path.name)
        except FlowError as error:
            errors.append(str(error))
            continue
        if flow.flow in flows:
            errors.append(f"{path.name}: flow id {flow.flow!r} is already used by {files[flow.flow][0]}")
            continue
        flows[flow.flow] = flow
        files[flow.flow] = (path.name, source)
    if errors:
        return flows, errors
    errors = [f"the flow {name!r} is required but missing" for name in REQUIRED if name not in flows]
    known, allowed = frozenset(flows), frozenset(actions) if actions is not None else None
    for flow_id, (name, source) in files.items():
        problem = _checked(source, name, known, allowed)
        if problem:
            errors.append(f"{name}: {problem}")
    return flows, errors


def shipped_sources(directory: Path = DEFINITIONS) -> dict[str, str]:
    """The shipped flows' YAML texts by flow id (the defaults of every organisation)."""
    sources: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        source = path.read_text(encoding="utf-8")
        try:
            sources[parse_flow(source, path.name).flow] = source
        except FlowError:
            sources[path.stem] = source  # reported by load_sources
    return sources


@functools.lru_cache(maxsize=256)
def _parsed(source: str, name: str) -> Flow:
    """parse_flow, remembered: a set is checked again on every edit of one of its flows, and the
    others have not changed. Flows are never mutated once validated (the engine only reads them)."""
    return parse_flow(source, name)


def load_sources(sources: dict[str, str], actions: set[str] | None = None) -> tuple[dict[str, Flow], list[str]]:
    """Like load_set, from YAML texts keyed by a name (a flow id): each parsed and validated, then
    the whole set checked (required flows, links between flows, actions). Errors name the key."""
    flows: dict[str, Flow] = {}
    names: dict[str, str] = {}
    errors: list[str] = []
    for name, source in sources.items():
        try:
            flow = _parsed(source, name)
        except FlowError as error:
            errors.append(str(error))
            continue
        if flow.flow in flows:
            errors.append(f"{name}: flow id {flow.flow!r} is already used by {names[flow.flow]}")
            continue
        flows[flow.flow] = flow
        names[flow.flow] = name
    if errors:
        return flows, errors
    errors = [f"the flow {name!r} is required but missing" for name in REQUIRED if name not in flows]
    known, allowed = frozenset(flows), frozenset(actions) if actions is not None else None
    for flow_id in flows:
        problem = _checked(sources[names[flow_id]], names[flow_id], known, allowed)
        if problem:
            errors.append(f"{names[flow_id]}: {problem}")
    return flows, errors


@functools.lru_cache(maxsize=256)
def _checked(source: str, name: str, known: frozenset, actions: frozenset | None) -> str | None:
    """check_flow of a parsed source against a set of flow ids, remembered (None: fine)."""
    try:
        check_flow(_parsed(source, name), set(known), set(actions) if actions is not None else None)
    except FlowError as error:
        return str(error)
    return None


def sources_revision(sources: dict[str, str]) -> str:
    return hashlib.sha256("".join(sources[k] for k in sorted(sources)).encode()).hexdigest()[:12]


def check_files(files: list[str]) -> int:
    """`allervers check-flows [FILE...]`: print problems, exit 1 if any."""
    if files:
        paths = [Path(f) for f in files]
        shipped = [p for p in sorted(DEFINITIONS.glob("*.yaml")) if p.name not in {q.name for q in paths}]
        paths = shipped + paths
    else:
        paths = sorted(DEFINITIONS.glob("*.yaml"))
    _, errors = load_set(paths)
    for error in errors:
        print(f"error: {error}")
    if not errors:
        print(f"{len(paths)} flow files are valid")
    return 1 if errors else 0
