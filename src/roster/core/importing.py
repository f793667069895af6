"""``roster import``: create or update an account's people from a CSV or JSON Lines file.

The file is read as a stream, in batches; each batch is planned by the writer
(core/writer.py, the Persons API's matching rules) and committed on its own, so an
interrupted import leaves whole batches behind and running the same file again
converges on the state one clean run gives. A bad row fails alone, with its line
number and the reason; the others go on. See docs/import-export.md.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.core.fields import PERSON, PERSONA, Field
from roster.core.matching import phone_key
from roster.core.writer import (
    LoadStatistics,
    PersonWrite,
    Written,
    analyze_persons,
    write_persons,
)
from roster.db.engine import unit_of_work
from roster.db.tables import accounts
from roster.errors import AccountNotFound, InvalidRequest, RosterError
from roster.settings import Settings

#: Read only when the import names no account: each row then names its own.
ACCOUNT_COLUMN = "account_id"
#: A CSV header must name these (the Persons API's fields); the others are optional.
REQUIRED_COLUMNS = tuple(name for name, f in PERSON.items() if f.imported and f.persons_api)
#: The persona's columns in operations.md's order, which export keeps (the ROW's differs).
_DOCUMENTED_PERSONA_ORDER = ("status", "role_name", "employee_number", "job_title", "work_number")
#: Each column a file may have (core/fields.py), in the order export writes them: the
#: required ones, the person's other fields, the persona's (any not in operations.md last).
IMPORTED: dict[str, Field] = {
    **{name: PERSON[name] for name in REQUIRED_COLUMNS},
    **{name: f for name, f in PERSON.items() if f.imported},
    **{name: PERSONA[name] for name in _DOCUMENTED_PERSONA_ORDER},
    **{name: f for name, f in PERSONA.items() if f.imported},
}
assert all(f.imported for f in IMPORTED.values())
IMPORT_COLUMNS = tuple(IMPORTED)
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")

DEFAULT_BATCH_SIZE = 5000


class ImportFileError(InvalidRequest):
    """The file as a whole cannot be imported (unknown columns, unreadable); nothing was written."""

    type = "invalid_import_file"
    default_message = "The file cannot be imported."


@dataclass(frozen=True)
class ImportFailure:
    """One row that failed: its line in the file (the header is line 1) and why."""

    line: int
    reason: str
    type: str


@dataclass
class ImportSummary:
    created: int = 0  # a new person, or an existing person newly given a persona in the account
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[ImportFailure] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed


@dataclass(frozen=True)
class ImportProgress:
    """Reported after each committed batch."""

    rows: int
    bytes_read: int
    total_bytes: int
    summary: ImportSummary


ProgressCallback = Callable[[ImportProgress], None]


async def import_rows(
    engine: AsyncEngine,
    settings: Settings,
    account_id: str | None,
    source: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Create or update the people of a CSV or JSON Lines file in one account, batch by batch.

    With ``account_id`` None, each row names its account in an ``account_id`` column
    (a row naming an unknown account fails alone). Raises :class:`AccountNotFound` for an
    unknown account and :class:`ImportFileError` when the file cannot be imported at all
    (both before anything is written).
    """
    if batch_size < 1:
        raise InvalidRequest.field("batch_size", "must be at least 1")
    path = Path(source)
    async with unit_of_work(engine, write=False) as conn:
        known = frozenset(await conn.scalars(select(accounts.c.id)))
    if account_id is not None and account_id not in known:
        raise AccountNotFound(f"There is no account {account_id!r}.")
    reader = open_import_file(path, account_column=account_id is None)
    summary = ImportSummary()
    region = settings.default_phone_region
    statistics = LoadStatistics()
    batches = reader.batches(batch_size)

    def prepare() -> _Batch | None:
        batch = next(batches, None)
        return None if batch is None else _prepare(batch, account_id, known, region)

    # The next batch is read and checked in a thread while this one is written, so
    # the parsing overlaps the database's work.
    pending = asyncio.ensure_future(asyncio.to_thread(prepare))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(prepare))
            async with unit_of_work(engine, write=True) as conn:
                outcomes = await write_persons(conn, batch.items, region=region)
            for line, outcome in zip(batch.lines, outcomes, strict=True):
                _count(summary, line, outcome)
            if (columns := statistics.due(summary.rows)) is not None:
                async with unit_of_work(engine, write=True) as conn:
                    await analyze_persons(conn, columns)
            if on_progress is not None:
                on_progress(ImportProgress(summary.rows, reader.tell(), reader.size, summary))
    finally:
        with contextlib.suppress(Exception):
            await pending  # the thread must be done with the file before it is closed
        reader.close()
    if summary.rows:
        async with unit_of_work(engine, write=True) as conn:
            await analyze_persons(conn)
    return summary


