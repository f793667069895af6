"""SCIM's ``formatted`` and ``primary`` of addresses (spec/scim.md), kept beside each
address: ``addresses.formatted`` (as sent, up to 1,024 characters) and
``addresses.is_primary`` (as sent: true on a User's primary address at most, null
when not sent). Both are
nullable: adding them rewrites no rows, on either backend.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("addresses", sa.Column("formatted", sa.String(length=1024), nullable=True))
    op.add_column("addresses", sa.Column("is_primary", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("addresses") as batch:
        batch.drop_column("is_primary")
        batch.drop_column("formatted")
