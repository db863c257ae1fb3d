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
    # PostgreSQL connections per process: `database_pool_size` kept open, up to
    # `database_max_overflow` more under a burst (each closed again when returned: opened and closed
    # continuously under overload). Each process can use pool + overflow: keep (processes x that)
    # under PostgreSQL's max_connections (100 by default). SQLite: one connection, always.
    # Measured (bench/README.md): full load needs <= 10 per process; overloaded, ~25.
    database_pool_size: int = Field(default=20, ge=1)
    database_max_overflow: int = Field(default=5, ge=0)
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
    # A WhatsApp campaign send a crash left in doubt waits for a status webhook naming it
    # (conversations/confirmations.py): sent again once statuses of later sends have been arriving
    # for this long without one for it; recorded as sent after the longest wait with no webhook at all.
    whatsapp_confirm_grace_seconds: float = Field(default=3600.0, gt=0)
    whatsapp_confirm_max_seconds: float = Field(default=86400.0, gt=0)
    whatsapp_confirm_check_seconds: float = Field(default=5.0, gt=0)

    # Rights estimator: "openfisca" (real) or "off"
    rights_backend: str = "openfisca"
    rights_batch_window_ms: int = 30

    # Directory
    directory_autoload: bool = True
    # Only these départements' shipped open data is loaded ("44,85,49"; empty: all of France). The
    # organisation's own places and the data·inclusion API are not limited by it.
    directory_departements: str = ""
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

    # Request bodies, capped while they stream in (kernel/bodycap.py): 413 past the cap. Voice
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

    # Rate limits (kernel/ratelimit.py, the `limits` library's notation: "5/minute;20/hour").
    # Keyed per account / client address / web chat identity; Redis when configured, memory
    # otherwise. Authenticated platform webhooks are never limited.
    # ALLERVERS_RATE_LIMITS='{"login_address": "20/minute"}' changes the rules it names, keeps the others
    rate_limits: dict[str, str] = Field(default_factory=lambda: dict(RATE_LIMITS))
    rate_limits_enabled: bool = True

    # Follow-ups and reminders (followups/): the scheduler's pass every this many seconds (0: never);
    # the hour (Paris) reminders and follow-ups go out; quiet hours (no sends from quiet_start to
    # quiet_end, Paris time, nor on Sundays and French public holidays); a follow-up's default delay
    followups_interval: float = Field(default=60.0, ge=0)
    followups_send_hour: int = Field(default=10, ge=0, le=23)
    followups_quiet_start: int = Field(default=20, ge=0, le=24)
    followups_quiet_end: int = Field(default=9, ge=0, le=23)
    followups_default_days: int = Field(default=7, ge=1, le=90)

    # Scale-out (ops/, storage/): production checks, probes, metrics, JSON logs, shared media.
    # env: "development" or "production" (refuses to start on unsafe settings, ops/production.py)
    env: str = "development"
    # /metrics: with a token, only `Authorization: Bearer <token>`; without one, only clients in
    # metrics_allow_networks (comma-separated CIDRs; loopback by default)
    metrics_token: str | None = None
    metrics_allow_networks: str = "127.0.0.1/32,::1/128"
    log_json: bool = False  # one JSON object per line, with the request id (never bodies)
    # Graceful shutdown: seconds given to the batch being written and the sends in flight
    shutdown_grace_seconds: float = Field(default=8.0, ge=0)
    # Media: "local" (media_dir) or "s3" (any S3-compatible store; the bucket stays private)
    media_backend: str = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "allervers-media"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = "media/"

    # Inbox notifications (handoff/push.py): Web Push's VAPID keys (base64url, as `vapid --gen`
    # or py_vapid print them); push is off while either key is missing. The subject is a mailto: or
    # https: address the push services can reach the deployment's operator at.
    vapid_public_key: str | None = None
    vapid_private_key: str | None = None
    vapid_subject: str | None = None

    # Directory live source (issue 14, directory/live_source.py): the data·inclusion API, queried
    # at answer time when a token is set (short cache); the shipped data answer when it fails or is slow.
    directory_api_url: str = "https://api.data.inclusion.gouv.fr"
    directory_api_token: str | None = None
    directory_api_timeout_seconds: float = Field(default=1.5, gt=0, le=10)
    directory_api_cache_seconds: float = Field(default=300.0, ge=0)

    @field_validator("send_limits")
    @classmethod
    def _positive_send_limits(cls, value: dict[str, float]) -> dict[str, float]:
        for key, rate in value.items():
            if not rate > 0:
                raise ValueError(f"send_limits[{key!r}] must be above 0 (sends per second)")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits_over_defaults(cls, value: dict[str, str]) -> dict[str, str]:
        return {**RATE_LIMITS, **value}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def shipped_departements(self) -> frozenset[str]:
        """directory_departements as a set ("44, 2a" -> {"44", "2A"})."""
        return frozenset(part.strip().upper() for part in self.directory_departements.split(",") if part.strip())

    # Outreach (outreach/: sources and QR codes, consent per purpose, campaigns)
    # The bot's username (deep links https://t.me/<username>?start=<code>) and the WhatsApp number
    # people write to (international digits, https://wa.me/<number>); a missing one: no link.
    telegram_bot_username: str | None = None
    whatsapp_display_number: str | None = None
    # The platforms' send limits (outreach/pacing.py), for ALL sends of a bot or number (replies
    # and campaigns; replies first): Telegram 30/s per bot and 1/s per chat, WhatsApp 80/s per
    # phone number id. (Named campaign_* for history: they limit every send.)
    campaign_telegram_per_second: float = Field(default=30.0, gt=0)
    campaign_telegram_per_chat_seconds: float = Field(default=1.0, ge=0)
    campaign_whatsapp_per_second: float = Field(default=80.0, gt=0)
    campaign_webchat_per_second: float = Field(default=50.0, gt=0)
    # Tiers per account, over those defaults: {"whatsapp:<phone number id>": 250, "telegram:<bot id>": 30,
    # "whatsapp": 80} (a channel alone: every account of it). JSON in ALLERVERS_SEND_LIMITS.
    send_limits: dict[str, float] = Field(default_factory=dict)
    campaign_tick_seconds: float = Field(default=1.0, gt=0)
    # The share of those rates campaign sends are spaced at (the network's jitter bunches sends up).
    campaign_headroom: float = Field(default=0.97, gt=0, le=1)
    # Quiet hours (Europe/Paris): no campaign send from quiet_start to quiet_end, on Sundays and
    # French public holidays (each can be turned off).
    campaign_quiet_start: str = "20:00"
    campaign_quiet_end: str = "09:00"
    campaign_quiet_sundays: bool = True
    campaign_quiet_holidays: bool = True
    campaign_quiet_enabled: bool = True
