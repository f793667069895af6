"""A persona's display name (SCIM's ``displayName``), stored and returned as sent.

Revision ID: 0003
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("personas", sa.Column("display_name", sa.String(length=256), nullable=True))


def downgrade() -> None:
    op.drop_column("personas", "display_name")
