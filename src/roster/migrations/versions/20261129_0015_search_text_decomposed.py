"""Search text decomposed: ``matching.search_fold`` no longer joins characters back
(NFKC) once accents are removed, so that a value holding a term as written holds the
term's fold in its own, a Hangul syllable typed a jamo at a time included.

Every persona's search text becomes what Roster now writes for it: the NFKD of the text
it had, which is exactly that (NFKD undoes what the old fold's last step joined and
changes nothing else), so the fields the text was made from are not read again. Only
the personas whose text holds a character that is not ASCII are read, a batch at a time
in the order of ``seq``, and only the texts that change are written: those holding
Hangul, a two-part vowel sign of an Indic script or a fullwidth digit. On SQLite the
``personas_search_update`` trigger indexes each text written.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

from roster.db.migrate import not_ascii

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERSONAS = sa.table("personas", sa.column("seq"), sa.column("search_text"))
#: Personas read and written at a time.
BATCH = 10_000


def _normalize(form: Literal["NFKD", "NFKC"]) -> None:
    """Each persona's search text that holds a character that is not ASCII, in ``form``."""
    bind = op.get_bind()
    seq, search_text = _PERSONAS.c.seq, _PERSONAS.c.search_text
    after = 0
    while True:
        rows = bind.execute(
            sa.select(seq, search_text)
            .where(seq > after, not_ascii(search_text, bind.dialect.name))
            .order_by(seq)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1][0]
        changes = [
            {"_seq": row_seq, "_text": normal}
            for row_seq, text in rows
            if (normal := unicodedata.normalize(form, text)) != text
        ]
        if changes:
            bind.execute(
                sa.update(_PERSONAS)
                .where(seq == sa.bindparam("_seq"))
                .values(search_text=sa.bindparam("_text")),
                changes,
            )


def upgrade() -> None:
    _normalize("NFKD")


def downgrade() -> None:
    # The text 0014's Roster searched: joined back (a fullwidth digit stays ASCII; no
    # folded term ever held one).
    _normalize("NFKC")
