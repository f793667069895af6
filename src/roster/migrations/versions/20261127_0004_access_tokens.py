"""Opaque bearer tokens, stored as SHA-256 digests; the token signing key is gone.

Bearer tokens were HS256 JWTs signed with ``ROSTER_SECRET_KEY`` or, when it was unset,
with a key kept in clear in ``instance_settings``: a copy of the database could forge
tokens. Tokens are now random values whose digests live here, like API keys, and
nothing that grants access is stored in clear. Tokens issued before this migration
stop working (clients ask for a new one, as they do when one expires).

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_access_tokens_client_id_api_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_access_tokens")),
    )
    op.create_index(op.f("ix_access_tokens_client_id"), "access_tokens", ["client_id"])
    op.create_index(op.f("ix_access_tokens_expires_at"), "access_tokens", ["expires_at"])
    op.drop_table("instance_settings")


def downgrade() -> None:
    op.create_table(
        "instance_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_settings")),
    )
    op.drop_index(op.f("ix_access_tokens_expires_at"), table_name="access_tokens")
    op.drop_index(op.f("ix_access_tokens_client_id"), table_name="access_tokens")
    op.drop_table("access_tokens")
