"""Nothing personal in any log line, at any level: a log record factory that scrubs every record
as it is made, whichever logger, handler or formatter then prints it.

- Database errors (SQLAlchemy, asyncpg, sqlite3, aiosqlite, and anything raised from inside those
  libraries) lose their message: drivers put the statement's values there (asyncpg:
  ``invalid input for query argument $7: 'Zoé …'``; a unique violation's DETAIL names the key),
  whatever ``hide_parameters`` says. What is kept: the class, the SQLSTATE / SQLite error name, the
  constraint, table and column names, and the statement with its literals masked. A message made
  only of words and identifiers (``UNIQUE constraint failed: messages.channel``) is kept.
- Other exceptions keep their message with quoted values, e-mail addresses, phone-like numbers,
  tokens and query strings masked. Tracebacks list code lines only: local variables never.
- Records of libraries (SQLAlchemy's ``Row (…)`` at DEBUG, aiosqlite's ``executing partial(…)``,
  uvicorn, httpx, asyncio…) get the same masking on their arguments. The project's own messages
  are written with ids only and are left as they are (their exception arguments are scrubbed).
- ``opaque(value)`` names a person's identifier in a log line (a keyed hash, stable per secret).

``install(secret)`` is idempotent; create_app() and ``allervers serve`` call it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import numbers
import re
import secrets
import traceback

APP_LOGGERS = ("allervers", "kernel", "bots", "conversations", "handoff", "flows", "rights", "directory", "admin")
DB_MODULES = ("sqlalchemy", "asyncpg", "sqlite3", "aiosqlite", "_sqlite3", "psycopg", "alembic")
_DB_PATHS = tuple(f"/{name}/" for name in ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg"))
WITHHELD = "message withheld"

_key = secrets.token_bytes(32)
_installed = False


def opaque(value: object) -> str:
    """A short keyed hash of an identifier (a web chat identity, a phone number, a platform id):
    the same person reads the same in every line, and the line tells nothing about them."""
    return hmac.new(_key, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]


# Masking of free text ----------------------------------------------------------------------
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_PATTERNS = [
    (re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{10,}"), "bot…"),  # Telegram bot token in a URL
    (re.compile(r"\?[^\s'\"<>]*=[^\s'\"<>]*"), "?…"),  # query strings (identities, tokens)
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""), lambda m: m.group(0)[0] + "…" + m.group(0)[0]),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[0-9a-fA-F]{16,}\b"), "<id>"),
    (re.compile(r"\b(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{22,}"), "<token>"),
    (re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.M), "input_value=…"),  # pydantic
]
_NUMBER = re.compile(r"\+?\d(?:[ .]?\d){5,}")  # phone-like: 6 digits or more, spaces or dots between


_DECIMAL = re.compile(r"\d+\.\d+")


def _mask_number(match: re.Match) -> str:
    """IPv4 addresses and decimals (durations) stay; other long numbers may be phone numbers."""
    number = match.group(0)
    return number if _IPV4.fullmatch(number) or _DECIMAL.fullmatch(number) else "<num>"


def redact(text: str) -> str:
    """Mask what may be a value in free text: quoted strings, e-mails, phone-like numbers, tokens,
    query strings. Words and identifiers stay."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _NUMBER.sub(_mask_number, text)


# Exceptions ------------------------------------------------------------------------------
_IDENTIFIER = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?"
_SAFE_DB_MESSAGE = re.compile(rf"[A-Za-z][A-Za-z ]*(?:: {_IDENTIFIER}(?:, {_IDENTIFIER})*)?", re.ASCII)
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")
_SQL_NUMBER = re.compile(r"\b\d{5,}\b")


def _module_of(error: BaseException) -> str:
    return type(error).__module__ or ""


def _raised_in_driver(error: BaseException) -> bool:
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and any(part in last.tb_frame.f_code.co_filename for part in _DB_PATHS)


def is_database_error(error: BaseException) -> bool:
    return _module_of(error).split(".")[0] in DB_MODULES or _raised_in_driver(error)


def _db_details(error: BaseException) -> list[str]:
    """SQLSTATE, SQLite error name, constraint/table/column: from the error, its driver error, causes."""
    found: dict[str, str] = {}
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        for label, attribute in (("sqlstate", "sqlstate"), ("sqlstate", "pgcode"), ("sqlite", "sqlite_errorname"),
                                 ("constraint", "constraint_name"), ("table", "table_name"),
                                 ("column", "column_name")):
            value = getattr(current, attribute, None)
            if isinstance(value, str) and value and label not in found and re.fullmatch(r"[\w.$]+", value):
                found[label] = value
        todo.extend(c for c in (getattr(current, "orig", None), getattr(current, "driver_exception", None),
                                current.__cause__) if isinstance(c, BaseException))
    return [f"{label}={value}" for label, value in found.items()]


