"""The domain model as SQLAlchemy Core tables (the migrations create exactly these).

The columns of the fields clients write are derived from their declarations
(``core/fields.py``). Every value a client sends is stored as sent; beside it, ``*_key``
columns hold the comparison keys of the matching rules (``core/matching.py``) so that an
exact lookup is an index lookup on both backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from roster.core.fields import (
    ACCOUNT,
    ADDRESS,
    BUDGET,
    CLIENT,
    PERSON,
    PERSONA,
    ROLE,
    TEAM,
    WEBHOOK,
    Field,
    Kind,
    stored,
)
from roster.core.fields import BUDGET_TYPES as BUDGET_TYPES
from roster.core.fields import PERSONA_STATUSES as PERSONA_STATUSES

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

CORE_ROLES = ("Owner", "Admin", "Payer", "Viewer", "Accountant", "User")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _byte_order_string(length: int) -> TypeEngine[str]:
    """A string that sorts by code point on both backends (SQLite's default; "C" on PostgreSQL)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _column(field: Field, **options: Any) -> Column[Any]:
    """The column of a declared field."""
    kind: TypeEngine[Any] = Date() if field.kind is Kind.DATE else String(field.max_length)
    if field.unique:
        options["unique"] = True
    return Column(field.name, kind, nullable=field.nullable, **options)


def _columns(fields: Mapping[str, Field]) -> list[Column[Any]]:
    """The columns of an owner's declared fields, but references (written with their keys)."""
    return [_column(field) for field in stored(fields) if field.kind is not Kind.REFERENCE]


def _length(field: Field) -> int:
    assert field.max_length is not None
    return field.max_length


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    ]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _row_number() -> Column[int]:
    """An internal integer key, never shown to clients: SQLite's VACUUM keeps it stable."""
    return Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        Identity(start=2),
        primary_key=True,
    )


accounts = Table(
    "accounts",
    metadata,
    _column(ACCOUNT["id"], primary_key=True),
    *_columns({name: f for name, f in ACCOUNT.items() if name != "id"}),
    Column("created_at", UtcDateTime(), nullable=False),
)

persons = Table(
    "persons",
    metadata,
    # The cursor of the Persons API (after-id / last_id), nothing else. It starts at 2
    # so that the seed's default "after-id": 1 starts at the first person.
    _row_number(),
    Column("id", Uuid, nullable=False, unique=True),
    *_columns(PERSON),
    *_timestamps(),
    Column("email_key", String(_length(PERSON["email_address"])), unique=True),
    Column("phone_key", String(_length(PERSON["phone_number"])), index=True),
    Column("first_name_key", String(_length(PERSON["first_name"]))),
    Column("last_name_key", String(_length(PERSON["last_name"]))),
    # Equality and prefixes (SCIM's ``sw`` on names, Backend.starts_with): PostgreSQL's
    # pattern operator class orders by bytes, whatever the database's collation;
    # SQLite's default (BINARY) does already. The person's id is in the index, so a
    # prefix's persons are read from it alone (no row of a person is visited).
    *(
        Index(None, key, postgresql_ops={key: "text_pattern_ops"}, postgresql_include=["id"])
        for key in ("first_name_key", "last_name_key")
    ),
    sqlite_autoincrement=True,
)

roles = Table(
    "roles",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    *_columns(ROLE),
    Column("name_key", String(_length(ROLE["name"])), nullable=False),
    Column("type", String(16)),
    *_timestamps(),
    UniqueConstraint("account_id", "name_key"),
    CheckConstraint("type IS NULL OR type = 'core'", name="type"),
)

