"""One Settings object, read from the environment (prefix ``OFFERD_``) and an optional ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFERD_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: offerd runs its own PostgreSQL under OFFERD_HOME.",
    )
    home: Path = Field(default=Path(".offerd"), description="Data folder (embedded PostgreSQL).")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for /admin/v1. Unset: the admin API refuses all."
    )
    host: str = "127.0.0.1"
    port: int = 8080
    base_domain: str | None = Field(
        default=None,
        description="With it set, a Host of {site}.grow.{BASE_DOMAIN} or {site}.{BASE_DOMAIN} "
        "must name the API key's site.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL subscribers reach offerd at (hosted pages, email links). "
        "Default http://{HOST}:{PORT}.",
    )

    db_pool_min: int = 2
    db_pool_max: int = 20
    db_acquire_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Longest a request waits for a database connection: past it (PostgreSQL "
        "down or every connection busy) it gets 503 db_connection_failure with Retry-After.",
    )
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl_seconds: int = 1800
    auth_cache_seconds: float = Field(
        default=2.0, description="How long a resolved API key or site is cached in a process."
    )

    worker_concurrency: int = Field(
        default=32, description="Jobs other than deliveries one worker process runs at once."
    )
    delivery_concurrency: int = Field(
        default=16,
        description="Deliveries (delivery.* jobs) one worker process runs at once, in slots of "
        "their own: billing and checkout jobs never wait behind slow destinations.",
    )
    delivery_per_host_concurrency: int = Field(
        default=8,
        description="Deliveries to one destination host one worker process runs at once; more "
        "wait in the queue, so one host cannot take every delivery slot.",
    )
    delivery_deadline_seconds: float = Field(
        default=30.0,
        description="Longest a delivery attempt may take as a whole (connect, send, read); "
        "past it the attempt fails and is retried on the schedule.",
    )
    billing_fetch_budget_seconds: float = Field(
        default=1.5,
        gt=0,
        description="How long a decision waits for a subscription (or customer) a remote billing "
        "provider has that the mirror does not yet; past it the decision is made without it "
        "(explain says so) and the fetch finishes in the background.",
    )
    job_lease_seconds: float = Field(
        default=30.0, description="A job held by a dead worker is taken up again after this."
    )
    job_idle_poll_seconds: float = Field(
        default=5.0, description="Longest wait for work without a NOTIFY."
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_from: str = "offerd@localhost"

    allow_private_destinations: bool = Field(
        default=False,
        description="Allow webhook/Slack/Segment destinations on private, loopback and "
        "link-local addresses and plain http (tests, local development).",
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys that encrypt stored secrets (channel secrets, billing provider "
        "keys), comma-separated, newest first: encrypts with the first, decrypts with any. "
        "Required with OFFERD_DATABASE_URL; unset with the embedded database, one is generated "
        "under OFFERD_HOME.",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token /metrics requires. Unset: /metrics is open (scrape it on a "
        "private network only).",
    )

    console_session_hours: float = Field(
        default=12,
        gt=0,
        le=24 * 30,
        description="How long a console sign-in lasts (the session cookie and its row).",
    )
    console_login_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed console sign-ins per email (and 4x that per client address) in 15 "
        "minutes before further attempts are refused with 429 until the window passes.",
    )

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