def _masked_statement(error: BaseException) -> str | None:
    statement = getattr(error, "statement", None)
    if not isinstance(statement, str) or not statement:
        return None
    statement = _SQL_NUMBER.sub("?", _SQL_LITERAL.sub("?", statement))
    statement = " ".join(statement.split())
    return statement if len(statement) <= 400 else statement[:400] + " …"


def _own_message(error: BaseException) -> str:
    """The message the error was made with (not SQLAlchemy's composite __str__)."""
    if hasattr(error, "orig") and _module_of(error).startswith("sqlalchemy"):
        orig = getattr(error, "orig", None)
        return "" if orig is None else _own_message(orig)
    try:
        return str(error)
    except Exception:
        return ""


def describe(error: BaseException) -> str:
    """One exception's message, scrubbed (no class name)."""
    if is_database_error(error):
        parts = []
        message = _own_message(error).strip()
        parts.append(message if message and _SAFE_DB_MESSAGE.fullmatch(message) else WITHHELD)
        parts.extend(_db_details(error))
        statement = _masked_statement(error)
        if statement:
            parts.append(f"[SQL: {statement}]")
        return " ".join(parts)
    try:
        message = str(error)
    except Exception:
        message = "<unprintable>"
    return redact(message)


def _name(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__", None) else f"{module}.{cls.__qualname__}"


def format_exception(error: BaseException, _seen: set[int] | None = None, _indent: str = "") -> str:
    """Like traceback.format_exception (cause and context chain included), every message scrubbed,
    no local variables."""
    seen = _seen if _seen is not None else set()
    if id(error) in seen:
        return ""
    seen.add(id(error))
    out: list[str] = []
    if error.__cause__ is not None:
        out.append(format_exception(error.__cause__, seen, _indent))
        out.append(f"\n{_indent}The above exception was the direct cause of the following exception:\n\n")
    elif error.__context__ is not None and not error.__suppress_context__:
        out.append(format_exception(error.__context__, seen, _indent))
        out.append(f"\n{_indent}During handling of the above exception, another exception occurred:\n\n")
    if error.__traceback__ is not None:
        out.append(f"{_indent}Traceback (most recent call last):\n")
        for frame in traceback.format_tb(error.__traceback__):  # code lines only, never locals
            out.append(_indent + frame.replace("\n", "\n" + _indent).rstrip(" "))
    message = describe(error)
    out.append(f"{_indent}{_name(error)}: {message}\n" if message else f"{_indent}{_name(error)}\n")
    database = is_database_error(error)
    for note in getattr(error, "__notes__", None) or ():
        out.append(f"{_indent}{WITHHELD if database else redact(str(note))}\n")
    for number, inner in enumerate(getattr(error, "exceptions", None) or (), 1):
        if isinstance(inner, BaseException):
            out.append(f"{_indent}+-- {number} --\n")
            out.append(format_exception(inner, seen, _indent + "  | "))
    return "".join(out)


# Records ---------------------------------------------------------------------------------
class _Masked:
    """A library's log argument, printed masked whether the format says %s or %r."""

    __slots__ = ("_str", "_repr")

    def __init__(self, value: object) -> None:
        self._str, self._repr = _safe(str, value), _safe(repr, value)

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return self._repr


def _safe(render, value) -> str:
    try:
        return redact(render(value))
    except Exception:
        return "<unprintable>"


def _scrub_arg(value: object, library: bool):
    if isinstance(value, BaseException):
        return f"{_name(value)}: {describe(value)}"
    if not library or value is None or isinstance(value, numbers.Number):  # %d and %f keep working
        return value
    if isinstance(value, str):
        return redact(value)
    return _Masked(value)


def _is_app_logger(name: str) -> bool:
    return name.split(".")[0] in APP_LOGGERS


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    library = not _is_app_logger(record.name)
    args = record.args
    if args:
        if isinstance(args, dict):
            record.args = {key: _scrub_arg(value, library) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_scrub_arg(value, library) for value in args)
    elif isinstance(record.msg, BaseException):
        record.msg = f"{_name(record.msg)}: {describe(record.msg)}"
    elif library:
        record.msg = redact(record.msg) if isinstance(record.msg, str) else _Masked(record.msg)
    exc_info = record.exc_info
    if exc_info and isinstance(exc_info, tuple) and exc_info[1] is not None:
        # Formatters print exc_text when it is set: the scrubbed traceback, never the original.
        record.exc_text = format_exception(exc_info[1]).rstrip("\n")
    return record


def install(secret: str | None = None) -> None:
    """Scrub every log record from now on (idempotent). `secret` keys opaque()."""
    global _installed, _key
    if secret:
        _key = hashlib.sha256(b"allervers-logs\0" + secret.encode()).digest()
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            return scrub_record(record)
        except Exception:  # a log line must never raise; drop what could not be scrubbed
            record.msg, record.args = f"log record of {record.name} withheld (scrubbing failed)", ()
            if record.exc_info:
                record.exc_text = f"{_name(record.exc_info[1])}: {WITHHELD}" if record.exc_info[1] else None
            return record

    factory.allervers_scrubber = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    _installed = True
