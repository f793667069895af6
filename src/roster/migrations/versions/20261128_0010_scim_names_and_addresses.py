"""SCIM's names and addresses (docs/scim.md):

- ``personas.formatted_name``: a User's ``name.formatted`` as sent (read as built from the
  name's parts when none was sent);
- ``persons.middle_initials`` (SCIM's ``name.middleName``) up to 256 characters, as the
  other names, instead of 32: SCIM sends whole middle names (RFC 7643 §4.1.1, "the middle
  name(s) of the User"), and 32 was Roster's own limit, not the spec's;
- ``addresses.postcode`` up to 64 instead of 32 (SCIM's postalCode has no length).

Widening a varchar changes only the catalogue on PostgreSQL (no table rewrite). SQLite
enforces no length; its declared type is rewritten so that the reflected schema is the one
``db/tables.py`` declares: ``persons`` (which other tables refer to) by adding the wider
column, copying, dropping the old one and renaming (SQLite 3.35+); ``addresses`` by batch
mode's copy of the table.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
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


def _postcode(length: int) -> None:
    # Nothing refers to addresses: SQLite's batch mode may rebuild the table.
    with op.batch_alter_table("addresses") as batch:
        batch.alter_column("postcode", type_=sa.String(length=length), existing_nullable=False)


def upgrade() -> None:
    _middle_initials(256)
    _postcode(64)
    op.add_column("personas", sa.Column("formatted_name", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    op.drop_column("personas", "formatted_name")
    op.execute("UPDATE addresses SET postcode = substr(postcode, 1, 32)")
    _postcode(32)
    # Values longer than 32 characters are cut (PostgreSQL would refuse them otherwise).
    op.execute("UPDATE persons SET middle_initials = substr(middle_initials, 1, 32)")
    _middle_initials(32)
