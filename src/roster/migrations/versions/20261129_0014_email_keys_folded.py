"""Work email and userName keys folded as Roster folds them (``matching.email_key``,
``derived_columns.user_name_key``): migration 0007 computed the keys of the personas it
found with SQL's ``lower(trim(...))``, which folds ASCII as Roster does but not the rest
(SQLite's ``lower`` leaves every other letter as it is, PostgreSQL's neither normalises
to NFC nor folds ``ß`` to ``ss``). A User written before 0007 whose email holds such a
letter was then not found by ``userName eq`` or ``emails[value eq]`` with the same
address, and its userName did not collide with the same one written since.

Only the personas whose userName or emails hold a character that is not ASCII are read
(the keys of the others are right), and only the keys that differ are written.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from roster.core.derived_columns import user_name_key
from roster.core.matching import email_key

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERSONAS = sa.table(
    "personas",
    *(sa.column(name) for name in ("seq", "person_id", "user_name", "email_address")),
    *(sa.column(name) for name in ("work_email_key", "user_name_key")),
)
_PERSONS = sa.table("persons", sa.column("id"), sa.column("email_address"))
_SOURCES = (
    _PERSONAS.c.user_name,
    _PERSONAS.c.email_address,
    _PERSONS.c.email_address,
)


def _not_ascii(column: sa.ColumnClause[Any], dialect: str) -> sa.ColumnElement[bool]:
    """True when ``column`` holds a character of more than one byte (UTF-8)."""
    if dialect == "postgresql":
        return sa.func.octet_length(column) != sa.func.char_length(column)
    return sa.func.length(sa.cast(column, sa.LargeBinary)) != sa.func.length(column)


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            _PERSONAS.c.seq,
            _PERSONAS.c.user_name,
            _PERSONAS.c.email_address,
            _PERSONS.c.email_address,
            _PERSONAS.c.work_email_key,
            _PERSONAS.c.user_name_key,
        )
        .join_from(_PERSONAS, _PERSONS, _PERSONS.c.id == _PERSONAS.c.person_id)
        .where(sa.or_(*(_not_ascii(column, bind.dialect.name) for column in _SOURCES)))
    ).all()
    changes = []
    for seq, user_name, work_email, person_email, work_key, name_key in rows:
        persona = {"user_name": user_name, "email_address": work_email}
        keys = {
            "_work": email_key(work_email),
            "_user_name": user_name_key({"email_address": person_email}, persona),
        }
        if (keys["_work"], keys["_user_name"]) != (work_key, name_key):
            changes.append({"_seq": seq, **keys})
    if changes:
        bind.execute(
            sa.update(_PERSONAS)
            .where(_PERSONAS.c.seq == sa.bindparam("_seq"))
            .values(work_email_key=sa.bindparam("_work"), user_name_key=sa.bindparam("_user_name")),
            changes,
        )


def downgrade() -> None:
    pass  # the keys stay folded: 0007's are what no version of Roster computes