@dataclass(frozen=True)
class _Batch:
    lines: list[int]
    items: list[PersonWrite]


def _prepare(
    records: list[tuple[int, Record]], account_id: str | None, known: frozenset[str], region: str
) -> _Batch:
    """Items from records; the phone numbers' keys are computed (and cached) here too,
    in the reading thread, since parsing them is the costliest step of planning."""
    items = [_item(record, account_id, known) for _, record in records]
    for item in items:
        phone_key(item.person.get("phone_number"), region)
        phone_key(item.persona.get("work_number"), region)
    return _Batch([line for line, _ in records], items)


def _count(summary: ImportSummary, line: int, outcome: Written) -> None:
    if outcome.error is not None:
        summary.failed += 1
        summary.failures.append(ImportFailure(line, outcome.error.message, outcome.error.type))
    elif outcome.created or any(p.change == "created" for p in outcome.personas):
        summary.created += 1
    elif outcome.changed:
        summary.updated += 1
    else:
        summary.unchanged += 1


# -- reading files -------------------------------------------------------------------------

#: A record: the given (non-empty) values by column, or why the row cannot be read.
Record = dict[str, Any] | RosterError


class ImportReader:
    """Records of one file, with their line numbers, in batches."""

    def __init__(
        self, handle: IO[bytes], records: Iterator[tuple[int, Record]], text: IO[str] | None = None
    ) -> None:
        self._handle = handle
        self._text = text  # held: the wrapper closes the file when it is collected
        self._records = records
        self.size = os.fstat(handle.fileno()).st_size

    def close(self) -> None:
        self._handle.close()

    def tell(self) -> int:
        return min(self._handle.tell(), self.size)

    def batches(self, size: int) -> Iterator[list[tuple[int, Record]]]:
        batch: list[tuple[int, Record]] = []
        for record in self._records:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def file_format(path: Path, head: bytes) -> str:
    """``csv`` or ``jsonl``: by the file's suffix, else by its first character (``{``: JSON)."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def open_import_file(path: Path, *, account_column: bool = False) -> ImportReader:
    """Open a file and check its columns; raises :class:`ImportFileError` before any row is read."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ImportFileError(f"Cannot read {str(path)!r}: {error.strerror}.") from error
    try:
        head = handle.read(4096)
        _check_encoding(head)
        fmt = file_format(path, head)
        handle.seek(0)
        if fmt == "jsonl":
            _check_jsonl_keys(handle, _known_columns(account_column))
            handle.seek(0)
            return ImportReader(handle, _jsonl_records(handle))
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="", errors="surrogateescape")
        return ImportReader(handle, _csv_records(text, _known_columns(account_column)), text)
    except BaseException:
        handle.close()
        raise


#: Byte order marks of the encodings a file may be saved in by mistake, longest first
#: (UTF-32's little-endian mark starts with UTF-16's).
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _check_encoding(head: bytes) -> None:
    """Refuse a file that is not UTF-8, naming its encoding where its first bytes tell it:
    a UTF-16 or UTF-32 byte order mark, NUL bytes (UTF-16 without a mark), or a first line
    that is not UTF-8 (Windows-1252 or Latin-1, most often)."""
    save_as = "save it as UTF-8 (CSV UTF-8 in a spreadsheet) and import it again"
    named = next((name for bom, name in _FOREIGN_BOMS if head.startswith(bom)), None)
    if named is None and b"\x00" in head:
        named = "UTF-16 or UTF-32 (it has NUL bytes)"
    if named is not None:
        raise ImportFileError(f"The file is {named}, not UTF-8: {save_as}. Nothing was imported.")
    first_line = head.split(b"\n", 1)[0]
    try:
        first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if error.reason == "unexpected end of data" and len(first_line) == len(head):
            return  # a character cut by the 4 KiB read, not a bad one
        raise ImportFileError(
            f"The file is not UTF-8 (byte 0x{first_line[error.start]:02x} at offset "
            f"{error.start} of the first line; Windows-1252 or Latin-1, perhaps): "
            f"{save_as}. Nothing was imported."
        ) from None


def _known_columns(account_column: bool) -> tuple[str, ...]:
    return (ACCOUNT_COLUMN, *IMPORT_COLUMNS) if account_column else IMPORT_COLUMNS


