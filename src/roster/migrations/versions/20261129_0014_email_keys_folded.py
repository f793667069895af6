"""Work email and userName keys folded as Roster folds them (``matching.email_key``,
``derived_columns.user_name_key``): migration 0007 computed the keys of the personas it
found with SQL's ``lower(trim(...))``, which folds ASCII as Roster does but not the rest
(SQLite's ``lower`` leaves every other letter as it is, PostgreSQL's neither normalises
to NFC nor folds ``ß`` to ``ss``). A User written before 0007 whose email holds such a
letter was then not found by ``userName eq`` or ``emails[value eq]`` with the same
address, and its userName did not collide with the same one written since.

Only the personas whose userName, emails or keys hold a character that is not ASCII are
read (the keys of the others are right), and only the keys that differ are written. Users
of one account whose userName keys become one are named in a warning: they were told
apart only by the wrong keys, and each write of them is refused (409) until all but one
have another userName.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from roster.core.derived_columns import user_name_key
from roster.core.matching import email_key
from roster.db.migrate import not_ascii

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("seq", "account_id", "person_id", "user_name", "email_address")
_PERSONAS = sa.table(
    "personas", *(sa.column(name) for name in (*_COLUMNS, "work_email_key", "user_name_key"))
)
_PERSONS = sa.table("persons", sa.column("id"), sa.column("email_address"))
#: The texts the keys come from, and the keys (a database whose ctype lowers an ASCII
#: letter to another, as Turkish does ``I``, gave ASCII emails keys that are not ASCII).
_SOURCES = (
    _PERSONAS.c.user_name,
    _PERSONAS.c.email_address,
    _PERSONS.c.email_address,
    _PERSONAS.c.work_email_key,
    _PERSONAS.c.user_name_key,
)
log = logging.getLogger("roster.migrate")


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
        .where(sa.or_(*(not_ascii(column, bind.dialect.name) for column in _SOURCES)))
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
    _report_shared_user_names(bind)


def _report_shared_user_names(bind: sa.Connection) -> None:
    """Warn of the Users of an account whose userName keys are now one (``Straße`` and
    ``strasse``, told apart before by 0007's keys): each PUT or PATCH of them is refused
    with 409 until all but one have another userName."""
    key, account = _PERSONAS.c.user_name_key, _PERSONAS.c.account_id
    shared = bind.execute(
        sa.select(account, key, sa.func.count())
        .select_from(_PERSONAS)
        .where(key.is_not(None))
        .group_by(account, key)
        .having(sa.func.count() > 1)
    ).all()
    for account_id, user_name, users in shared:
        log.warning(
            "Account %s: %d Users share the userName %r; change all but one's userName.",
            account_id,
            users,
            user_name,
        )


def downgrade() -> None:
    pass  # the keys stay folded: 0007's are what no version of Roster computes
