"""One settings object for the whole service, read from the environment and `.env`."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from slotease.kit.crypto import Keyring, KeyringError, load_keyring
from slotease.kit.durations import parse_duration
from slotease.kit.offsets import parse_offsets

log = logging.getLogger(__name__)

# The issuer of the tokens this service mints (SLOTEASE_JWT_ISSUER changes it).
DEFAULT_ISSUER = "slotease"
# No token lives longer than this, whatever its signer chose: a leaked token must expire soon.
MAX_ACCESS_TOKEN_TTL_SECONDS = 24 * 3600

RATE_LIMIT_PATTERN = re.compile(r"^\s*\d+\s*/\s*(second|minute|hour|day)s?\s*$")

RateLimit = Annotated[str, Field(description="A limit such as `1000/hour` or `20/minute`.")]


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    env: Literal["development", "test", "production"] = Field(
        default="development", validation_alias="SLOTEASE_ENV"
    )
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # The app itself connects as a NOINHERIT login role that cannot bypass RLS; by default it is
    # the DATABASE_URL with the user swapped for this role (see db.urls).
    app_database_url: str | None = Field(default=None, validation_alias="SLOTEASE_APP_DATABASE_URL")
    app_db_role: str = Field(default="slotease_app", validation_alias="SLOTEASE_APP_DB_ROLE")
    app_db_password: str | None = Field(default=None, validation_alias="SLOTEASE_APP_DB_PASSWORD")
    # Jobs and maintenance connect as their own login role, the only one besides the owner that
    # may become service_role; by default the DATABASE_URL with the user swapped for this role.
    worker_database_url: str | None = Field(
        default=None, validation_alias="SLOTEASE_WORKER_DATABASE_URL"
    )
    worker_db_role: str = Field(
        default="slotease_worker", validation_alias="SLOTEASE_WORKER_DB_ROLE"
    )
    worker_db_password: str | None = Field(
        default=None, validation_alias="SLOTEASE_WORKER_DB_PASSWORD"
    )
    # Set on every connection of the API's and the worker's pools (0 turns one off): a runaway
    # statement or a transaction left open cannot hold locks and connections for long.
    db_statement_timeout_seconds: float = Field(
        default=15.0, ge=0, validation_alias="SLOTEASE_DB_STATEMENT_TIMEOUT"
    )
    worker_statement_timeout_seconds: float = Field(
        default=600.0, ge=0, validation_alias="SLOTEASE_WORKER_STATEMENT_TIMEOUT"
    )
    db_idle_in_transaction_timeout_seconds: float = Field(
        default=60.0, ge=0, validation_alias="SLOTEASE_DB_IDLE_IN_TRANSACTION_TIMEOUT"
    )
    # `transaction`: the API's connections go through a pooler in transaction mode (PgBouncer
    # 1.18), which keeps no prepared statement and passes no startup options on: the API's
    # pool prepares nothing and sends no options (put the timeouts on the role instead, see
    # docs/operations.md). The worker's URL must stay direct: LISTEN and session locks.
    db_pooler: Literal["none", "transaction"] = Field(
        default="none", validation_alias="SLOTEASE_DB_POOLER"
    )
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Streaming replicas for the reads that tolerate lag (comma-separated libpq URLs, used as
    # given: the API's login role on each replica, a physical copy of the primary's roles). A
    # replica serves only while it has replayed what the primary had written at most
    # `replica_max_lag_seconds` ago, checked every `replica_check_seconds` (see db.replicas).
    read_database_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="SLOTEASE_READ_DATABASE_URL"
    )
    replica_max_lag_seconds: float = Field(
        default=2.0, gt=0, validation_alias="SLOTEASE_REPLICA_MAX_LAG"
    )
    replica_check_seconds: float = Field(
        default=0.5, gt=0, validation_alias="SLOTEASE_REPLICA_CHECK_INTERVAL"
    )
    data_dir: Path = Field(default=Path(".data"), validation_alias="SLOTEASE_DATA_DIR")
    jwt_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("SLOTEASE_JWT_SECRET", "SUPABASE_JWT_SECRET")
    )
    # Keys sealing the sensitive fields, `kid:base64 key,...`, the first one encrypting (see
    # kit.crypto and `slotease keys`); outside production one is generated into the data dir.
    encryption_keys: str | None = Field(default=None, validation_alias="SLOTEASE_ENCRYPTION_KEYS")
    access_token_ttl_seconds: int = Field(
        default=3600,
        ge=60,
        le=MAX_ACCESS_TOKEN_TTL_SECONDS,
        validation_alias="SLOTEASE_ACCESS_TOKEN_TTL",
    )
    # The `iss` of the tokens this service mints; also accepted when verifying.
    jwt_issuer: str = Field(
        default=DEFAULT_ISSUER, min_length=1, validation_alias="SLOTEASE_JWT_ISSUER"
    )
    # Other issuers whose tokens (signed with the same secret) are accepted, comma-separated:
    # a Supabase project's is `https://<project ref>.supabase.co/auth/v1`.
    jwt_accepted_issuers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="SLOTEASE_JWT_ACCEPTED_ISSUERS"
    )
    refresh_token_ttl_days: int = Field(
        default=30, ge=1, validation_alias="SLOTEASE_REFRESH_TTL_DAYS"
    )
    # Who owns the accounts: SlotEase (`standalone`: its own auth schema and /v1/auth routes)
    # or Supabase Auth (`supabase`: SlotEase only reads auth.users). `auto` asks the database
    # (app.accounts_in_supabase(): auth.users belongs to another role than SlotEase's schema).
    auth_mode: Literal["auto", "standalone", "supabase"] = Field(
        default="auto", validation_alias="SLOTEASE_AUTH"
    )
    # The Supabase project (`https://<ref>.supabase.co`): with the anon key, the account routes
    # and the web sign-in go to its Auth API; its issuer (`<url>/auth/v1`) is accepted and its
    # JWKS (`<url>/auth/v1/.well-known/jwks.json`) verifies asymmetric tokens.
    supabase_url: str | None = Field(default=None, validation_alias="SUPABASE_URL")
    supabase_anon_key: str | None = Field(default=None, validation_alias="SUPABASE_ANON_KEY")
    # For erasure only: Supabase Auth's admin API deletes the erased person's account.
    supabase_service_role_key: str | None = Field(
        default=None, validation_alias="SUPABASE_SERVICE_ROLE_KEY"
    )
    # Where the public keys of RS256/ES256 access tokens are published (JWKS); derived from
    # SUPABASE_URL when unset. HS256 tokens keep being checked with the JWT secret.
    jwks_url: str | None = Field(default=None, validation_alias="SLOTEASE_JWKS_URL")
    jwks_refresh_seconds: float = Field(
        default=600, ge=10, validation_alias="SLOTEASE_JWKS_REFRESH_SECONDS"
    )
    api_key_rotation_grace_minutes: int = Field(
        default=60 * 24, ge=0, validation_alias="SLOTEASE_API_KEY_ROTATION_GRACE_MINUTES"
    )
    rate_limit_api_key: RateLimit = Field(
        default="1000/hour", validation_alias="SLOTEASE_RATE_LIMIT_API_KEY"
    )
    rate_limit_user: RateLimit = Field(
        default="3000/hour", validation_alias="SLOTEASE_RATE_LIMIT_USER"
    )
    rate_limit_anon: RateLimit = Field(
        default="300/hour", validation_alias="SLOTEASE_RATE_LIMIT_ANON"
    )
    # Per client address, on the sign-up, sign-in and recovery routes, on top of the above.
    rate_limit_auth: RateLimit = Field(
        default="60/minute", validation_alias="SLOTEASE_RATE_LIMIT_AUTH"
    )
    # Failed sign-ins from one address within 15 minutes before the address is throttled; far
    # above the per-account threshold, so that an office behind one address is not locked out
    # because one of its accounts is attacked.
    login_failures_per_address: int = Field(
        default=100, ge=1, validation_alias="SLOTEASE_LOGIN_FAILURES_PER_ADDRESS"
    )
    pool_min_size: int = Field(default=2, ge=1, validation_alias="SLOTEASE_POOL_MIN_SIZE")
    pool_max_size: int = Field(default=20, ge=1, validation_alias="SLOTEASE_POOL_MAX_SIZE")
    # How long a request waits for a pooled connection before a 503 (the database is down or
    # every connection busy).
    pool_timeout_seconds: float = Field(default=5.0, gt=0, validation_alias="SLOTEASE_POOL_TIMEOUT")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias="SLOTEASE_MAX_BODY_BYTES"
    )
    log_level: str = Field(default="INFO", validation_alias="SLOTEASE_LOG_LEVEL")
    # Behind a trusted proxy the client address comes from X-Forwarded-For; off by default so
    # that a client cannot pick its own rate-limit bucket.
    trust_forwarded_for: bool = Field(
        default=False, validation_alias="SLOTEASE_TRUST_FORWARDED_FOR"
    )
    # How many proxies in front of the app append to X-Forwarded-For: the client is the hop
    # just before them, since everything further left is whatever the client sent.
    trusted_proxy_count: int = Field(
        default=1, ge=1, validation_alias="SLOTEASE_TRUSTED_PROXY_COUNT"
    )
    # The Secure flag of the web cookies. Unset: on in production; elsewhere only when the
    # request itself came over https (behind a TLS-terminating proxy it arrives as http).
    cookie_secure: bool | None = Field(default=None, validation_alias="SLOTEASE_COOKIE_SECURE")
    # A Bearer token Prometheus must present on /metrics; unset, only loopback and private
    # client addresses may read it.
    metrics_token: str | None = Field(default=None, validation_alias="SLOTEASE_METRICS_TOKEN")
    # Realtime: the Redis key and channel prefix keeps deployments sharing one Redis apart; the
    # send queue bounds what a slow WebSocket client may hold; the replay buffer is per topic.
    realtime_prefix: str = Field(default="slotease:rt", validation_alias="SLOTEASE_REALTIME_PREFIX")
    realtime_send_queue: int = Field(
        default=256, ge=16, validation_alias="SLOTEASE_REALTIME_SEND_QUEUE"
    )
    realtime_replay: int = Field(default=500, ge=0, validation_alias="SLOTEASE_REALTIME_REPLAY")
    # Realtime limits: open connections per client address (across processes with Redis), the
    # size of one client message (8 KiB holds a subscribe to all 100 topics a connection may
    # follow), and a client's message rate (a sustained rate per second and a burst, which must
    # admit resubscribing to every topic of a connection one message at a time).
    realtime_connections_per_address: int = Field(
        default=50, ge=1, validation_alias="SLOTEASE_REALTIME_CONNECTIONS_PER_ADDRESS"
    )
    realtime_max_message_bytes: int = Field(
        default=8192, ge=256, validation_alias="SLOTEASE_REALTIME_MAX_MESSAGE_BYTES"
    )
    realtime_messages_per_second: float = Field(
        default=5.0, gt=0, validation_alias="SLOTEASE_REALTIME_MESSAGES_PER_SECOND"
    )
    realtime_message_burst: int = Field(
        default=120, ge=1, validation_alias="SLOTEASE_REALTIME_MESSAGE_BURST"
    )
    # How often each connection's topics are authorized again (a removed member, a revoked
    # API key stop receiving within this period).
    realtime_recheck_seconds: float = Field(
        default=5.0, gt=0, validation_alias="SLOTEASE_REALTIME_RECHECK_SECONDS"
    )
    # How long a freed place is held for the first waiter of its slot before passing on.
    waitlist_offer_minutes: int = Field(
        default=15, ge=1, le=1440, validation_alias="SLOTEASE_WAITLIST_OFFER_MINUTES"
    )
    # Jobs: `slotease serve` turns the in-process worker on; `slotease worker` runs one alone.
    run_worker: bool = Field(default=False, validation_alias="SLOTEASE_RUN_WORKER")
    worker_concurrency: int = Field(default=4, ge=1, validation_alias="SLOTEASE_WORKER_CONCURRENCY")
    # Slots beside those that only take interactive jobs (0: none), so that long bulk jobs
    # holding every other slot never make a person wait.
    worker_interactive_concurrency: int = Field(
        default=1, ge=0, validation_alias="SLOTEASE_WORKER_INTERACTIVE_CONCURRENCY"
    )
    # How often a worker records that it is alive; one silent for three beats is taken for dead
    # and its jobs run again (jobs.retry_stalled, every minute).
    worker_heartbeat_seconds: float = Field(
        default=10.0, gt=0, validation_alias="SLOTEASE_WORKER_HEARTBEAT"
    )
    job_max_attempts: int = Field(default=8, ge=1, validation_alias="SLOTEASE_JOB_MAX_ATTEMPTS")
    # Notifications: reminder offsets before an appointment ("24h,1h"; units d, h, m) and the
    # queue position that earns a "you are next soon" alert.
    reminder_offsets: str = Field(default="24h,1h", validation_alias="SLOTEASE_REMINDER_OFFSETS")
    queue_alert_position: int = Field(
        default=3, ge=1, validation_alias="SLOTEASE_QUEUE_ALERT_POSITION"
    )
    # Links in emails (invitations) point here, with their single-use token as `token`.
    public_url: str = Field(default="http://127.0.0.1:8000", validation_alias="SLOTEASE_PUBLIC_URL")
    # Providers: a channel whose provider is not configured records `skipped`, never `sent`.
    smtp_host: str | None = Field(default=None, validation_alias="SLOTEASE_SMTP_HOST")
    smtp_port: int = Field(default=587, validation_alias="SLOTEASE_SMTP_PORT")
    smtp_username: str | None = Field(default=None, validation_alias="SLOTEASE_SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, validation_alias="SLOTEASE_SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=True, validation_alias="SLOTEASE_SMTP_STARTTLS")
    mail_from: str = Field(
        default="SlotEase <no-reply@slotease.localhost>", validation_alias="SLOTEASE_SMTP_FROM"
    )
    sendgrid_api_key: str | None = Field(default=None, validation_alias="SLOTEASE_SENDGRID_API_KEY")
    sendgrid_base_url: str = Field(
        default="https://api.sendgrid.com", validation_alias="SLOTEASE_SENDGRID_BASE_URL"
    )
    twilio_account_sid: str | None = Field(
        default=None, validation_alias="SLOTEASE_TWILIO_ACCOUNT_SID"
    )
    twilio_auth_token: str | None = Field(
        default=None, validation_alias="SLOTEASE_TWILIO_AUTH_TOKEN"
    )
    twilio_from: str | None = Field(default=None, validation_alias="SLOTEASE_TWILIO_FROM")
    twilio_base_url: str = Field(
        default="https://api.twilio.com", validation_alias="SLOTEASE_TWILIO_BASE_URL"
    )
    fcm_project_id: str | None = Field(default=None, validation_alias="SLOTEASE_FCM_PROJECT_ID")
    fcm_access_token: str | None = Field(default=None, validation_alias="SLOTEASE_FCM_ACCESS_TOKEN")
    fcm_base_url: str = Field(
        default="https://fcm.googleapis.com", validation_alias="SLOTEASE_FCM_BASE_URL"
    )
    provider_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="SLOTEASE_PROVIDER_TIMEOUT"
    )
    # Circuit breaker per provider: open after this many consecutive failures, probe again
    # after the cool-down.
    breaker_failures: int = Field(default=5, ge=1, validation_alias="SLOTEASE_BREAKER_FAILURES")
    breaker_cooldown_seconds: float = Field(
        default=60.0, gt=0, validation_alias="SLOTEASE_BREAKER_COOLDOWN"
    )
    # Webhooks: private, loopback and plain-http targets are refused unless this is set (tests,
    # private deployments). A failing delivery is retried for `webhook_retry_hours`; that many
    # failed deliveries in a row disable the webhook. A rotated secret keeps signing alongside
    # the new one for the overlap.
    allow_private_webhooks: bool = Field(
        default=False, validation_alias="SLOTEASE_ALLOW_PRIVATE_WEBHOOKS"
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="SLOTEASE_WEBHOOK_TIMEOUT"
    )
    webhook_retry_hours: float = Field(
        default=24.0, ge=0, validation_alias="SLOTEASE_WEBHOOK_RETRY_HOURS"
    )
    webhook_disable_after_failures: int = Field(
        default=3, ge=1, validation_alias="SLOTEASE_WEBHOOK_DISABLE_AFTER_FAILURES"
    )
    webhook_secret_overlap_hours: float = Field(
        default=24.0, ge=0, validation_alias="SLOTEASE_WEBHOOK_SECRET_OVERLAP_HOURS"
    )
    # How often a serving process that runs jobs checks the alert rules (ops.monitoring).
    alert_interval_seconds: float = Field(
        default=60.0, gt=0, validation_alias="SLOTEASE_ALERT_INTERVAL"
    )
    # WebSocket heartbeats: the server pings every interval and closes a connection whose pong
    # does not come back within the timeout, so dead clients free their subscriptions.
    ws_ping_interval_seconds: float = Field(
        default=20.0, gt=0, validation_alias="SLOTEASE_WS_PING_INTERVAL"
    )
    ws_ping_timeout_seconds: float = Field(
        default=20.0, gt=0, validation_alias="SLOTEASE_WS_PING_TIMEOUT"
    )
    # Analytics views are refreshed hourly within these local hours of the server, inclusive.
    analytics_refresh_hours: tuple[int, int] = Field(
        default=(6, 22), validation_alias="SLOTEASE_ANALYTICS_REFRESH_HOURS"
    )
    # Retention, in months: partitions older than this are dropped; analytics events and
    # appointments lose their personal data after `anonymize_after_months` instead.
    retention_months_audit_log: int = Field(
        default=24, ge=1, validation_alias="SLOTEASE_RETENTION_MONTHS_AUDIT_LOG"
    )
    retention_months_notifications: int = Field(
        default=12, ge=1, validation_alias="SLOTEASE_RETENTION_MONTHS_NOTIFICATIONS"
    )
    retention_months_analytics_events: int = Field(
        default=36, ge=1, validation_alias="SLOTEASE_RETENTION_MONTHS_ANALYTICS_EVENTS"
    )
    anonymize_after_months: int = Field(
        default=13, ge=1, validation_alias="SLOTEASE_ANONYMIZE_AFTER_MONTHS"
    )
    # Retention of free text, as durations ("30d", "12h"): past it, webhook delivery payloads,
    # report contents, notification bodies and feedback comments lose their words (and so do
    # the audit rows that copied them); the rows, statuses and figures stay.
    retention_webhook_payloads: Duration = Field(
        default=timedelta(days=30), validation_alias="SLOTEASE_RETENTION_WEBHOOK_PAYLOADS"
    )
    retention_report_contents: Duration = Field(
        default=timedelta(days=30), validation_alias="SLOTEASE_RETENTION_REPORT_CONTENTS"
    )
    retention_notification_bodies: Duration = Field(
        default=timedelta(days=90), validation_alias="SLOTEASE_RETENTION_NOTIFICATION_BODIES"
    )
    retention_feedback_comments: Duration = Field(
        default=timedelta(days=730), validation_alias="SLOTEASE_RETENTION_FEEDBACK_COMMENTS"
    )

    @field_validator("rate_limit_api_key", "rate_limit_user", "rate_limit_anon", "rate_limit_auth")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if not RATE_LIMIT_PATTERN.match(value):
            raise ValueError("expected a limit like '1000/hour' or '20/minute'")
        return value.replace(" ", "")

    @field_validator("jwt_accepted_issuers", "read_database_urls", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("reminder_offsets")
    @classmethod
    def _check_reminder_offsets(cls, value: str) -> str:
        parse_offsets(value)
        return value

    @field_validator("analytics_refresh_hours")
    @classmethod
    def _check_refresh_hours(cls, value: tuple[int, int]) -> tuple[int, int]:
        first, last = value
        if not 0 <= first <= last <= 23:
            raise ValueError("expected two hours [first, last] with 0 <= first <= last <= 23")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("supabase_url", "jwks_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http(s) URL")
        return value.rstrip("/")

    @property
    def supabase_auth_url(self) -> str | None:
        """The base of the Supabase project's Auth API (`<SUPABASE_URL>/auth/v1`)."""
        return f"{self.supabase_url}/auth/v1" if self.supabase_url else None

    @property
    def resolved_jwks_url(self) -> str | None:
        if self.jwks_url:
            return self.jwks_url
        auth_url = self.supabase_auth_url
        return f"{auth_url}/.well-known/jwks.json" if auth_url else None

    @property
    def accepted_jwt_issuers(self) -> frozenset[str]:
        supabase = {self.supabase_auth_url} if self.supabase_auth_url else set()
        return frozenset({self.jwt_issuer, *self.jwt_accepted_issuers, *supabase})

    @property
    def secure_cookies(self) -> bool | None:
        """True or False when decided by configuration; None: follow the request's scheme."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return True if self.env == "production" else None

    def resolved_jwt_secret(self) -> str:
        """The signing secret; in development one is generated once and kept in the data dir."""
        if self.jwt_secret:
            if len(self.jwt_secret) < 32:
                raise ConfigurationError("SLOTEASE_JWT_SECRET: must be at least 32 characters")
            return self.jwt_secret
        if self.env == "production":
            raise ConfigurationError(
                "SLOTEASE_JWT_SECRET: required when SLOTEASE_ENV=production "
                "(SUPABASE_JWT_SECRET is accepted too)"
            )
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
            log.warning(
                "SLOTEASE_JWT_SECRET is not set: generated one in %s (fine for development only)",
                path,
            )
        return path.read_text().strip()

    def resolved_keyring(self) -> Keyring:
        """The encryption keyring; in development one key is generated once in the data dir."""
        try:
            return load_keyring(
                self.encryption_keys, production=self.env == "production", data_dir=self.data_dir
            )
        except KeyringError as exc:
            raise ConfigurationError(str(exc)) from None


def describe_validation_error(exc: Exception) -> str:
    """One line naming the first bad setting by its environment variable."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        alias = (
            Settings.model_fields[field].validation_alias
            if field in Settings.model_fields
            else None
        )
        name = str(alias.choices[0]) if isinstance(alias, AliasChoices) else str(alias or field)
        return f"{name}: {first['msg']}"
    return str(exc)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
