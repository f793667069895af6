"""Configuration: one object, read from ``ROSTER_`` environment variables and ``.env``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_ORIGIN = re.compile(r"^https?://[^/\s,]+/?$")
_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$", re.IGNORECASE)


def _comma_separated(value: object) -> object:
    """A comma-separated string as a list of its non-blank parts; anything else as it is."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _postgres_primary(info: ValidationInfo) -> bool:
    """Whether the database URL validated before this field is PostgreSQL's."""
    return str(info.data.get("database_url", "")).startswith("postgres")


class Settings(BaseSettings):
    """Everything an operator can configure (see docs/operations.md)."""

    model_config = SettingsConfigDict(
        env_prefix="ROSTER_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///./roster.db"
    token_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    secret_key: SecretStr | None = None
    default_phone_region: str = "GB"
    rate_limit: str = "1200/minute"
    #: Failed authentications allowed per client address before it is refused (429).
    auth_failure_limit: str = "30/minute"
    redis_url: str | None = None
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    database_pool_size: int = Field(default=10, ge=1)
    #: ``transaction`` when PostgreSQL is reached through a pooler in transaction mode
    #: (PgBouncer ``pool_mode = transaction``): no statement is prepared across
    #: transactions, and Roster's settings are set per transaction (docs/operations.md).
    database_pooler: Literal["transaction"] | None = None
    #: Streaming replicas of the PostgreSQL primary that serve the APIs' reads
    #: (comma-separated URLs; docs/scaling.md).
    database_replica_urls: Annotated[tuple[str, ...], NoDecode] = ()
    #: A replica further behind the primary is skipped until it catches up.
    replica_max_lag_seconds: float = Field(default=5, gt=0, le=3600)
    #: How long one statement of a request may run, or wait for a lock, before the
    #: request is answered 503; 0 for no limit.
    database_statement_timeout_seconds: float = Field(default=30, ge=0, le=24 * 3600)
    log_level: str = "INFO"
    #: Origins (``https://app.example.com``) whose pages may call the APIs from a browser.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    #: How long the change log keeps events (``roster events prune``; docs/events.md).
    event_retention_days: int = Field(default=90, ge=1, le=100 * 365)
    #: Webhook targets on private, loopback and link-local addresses (and plain http://)
    #: are refused unless this is true: for tests and closed networks (docs/events.md).
    webhook_allow_private: bool = False
    #: Whether ``roster serve`` is a candidate deliverer of webhooks (``roster deliver``
    #: always is); one candidate across every process delivers (docs/events.md).
    webhook_delivery: bool = True
    #: The deliverer's lease: another candidate takes over this long after the holder
    #: stopped renewing it (it renews every third of it).
    webhook_lease_seconds: float = Field(default=15, ge=1, le=600)
    #: When set, ``GET /metrics`` needs ``Authorization: Bearer <this token>``.
    metrics_token: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+", "postgres:")):
            raise ValueError("must be sqlite:///PATH or postgresql://user:pass@host:port/db")
        scheme, _, rest = value.partition("://")
        if scheme.startswith("sqlite") and not rest.startswith("/"):
            raise ValueError(
                f"{value!r} is not a SQLite URL: write three slashes before a relative path "
                "(sqlite:///roster.db) and four before an absolute one "
                "(sqlite:////var/lib/roster/roster.db)"
            )
        return value

    @field_validator("database_pooler", mode="before")
    @classmethod
    def _pooler_or_none(cls, value: object) -> object:
        return None if value in ("", "none") else value

    @field_validator("database_pooler")
    @classmethod
    def _pooler_needs_postgres(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not _postgres_primary(info):
            raise ValueError("a pooler stands in front of PostgreSQL: needs a postgresql:// URL")
        return value

    @field_validator("database_replica_urls", mode="before")
    @classmethod
    def _comma_separated_replicas(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("database_replica_urls")
    @classmethod
    def _replicas_of_postgres(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("postgresql:", "postgresql+", "postgres:")):
                raise ValueError("each must be a postgresql:// URL")
        if value and not _postgres_primary(info):
            raise ValueError("replicas serve a PostgreSQL primary: needs a postgresql:// URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated_origins(cls, value: object) -> object:
        value = _comma_separated(value)
        if isinstance(value, list | tuple):
            for origin in value:
                if origin != "*" and not _ORIGIN.match(str(origin)):
                    raise ValueError(
                        f"{origin!r} is not an origin: write scheme://host[:port], "
                        "comma-separated (https://app.example.com,http://localhost:3000)"
                    )
            return tuple(str(origin).rstrip("/") for origin in value)
        return value

    @field_validator("metrics_token")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (try GB, US, FR)")
        return region

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _rate_limit_syntax(cls, value: str) -> str:
        if not _RATE.match(value):
            raise ValueError("must look like '1200/minute', '20/second' or '10000 per hour'")
        return value
