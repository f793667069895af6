"""The SCIM User's attributes on personas (spec/scim.md): userName (and its key),
externalId (unique in an account), the User's own texts, the enterprise extension's
texts and manager; a team's (SCIM Group's) externalId (no foreign key: see db/tables.py).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXTS = (
    ("user_name", 256),
    ("scim_external_id", 255),
    ("nick_name", 256),
    ("preferred_language", 64),
    ("locale", 64),
    ("timezone", 64),
    ("user_type", 64),
    ("department", 256),
    ("cost_center", 256),
    ("organization", 256),
    ("division", 256),
    ("user_name_key", 256),
    ("work_email_key", 320),
)


def upgrade() -> None:
    for name, length in _TEXTS:
        op.add_column("personas", sa.Column(name, sa.String(length=length), nullable=True))
    op.add_column("personas", sa.Column("manager_persona_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_personas_account_id_user_name_key", "personas", ["account_id", "user_name_key"]
    )
    op.create_index("ix_personas_work_email_key", "personas", ["work_email_key"])
    op.create_index(
        "ix_personas_account_id_scim_external_id",
        "personas",
        ["account_id", "scim_external_id"],
        unique=True,
    )
    # A team's (SCIM Group's) externalId.
    op.add_column("teams", sa.Column("scim_external_id", sa.String(length=255), nullable=True))
    op.create_index(
        "ix_teams_account_id_scim_external_id",
        "teams",
        ["account_id", "scim_external_id"],
        unique=True,
    )
    # Personas written before: their userName is their work email, else their person's.
    op.execute(
        "UPDATE personas SET work_email_key = lower(trim(email_address)), "
        "user_name_key = lower(trim(coalesce(email_address, "
        "(SELECT email_address FROM persons WHERE persons.id = personas.person_id))))"
    )


def downgrade() -> None:
    op.drop_index("ix_teams_account_id_scim_external_id", "teams")
    op.drop_column("teams", "scim_external_id")
    op.drop_index("ix_personas_account_id_scim_external_id", "personas")
    op.drop_index("ix_personas_work_email_key", "personas")
    op.drop_index("ix_personas_account_id_user_name_key", "personas")
    op.drop_column("personas", "manager_persona_id")
    for name, _ in reversed(_TEXTS):
        op.drop_column("personas", name)
