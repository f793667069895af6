"""Client rotation (the admin API, spec/events.md): when a client's credentials were last
replaced, and the replaced secrets and keys still honoured during a grace period.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_clients", sa.Column("rotated_at", sa.DateTime(timezone=True)))
    op.create_table(
        "retired_credentials",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_retired_credentials_client_id_api_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_retired_credentials")),
    )
    op.create_index(op.f("ix_retired_credentials_client_id"), "retired_credentials", ["client_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_retired_credentials_client_id"), table_name="retired_credentials")
    op.drop_table("retired_credentials")
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("rotated_at")
