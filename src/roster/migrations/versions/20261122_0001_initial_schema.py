"""Initial schema: the whole domain model, with its lookup and search indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 22:41:45.791668
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: SQLite's search index. Triggers keep it in step with personas.search_text.
SQLITE_SEARCH_INDEX = (
    """CREATE VIRTUAL TABLE personas_search USING fts5(
        search_text, content='personas', content_rowid='seq',
        tokenize='trigram case_sensitive 1')""",
    """CREATE TRIGGER personas_search_insert AFTER INSERT ON personas BEGIN
        INSERT INTO personas_search (rowid, search_text) VALUES (new.seq, new.search_text);
    END""",
    """CREATE TRIGGER personas_search_delete AFTER DELETE ON personas BEGIN
        INSERT INTO personas_search (personas_search, rowid, search_text)
        VALUES ('delete', old.seq, old.search_text);
    END""",
    """CREATE TRIGGER personas_search_update AFTER UPDATE OF search_text ON personas BEGIN
        INSERT INTO personas_search (personas_search, rowid, search_text)
        VALUES ('delete', old.seq, old.search_text);
        INSERT INTO personas_search (rowid, search_text) VALUES (new.seq, new.search_text);
    END""",
)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("external_ref", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_accounts_external_ref")),
    )
    op.create_table(
        "api_clients",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=64), nullable=False),
        sa.Column("all_accounts", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_api_clients_api_key_hash")),
    )
    op.create_table(
        "instance_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_settings")),
    )
    op.create_table(
        "persons",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False, start=2),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("first_name", sa.String(length=256), nullable=True),
        sa.Column("last_name", sa.String(length=256), nullable=True),
        sa.Column("title", sa.String(length=64), nullable=True),
        sa.Column("middle_initials", sa.String(length=32), nullable=True),
        sa.Column("dob", sa.Date(), nullable=True),
        sa.Column("gender", sa.String(length=64), nullable=True),
        sa.Column("nationality", sa.String(length=64), nullable=True),
        sa.Column("country_of_residence", sa.String(length=64), nullable=True),
        sa.Column("email_address", sa.String(length=320), nullable=True),
        sa.Column("phone_number", sa.String(length=64), nullable=True),
        sa.Column("external_ref", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=True),
        sa.Column("phone_key", sa.String(length=64), nullable=True),
        sa.Column("first_name_key", sa.String(length=256), nullable=True),
        sa.Column("last_name_key", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_persons")),
        sa.UniqueConstraint("email_key", name=op.f("uq_persons_email_key")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_persons_external_ref")),
        sa.UniqueConstraint("id", name=op.f("uq_persons_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_persons_first_name_key"), "persons", ["first_name_key"], unique=False)
    op.create_index(op.f("ix_persons_last_name_key"), "persons", ["last_name_key"], unique=False)
    op.create_index(op.f("ix_persons_phone_key"), "persons", ["phone_key"], unique=False)

    op.create_table(
        "api_client_accounts",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_client_accounts_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_api_client_accounts_client_id_api_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "account_id", name=op.f("pk_api_client_accounts")),
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("type IS NULL OR type = 'core'", name=op.f("ck_roles_type")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_roles_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("account_id", "name_key", name=op.f("uq_roles_account_id_name_key")),
    )
    op.create_table(
        "personas",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False, start=2),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("email_address", sa.String(length=320), nullable=True),
        sa.Column("employee_number", sa.String(length=64), nullable=True),
        sa.Column("work_number", sa.String(length=64), nullable=True),
        sa.Column("job_title", sa.String(length=256), nullable=True),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.Column("created_by_persona_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "sort_last",
            sa.String(length=256).with_variant(sa.String(length=256, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sort_first",
            sa.String(length=256).with_variant(sa.String(length=256, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'deactivated', 'created', 'invited', 'inviteExpired')",
            name=op.f("ck_personas_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_personas_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_persona_id"],
            ["personas.id"],
            name=op.f("fk_personas_created_by_persona_id_personas"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_personas_person_id_persons")
        ),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_personas_role_id_roles")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_personas")),
        sa.UniqueConstraint("id", name=op.f("uq_personas_id")),
        sa.UniqueConstraint(
            "person_id", "account_id", name=op.f("uq_personas_person_id_account_id")
        ),
    )
    op.create_index(
        op.f("ix_personas_account_id_sort_last_sort_first_person_id"),
        "personas",
        ["account_id", "sort_last", "sort_first", "person_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_personas_account_id_status"), "personas", ["account_id", "status"], unique=False
    )
    op.create_index(op.f("ix_personas_role_id"), "personas", ["role_id"], unique=False)

    op.create_table(
        "addresses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("persona_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("address_line1", sa.String(length=256), nullable=False),
        sa.Column("address_line2", sa.String(length=256), nullable=True),
        sa.Column("address_line3", sa.String(length=256), nullable=True),
        sa.Column("city", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=128), nullable=True),
        sa.Column("postcode", sa.String(length=32), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["persona_id"],
            ["personas.id"],
            name=op.f("fk_addresses_persona_id_personas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_addresses")),
    )
    op.create_index(op.f("ix_addresses_persona_id"), "addresses", ["persona_id"], unique=False)

    op.create_table(
        "budgets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("primary_owner_persona_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('individual', 'shared', 'accountBalance')", name=op.f("ck_budgets_type")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_budgets_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["primary_owner_persona_id"],
            ["personas.id"],
            name=op.f("fk_budgets_primary_owner_persona_id_personas"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
    )
    op.create_index(op.f("ix_budgets_account_id"), "budgets", ["account_id"], unique=False)
    op.create_index(
        op.f("ix_budgets_primary_owner_persona_id"),
        "budgets",
        ["primary_owner_persona_id"],
        unique=False,
    )

    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("primary_owner_persona_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_teams_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["primary_owner_persona_id"],
            ["personas.id"],
            name=op.f("fk_teams_primary_owner_persona_id_personas"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
    )
    op.create_index(op.f("ix_teams_account_id"), "teams", ["account_id"], unique=False)
    op.create_index(
        op.f("ix_teams_primary_owner_persona_id"),
        "teams",
        ["primary_owner_persona_id"],
        unique=False,
    )

    op.create_table(
        "budget_members",
        sa.Column("budget_id", sa.Uuid(), nullable=False),
        sa.Column("persona_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budgets.id"],
            name=op.f("fk_budget_members_budget_id_budgets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["persona_id"],
            ["personas.id"],
            name=op.f("fk_budget_members_persona_id_personas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("budget_id", "persona_id", name=op.f("pk_budget_members")),
    )
    op.create_index(
        op.f("ix_budget_members_persona_id"), "budget_members", ["persona_id"], unique=False
    )

    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("persona_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["persona_id"],
            ["personas.id"],
            name=op.f("fk_team_members_persona_id_personas"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_team_members_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "persona_id", name=op.f("pk_team_members")),
    )
    op.create_index(
        op.f("ix_team_members_persona_id"), "team_members", ["persona_id"], unique=False
    )

    if op.get_bind().dialect.name == "postgresql":
        # Substring search (core/search.py): a trigram index over the folded text.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_personas_search_text_trgm",
            "personas",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    else:
        # The cursor starts at 2 (see tables.persons).
        op.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('persons', 1)")
        # Substring search: an FTS5 trigram index over personas.search_text, kept in
        # step by triggers so that every write path (API, import) maintains it.
        for statement in SQLITE_SEARCH_INDEX:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS personas_search")
    op.drop_table("team_members")
    op.drop_table("budget_members")
    op.drop_table("teams")
    op.drop_table("budgets")
    op.drop_table("addresses")
    op.drop_table("personas")
    op.drop_table("roles")
    op.drop_table("api_client_accounts")
    op.drop_table("persons")
    op.drop_table("instance_settings")
    op.drop_table("api_clients")
    op.drop_table("accounts")