def _unknown_columns_error(
    unknown: list[str], what: str, known: tuple[str, ...]
) -> ImportFileError:
    hint = (
        " (account_id is read only when no account is given)" if ACCOUNT_COLUMN in unknown else ""
    )
    return ImportFileError(
        f"The file has unknown {what} {', '.join(repr(c) for c in unknown)}{hint}; "
        f"the known columns are {', '.join(known)}. Nothing was imported."
    )


def _csv_records(text: IO[str], known: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    rows = csv.reader(text, strict=True)
    try:
        header = next(rows)
    except StopIteration:
        raise ImportFileError("The file is empty: a CSV file starts with a header row.") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise ImportFileError(f"The header row cannot be read: {error}.") from error
    header = [name.strip() for name in header]
    unknown = [name for name in header if name not in known]
    if unknown:
        raise _unknown_columns_error(unknown, "column" if len(unknown) == 1 else "columns", known)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ImportFileError(f"The header names {', '.join(map(repr, repeated))} more than once.")
    required = (*REQUIRED_COLUMNS, *(c for c in known if c == ACCOUNT_COLUMN))
    missing = [name for name in required if name not in header]
    if missing:
        raise ImportFileError(
            f"The header lacks the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; every file has "
            f"{', '.join(required)} (cells may be empty)."
        )
    return _csv_rows(rows, header)


#: What bytes that are not UTF-8 are read as ("surrogateescape").
_UNDECODED = re.compile(r"[\udc80-\udcff]")


def _csv_rows(rows: Any, header: list[str]) -> Iterator[tuple[int, Record]]:
    width = len(header)
    line = rows.line_num + 1
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as error:
            yield line, InvalidRequest(f"The row cannot be read: {error}.")
            line = rows.line_num + 1
            continue
        start, line = line, rows.line_num + 1
        if not cells:
            continue  # a blank line
        if len(cells) != width:
            yield start, InvalidRequest(f"The row has {len(cells)} cells; the header has {width}.")
            continue
        given = dict(zip(header, cells, strict=True))
        undecodable = [name for name, cell in given.items() if _UNDECODED.search(cell)]
        if undecodable:
            yield start, InvalidRequest.field(undecodable[0], "is not valid UTF-8")
            continue
        yield start, {name: cell for name, cell in given.items() if not _blank(cell)}


def _check_jsonl_keys(handle: IO[bytes], columns: tuple[str, ...]) -> None:
    """Read the whole file once for unknown keys, so that none is found after rows are written."""
    known = frozenset(columns)
    unknown: dict[str, None] = {}
    for raw in handle:
        try:
            value = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            continue  # that row fails on its own
        if isinstance(value, dict):
            unknown.update(dict.fromkeys(k for k in value if k not in known))
    if unknown:
        raise _unknown_columns_error(list(unknown), "key" if len(unknown) == 1 else "keys", columns)


def _jsonl_records(handle: IO[bytes]) -> Iterator[tuple[int, Record]]:
    for line, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            yield line, InvalidRequest(f"The line is not valid JSON: {error}.")
            continue
        if not isinstance(value, dict):
            yield line, InvalidRequest("The line is not a JSON object.")
            continue
        yield line, {k: v for k, v in value.items() if not _blank(v)}


def _blank(value: object) -> bool:
    """Not given: an empty (or all white space) cell, a JSON null or empty string."""
    return value is None or (isinstance(value, str) and not value.strip())


# -- checking values -----------------------------------------------------------------------


def _item(record: Record, account_id: str | None, known: frozenset[str]) -> PersonWrite:
    """The write item of a record; a value its field's declaration refuses (core/fields.py)
    makes it a failed item."""
    if isinstance(record, RosterError):
        return PersonWrite({}, frozenset(), error=record)
    if account_id is None:
        named = record.pop(ACCOUNT_COLUMN, None)
        if named not in known:
            problem = f"There is no account {named!r}." if named else "The row has no account_id."
            return PersonWrite({}, frozenset(), error=AccountNotFound(problem))
        account_id = str(named)
    accounts_ = frozenset((account_id,))
    try:
        values = {name: IMPORTED[name].check(value) for name, value in record.items()}
    except InvalidRequest as error:
        return PersonWrite({}, accounts_, error=error)
    person = {name: value for name, value in values.items() if name in PERSON}
    persona = {name: value for name, value in values.items() if name not in PERSON}
    return PersonWrite(person, accounts_, persona)
