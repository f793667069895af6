"""Name keys searchable by prefix (docs/scim.md, "Filters"): on PostgreSQL the indexes of
``persons.first_name_key`` and ``last_name_key`` are rebuilt with ``text_pattern_ops``, which
serves equality as before and also a prefix (SCIM's ``name.familyName sw``) as a range of
the index, whatever the database's collation, and they hold the person's id, so a
prefix's persons are read from the index alone (at a million persons a four-letter prefix
of a common name has ~3,000, and visiting each person's row was 18 of a page's 51 ms).
SQLite's indexes compare bytes already.

The two keys also get finer planner statistics (a target of 1000, as ``search_text`` in
0002): with the default, PostgreSQL guessed a four-letter prefix to hold 1% of the persons
(10,011 for 770) and read the whole account rather than probe each of them (358 ms
against 9 ms at a million persons). The statistics are gathered again here.

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
    target = 1000 if ops else -1
    for key in _KEYS:
        op.execute(f"ALTER TABLE persons ALTER COLUMN {key} SET STATISTICS {target}")
        name = f"ix_persons_{key}"
        op.drop_index(name, table_name="persons")
        if ops is None:
            op.create_index(name, "persons", [key])
        else:
            op.create_index(
                name, "persons", [key], postgresql_ops={key: ops[key]}, postgresql_include=["id"]
            )
    if ops:
        op.execute(f"ANALYZE persons ({', '.join(_KEYS)})")


def upgrade() -> None:
    _rebuild(dict.fromkeys(_KEYS, "text_pattern_ops"))


def downgrade() -> None:
    _rebuild(None)
