"""Settings: the only module that reads the environment (prefix ALLERVERS_)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


RATE_LIMITS = {
    # inbox login: every attempt per client address; failures only per account (a short lockout
    # under a distributed attack, never a permanent one; the right password from an address that
    # did not hammer goes on working until the account's failures reach their limit)
    "login_address": "10/minute;50/hour",
    "login_account": "20/15 minutes",
    # web chat: identities never seen before, per client address (a shared address: a family, a
    # social centre's wifi, stays far below); messages and voice notes per identity
    "webchat_identity_new": "10/minute;100/day",
    "webchat_message": "30/minute;500/hour",
    "upload": "10/minute;60/hour",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLERVERS_", env_file=".env", extra="ignore")

    # Storage and infrastructure
    database_url: str = "sqlite+aiosqlite:///./var/allervers.db"
    redis_url: str | None = None
    media_dir: Path = Path("./var/media")

    # Web
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32))
    # Secure cookies: None (the default) = when public_url is https; true/false forces it
    # Reverse proxies trusted for X-Forwarded-For (the client address rate limits see): comma-separated
    forwarded_allow_ips: str = "127.0.0.1"
    secure_cookies: bool | None = None
    # Workers' sessions (server-side): end after this long without a request, or this long after login
    session_idle_minutes: float = Field(default=120.0, gt=0)
    session_max_hours: float = Field(default=12.0, gt=0)
    password_min_length: int = Field(default=12, ge=8)
    # /docs, /redoc and /openapi.json (404 unless enabled)
    api_docs: bool = False

    # Organisation that receives contacts when a channel does not name one
    default_organisation: str = "demo"
    seed_demo: bool = True
    demo_worker_email: str = "camille@demo.allervers.fr"
    demo_worker_password: str = "allervers-demo"
    demo_admin_email: str = "admin@demo.allervers.fr"

    # Privacy: contacts silent for longer are deleted with their files (every purge interval, 0 = never)
    retention_days: int = 180
    retention_purge_interval: float = 3600.0

    # Telegram
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_base: str = "https://api.telegram.org"

    # WhatsApp Cloud API
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_graph_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_phone_number_id: str | None = None
    # Approved template sent outside the 24-hour window (organisations may name their own)
    whatsapp_reply_template: str | None = None
    whatsapp_template_language: str = "fr"

    # Delivery: network errors and 5xx use up an attempt (exponential backoff from the base, at most
    # delivery_max_backoff apart); rate limits (429) do not and wait what the platform says. Either
    # way a message still failing after delivery_max_seconds of retries is marked failed (WhatsApp's
    # window is 24 h; a reply that late rarely helps).
    delivery_max_attempts: int = Field(default=10, ge=1)
    delivery_base_backoff: float = 0.5
    delivery_max_backoff: float = Field(default=300.0, gt=0)
    delivery_max_seconds: float = Field(default=3600.0, gt=0)
    # Where a process notes each send the moment it succeeds, until the database has its outcome
    # (without Redis; with Redis the notes are kept there). Default: <media_dir>/../outbox-journal
    delivery_journal_dir: Path | None = None
    # Sends of a process awaiting the platform's answer at once: the most replies a crash can send
    # twice (Telegram accepts ~30 messages/s per bot: a few in flight; WhatsApp 80/s per number)
    delivery_max_in_flight: int = Field(default=16, ge=1)

    # Rights estimator: "openfisca" (real) or "off"
    rights_backend: str = "openfisca"
    rights_batch_window_ms: int = 30

    # Directory
    directory_autoload: bool = True
    # Seconds between two checks for an import (from any process): a running server reloads its
    # places after at most this long (0: never, a restart is needed)
    directory_refresh_seconds: float = Field(default=60.0, ge=0)

    # Flows published from the admin console reach every process at once through the notifier;
    # this is the fallback check of the latest revision, in seconds (0: notifications only)
    flows_refresh_seconds: float = Field(default=30.0, ge=0)

    # Flow actions (call steps): their waiting message is said only if the action is still running
    # after this many seconds (0: at once)
    action_notice_after_seconds: float = Field(default=1.5, ge=0)

    # Routing: a worker counts as present when online and seen in the inbox within this many seconds
    # (0: the online flag alone); waiting conversations are checked for escalation this often (0: never)
    routing_presence_seconds: float = Field(default=0.0, ge=0)
    routing_escalation_interval: float = Field(default=60.0, ge=0)

    # Limits
    max_text_length: int = 4096
    max_media_bytes: int = 16 * 1024 * 1024
    max_media_seconds: int = 300

    # Request bodies, capped while they stream in (allervers/bodycap.py): 413 past the cap. Voice
    # uploads get max_media_bytes + 64 KiB; other paths may be given their own cap (prefix -> bytes).
    body_max_bytes: int = Field(default=256 * 1024, ge=0)
    telegram_body_max_bytes: int = Field(default=256 * 1024, ge=0)
    whatsapp_body_max_bytes: int = Field(default=2 * 1024 * 1024, ge=0)
    webchat_body_max_bytes: int = Field(default=64 * 1024, ge=0)
    # A places file imported from the admin console (CSV/JSON of a partner's list)
    directory_import_max_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    body_max_bytes_by_path: dict[str, int] = Field(default_factory=dict)

    # Voice notes are checked and remuxed in child processes (at most this many at once), and a
    # note made of more blocks than this per second of the allowed duration is refused
    audio_workers: int = Field(default=1, ge=1)
    audio_max_blocks_per_second: int = Field(default=100, ge=1)

    # Rate limits (allervers/ratelimit.py, the `limits` library's notation: "5/minute;20/hour").
    # Keyed per account / client address / web chat identity; Redis when configured, memory
    # otherwise. Authenticated platform webhooks are never limited.
    # ALLERVERS_RATE_LIMITS='{"login_address": "20/minute"}' changes the rules it names, keeps the others
    rate_limits: dict[str, str] = Field(default_factory=lambda: dict(RATE_LIMITS))
    rate_limits_enabled: bool = True

    # Directory live source (issue 14, directory/live_source.py): the data·inclusion API, queried
    # at answer time when a token is set (short cache); the shipped data answer when it fails or is slow.
    directory_api_url: str = "https://api.data.inclusion.gouv.fr"
    directory_api_token: str | None = None
    directory_api_timeout_seconds: float = Field(default=1.5, gt=0, le=10)
    directory_api_cache_seconds: float = Field(default=300.0, ge=0)

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits_over_defaults(cls, value: dict[str, str]) -> dict[str, str]:
        return {**RATE_LIMITS, **value}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
