"""The personas' name order holds each persona's id and position (PostgreSQL): the index
of ``(account_id, sort_last, sort_first, person_id)`` is rebuilt with ``INCLUDE (id,
seq)``, so the personas of a name prefix (SCIM's ``name.familyName sw``, a range of
``sort_last``) are read from the index alone. Visiting each match's row to learn its id
and position was most of matching a common prefix at a million personas (2,096 matches,
883 of 2,120 pages read from outside PostgreSQL's buffers: 24 ms of a 68 ms page).

SQLite's index already holds the position (its rowid), and it has no ``INCLUDE``.

The rebuild holds a lock on ``personas`` while it runs (a few seconds a million personas).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_personas_account_id_sort_last_sort_first_person_id"
_COLUMNS = ["account_id", "sort_last", "sort_first", "person_id"]


def _rebuild(include: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(_NAME, table_name="personas")
    op.create_index(_NAME, "personas", _COLUMNS, postgresql_include=include)


def upgrade() -> None:
    _rebuild(["id", "seq"])


def downgrade() -> None:
    _rebuild([])