personas = Table(
    "personas",
    metadata,
    # The SQLite search index (FTS5) refers to personas by this number.
    _row_number(),
    Column("id", Uuid, nullable=False, unique=True),
    Column("person_id", ForeignKey("persons.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    *_columns(PERSONA),
    Column("role_id", ForeignKey("roles.id"), nullable=False, index=True),
    Column("created_by_persona_id", ForeignKey("personas.id", ondelete="SET NULL")),
    # SCIM's enterprise manager: another persona of the account. No foreign key (SQLite
    # cannot add one to a table without rebuilding it, which loses the search triggers):
    # a manager that is gone reads as none.
    Column("manager_persona_id", Uuid),
    *_timestamps(),
    # Copies of the person's folded names, so that an account's people are listed
    # in order from one index without touching persons.
    Column("sort_last", _byte_order_string(_length(PERSON["last_name"])), nullable=False),
    Column("sort_first", _byte_order_string(_length(PERSON["first_name"])), nullable=False),
    # Folded person and persona fields, one per line; see core/matching.search_text.
    Column("search_text", Text, nullable=False),
    # The key of the persona's SCIM userName (core/derived_columns.py): its user_name,
    # else its work email, else its person's email, folded.
    Column("user_name_key", String(_length(PERSONA["user_name"]))),
    # The key of its (work) email, as the person's email_key: SCIM's emails[value eq].
    Column("work_email_key", String(_length(PERSONA["email_address"])), index=True),
    UniqueConstraint("person_id", "account_id"),
    Index(None, "account_id", "user_name_key"),
    Index(None, "account_id", "scim_external_id", unique=True),
    CheckConstraint(_in("status", PERSONA_STATUSES), name="status"),
    # The listing's order; on PostgreSQL it holds each persona's id and position too, so a
    # range of names (SCIM's familyName sw) is read from the index alone (migration 0012).
    Index(
        None,
        "account_id",
        "sort_last",
        "sort_first",
        "person_id",
        postgresql_include=["id", "seq"],
    ),
    Index(None, "account_id", "status"),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    *_columns(TEAM),
    Column(
        "primary_owner_persona_id",
        ForeignKey("personas.id", ondelete="SET NULL"),
        index=True,
    ),
    *_timestamps(),
    Index(None, "account_id", "scim_external_id", unique=True),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("persona_id", ForeignKey("personas.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("team_id", "persona_id"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    *_columns(BUDGET),
    Column(
        "primary_owner_persona_id",
        ForeignKey("personas.id", ondelete="SET NULL"),
        index=True,
    ),
    *_timestamps(),
    CheckConstraint(_in("type", BUDGET_TYPES), name="type"),
)

budget_members = Table(
    "budget_members",
    metadata,
    Column("budget_id", ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
    Column("persona_id", ForeignKey("personas.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("budget_id", "persona_id"),
)

addresses = Table(
    "addresses",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("persona_id", ForeignKey("personas.id", ondelete="CASCADE"), nullable=False, index=True),
    *_columns(ADDRESS),
    # SCIM's addresses.primary, as sent (null when it was not).
    Column("is_primary", Boolean),
    *_timestamps(),
)

api_clients = Table(
    "api_clients",
    metadata,
    Column("id", String(64), primary_key=True),
    _column(CLIENT["name"]),
    # SHA-256 digests of the random secret and key; the clear values exist only in
    # the one answer that created the client.
    Column("secret_hash", String(64), nullable=False),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),
    Column("all_accounts", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
    # When its secret and key were last replaced (POST /clients/{id}/rotate).
    Column("rotated_at", UtcDateTime()),
)


def _client_reference() -> Column[str]:
    """The API client a credential or session belongs to (gone with the client)."""
    return Column(
        "client_id",
        ForeignKey("api_clients.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


retired_credentials = Table(
    "retired_credentials",
    metadata,
    # The SHA-256 digest of a secret or key a rotation replaced, kept only for its grace
    # period: it still proves the client until ``expires_at`` (core/auth.py).
    Column("digest", String(64), primary_key=True),
    _client_reference(),
    Column("kind", String(16), nullable=False),  # "secret" or "api_key"
    Column("expires_at", UtcDateTime(), nullable=False),
)

api_client_accounts = Table(
    "api_client_accounts",
    metadata,
    Column("client_id", ForeignKey("api_clients.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("client_id", "account_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    # The SHA-256 digest of a random 256-bit bearer token; the clear token exists only in
    # the answer of the token endpoint that issued it.
    Column("token_hash", String(64), primary_key=True),
    _client_reference(),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    # The SHA-256 digest of the session id the browser's cookie holds; the id itself is
    # never stored (core/sessions.py).
    Column("id_digest", String(64), primary_key=True),
    _client_reference(),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)


events = Table(
    "events",
    metadata,
    # Assigned in commit order (core/events.py), never reused: a consumer that remembers
    # the last id it read misses nothing (docs/events.md).
    Column("id", BigInteger().with_variant(Integer, "sqlite"), Identity(), primary_key=True),
    Column("account_id", String(_length(ACCOUNT["id"])), nullable=False),
    Column("type", String(32), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False, index=True),
    Column("resource_type", String(16), nullable=False),
    Column("resource_id", String(64), nullable=False),
    # The person the event carries data of (person, persona, address events): erasure
    # finds its events by this.
    Column("person_id", Uuid, index=True),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(64)),
    Column("actor_name", String(256)),
    Column("request_id", String(128)),
    # JSON texts, written by core with core names; each door renders them in its own.
    Column("changed", Text),
    Column("data", Text),
    Index(None, "account_id", "id"),
    Index(None, "account_id", "resource_id", "id"),
    Index(None, "account_id", "actor_id", "id"),
    sqlite_autoincrement=True,
)

event_prunes = Table(
    "event_prunes",
    metadata,
    # Every event up to this id is gone: reading after an older id is 410 events_expired.
    Column("pruned_through", BigInteger, primary_key=True, autoincrement=False),
    Column("pruned_at", UtcDateTime(), nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    _column(WEBHOOK["id"], primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    _column(WEBHOOK["url"]),
    # A JSON list of event types or ``resource.*`` (an empty list: every event).
    Column("types", Text, nullable=False),
    _column(WEBHOOK["description"]),
    # Signing secrets (``whsec_`` + base64): kept in clear, as HMAC needs them. During a
    # rotation's grace period deliveries are signed with both (core/webhooks.py).
    Column("secret", String(64), nullable=False),
    Column("previous_secret", String(64)),
    Column("previous_secret_expires_at", UtcDateTime()),
    Column("state", String(16), nullable=False),
    Column("failing_since", UtcDateTime()),
    # The delivery cursor: the last event the receiver acknowledged (or skipped by the
    # types filter); the deliverer sends the account's events after it, in id order.
    Column("delivered_through", BigInteger, nullable=False),
    # The failed attempts at the next event, and when to try it again (None: at once).
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    # Raised by every change an admin makes (PATCH, replay, rotation): a delivery that
    # began before one does not move the cursor it moved.
    Column("revision", Integer, nullable=False),
    *_timestamps(),
    CheckConstraint("state IN ('active', 'failing', 'disabled')", name="state"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), Identity(), primary_key=True),
    Column("webhook_id", ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    # The receiver's status, or why there was none (a timeout, a refused address).
    Column("status_code", Integer),
    Column("error", String(256)),
    Column("duration_ms", Integer, nullable=False),
    Column("attempted_at", UtcDateTime(), nullable=False, index=True),
    Index(None, "webhook_id", "id"),
    sqlite_autoincrement=True,
)

#: One row per elected role (``webhooks``): who holds it, until when (core/deliverer.py).
leases = Table(
    "leases",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)
