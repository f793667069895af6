"""A persona's SCIM ``name.formatted`` as sent (``formatted_name``), and a person's middle name(s) (``middle_initials``, SCIM's ``name.middleName``) up to 256
characters, as the other names, instead of 32: SCIM sends whole middle names (RFC 7643
§4.1.1: "the middle name(s) of the User"), and 32 was Roster's own choice, not the spec's.
Widening a varchar is a change of the catalogue on PostgreSQL (no table rewrite). SQLite
does not enforce a length; its declared type is rewritten by adding the wider column,
copying, dropping the old one and renaming (SQLite 3.35+), so that the reflected schema
is the one ``db/tables.py`` declares.

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _middle_initials(length: int) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("persons", "middle_initials", type_=sa.String(length=length))
        return
    for statement in (
        f"ALTER TABLE persons ADD COLUMN middle_initials_new VARCHAR({length})",
        "UPDATE persons SET middle_initials_new = middle_initials",
        "ALTER TABLE persons DROP COLUMN middle_initials",
        "ALTER TABLE persons RENAME COLUMN middle_initials_new TO middle_initials",
    ):
        op.execute(statement)


def upgrade() -> None:
    _middle_initials(256)
    op.add_column("personas", sa.Column("formatted_name", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    op.drop_column("personas", "formatted_name")
    # Values longer than 32 characters are cut (PostgreSQL would refuse them otherwise).
    op.execute("UPDATE persons SET middle_initials = substr(middle_initials, 1, 32)")
    _middle_initials(32)
