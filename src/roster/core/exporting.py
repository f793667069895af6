"""``roster export``: an account's people in the format ``roster import`` reads.

One row per persona of the account: the person's fields and the persona's, in
:data:`~roster.core.importing.IMPORT_COLUMNS`, with the role by name. The rows are
read by one streamed query (one consistent snapshot on both backends) and written
as they arrive, a partition at a time, so an export of a million people never
holds them all in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any, Literal, TextIO

import orjson
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.core.fields import Owner
from roster.core.importing import IMPORT_COLUMNS, IMPORTED
from roster.db.tables import accounts, personas, persons, roles
from roster.errors import AccountNotFound, InvalidRequest

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")
#: Rows fetched from the database (and written) at a time.
PARTITION = 2000


def _export_statement(account_id: str) -> Select[Any]:
    columns = [
        roles.c.name.label(name)
        if name == "role_name"
        else (persons if field.owner is Owner.PERSON else personas).c[name]
        for name, field in IMPORTED.items()
    ]
    return (
        select(*columns)
        .join(persons, persons.c.id == personas.c.person_id)
        .join(roles, roles.c.id == personas.c.role_id)
        .where(personas.c.account_id == account_id)
        .order_by(personas.c.seq)
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


async def export_rows(
    engine: AsyncEngine,
    account_id: str,
    fmt: ExportFormat,
    out: TextIO,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the account's people to ``out`` as CSV (with a header) or JSON Lines; returns
    how many rows. Raises :class:`AccountNotFound` for an unknown account, before anything
    is written."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidRequest.field("format", f"must be one of {', '.join(EXPORT_FORMATS)}")
    written = 0
    # One transaction: the streamed query reads one snapshot, however long it runs.
    async with engine.connect() as conn, conn.begin():
        if await conn.scalar(select(accounts.c.id).where(accounts.c.id == account_id)) is None:
            raise AccountNotFound(f"There is no account {account_id!r}.")
        write = _csv_writer(out) if fmt == "csv" else _jsonl_writer(out)  # the header, if any
        result = await conn.stream(_export_statement(account_id))
        async for partition in result.partitions(PARTITION):
            write([[_text(value) for value in row] for row in partition])
            written += len(partition)
            if on_progress is not None:
                on_progress(written)
    return written


Writer = Callable[[Iterable[list[str | None]]], None]


def _csv_writer(out: TextIO) -> Writer:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(IMPORT_COLUMNS)

    def write(rows: Iterable[list[str | None]]) -> None:
        writer.writerows(["" if value is None else value for value in row] for row in rows)

    return write


def _jsonl_writer(out: TextIO) -> Writer:
    def write(rows: Iterable[list[str | None]]) -> None:
        out.write(
            "".join(
                orjson.dumps(dict(zip(IMPORT_COLUMNS, row, strict=True))).decode() + "\n"
                for row in rows
            )
        )

    return write
