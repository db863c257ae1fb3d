"""ALLERVERS_ENV=production: refuse to start on settings that are fine on a laptop and unsafe on
a server. The message names every problem and how to fix it."""

from __future__ import annotations

MIN_SECRET_LENGTH = 32


class ProductionRefused(SystemExit):
    """Raised by create_app(): uvicorn prints the message and the process exits with status 1."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Allervers refuses to start in production mode (ALLERVERS_ENV=production):\n"
                         + "\n".join(f"  - {problem}" for problem in problems))


def production_problems(settings) -> list[str]:
    """Every unsafe setting, in plain words (empty: fine, or not in production mode)."""
    if (settings.env or "").strip().lower() != "production":
        return []
    problems = []
    if "secret_key" not in settings.model_fields_set:
        problems.append("no secret key: set ALLERVERS_SECRET_KEY to a long random value "
                        "(the same for every process), e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
    elif len(settings.secret_key) < MIN_SECRET_LENGTH:
        problems.append(f"ALLERVERS_SECRET_KEY is too short: {MIN_SECRET_LENGTH} characters at least")
    if settings.seed_demo:
        problems.append("the demo seed is on (a known worker password): set ALLERVERS_SEED_DEMO=false")
    if not settings.public_url.lower().startswith("https://"):
        problems.append("ALLERVERS_PUBLIC_URL is not https: cookies and webhooks need TLS")
    if settings.is_sqlite:
        problems.append("the database is SQLite (one machine, one writer): set ALLERVERS_DATABASE_URL "
                        "to PostgreSQL (postgresql+asyncpg://...)")
    if settings.secure_cookies is False:
        problems.append("ALLERVERS_SECURE_COOKIES=false: workers' session cookies would travel in clear")
    return problems


def check_production(settings) -> None:
    problems = production_problems(settings)
    if problems:
        raise ProductionRefused(problems)
