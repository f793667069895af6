"""Statements built once and run on the driver's own connection, past SQLAlchemy's
execution: for the reads of every request (a client's key, an account, a find, a search).

SQLAlchemy's execution of a statement cost about 130 µs of CPU on asyncpg, as much as the
rest of a find's work in the database layer. On aiosqlite it also takes four trips to the
connection's thread (open a cursor, execute, fetch, close), where ``execute_fetchall``
takes one: a find by email took 5.2 times as long as the floor's (bench/floor.py) over
SQLAlchemy. What SQLAlchemy does for such a statement that matters is kept here, once
per statement: its SQL, its parameters in order, and on SQLite how each value is bound
and each column read (its types' own processors: a UUID's hex, a flag's 0 or 1, a time's
text). asyncpg binds and reads them itself.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

#: A list SQLAlchemy binds as one placeholder per item (an "expanding" parameter).
_EXPANDING = re.compile(r"\(__\[POSTCOMPILE_(\w+)\]\)")

#: How many texts one statement keeps for the lengths of its lists (a find's lists are
#: as long as the request makes them); past that, the least recently used goes.
EXPANSIONS_KEPT = 64

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Plain:
    """A statement compiled for one dialect: its SQL and, in order, each parameter's
    name and the value it was built with (and which have none); where the driver
    needs them (``converts``), how each value is bound and each column read, and which
    parameters are lists bound one placeholder per item."""

    sql: str
    names: tuple[str, ...]
    built: tuple[Any, ...]
    required: frozenset[str] = frozenset()
    binds: tuple[Processor, ...] = ()
    columns: tuple[Processor, ...] = ()
    #: Whether each parameter is such a list; empty when none is (most statements).
    expanding: tuple[bool, ...] = ()
    #: The SQL for each length of the lists bound one placeholder per item.
    expanded: OrderedDict[tuple[int, ...], str] = field(default_factory=OrderedDict, compare=False)

    def values(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The values to bind: a parameter by name from ``parameters``, else the value
        it was built with; SQLAlchemy's error if a required one is missing."""
        if self.required and (missing := self.required.difference(parameters)):
            raise sa_exc.InvalidRequestError(
                f"A value is required for bind parameter {min(missing)!r}"
            )
        return [
            parameters.get(name, value) for name, value in zip(self.names, self.built, strict=True)
        ]

    def bound(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """The SQL and the values to send: converted as their types bind them, and a
        list's items each bound on its own."""
        if not self.binds:
            return self.sql, list(values)
        if not self.expanding:
            return self.sql, [
                process(value) if process else value
                for value, process in zip(values, self.binds, strict=True)
            ]
        sent: list[Any] = []
        lengths: list[int] = []
        for value, process, expands in zip(values, self.binds, self.expanding, strict=True):
            if expands:
                items = list(value)
                lengths.append(len(items))
                sent.extend(process(v) if process else v for v in items)
            else:
                sent.append(process(value) if process else value)
        return self._expanded(tuple(lengths)), sent

    def _expanded(self, lengths: tuple[int, ...]) -> str:
        """The SQL with as many placeholders in each list as it holds items."""
        kept = self.expanded
        if (sql := kept.get(lengths)) is not None:
            kept.move_to_end(lengths)
            return sql
        counts = iter(lengths)
        # SQLite takes an empty list, "IN ()", as a list that holds nothing.
        sql = kept[lengths] = _EXPANDING.sub(
            lambda _: "(" + ", ".join("?" * next(counts)) + ")", self.sql
        )
        if len(kept) > EXPANSIONS_KEPT:
            kept.popitem(last=False)
        return sql

    def read(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The rows with each value as SQLAlchemy reads it."""
        return read(self.columns, rows)


def read(columns: Sequence[Processor], rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """``rows`` with each column read by its processor (none: as the driver gave it)."""
    if not any(columns):
        return rows
    return [tuple(p(v) if p else v for p, v in zip(columns, row, strict=True)) for row in rows]


@lru_cache(maxsize=512)
def plain(statement: Select[Any], dialect: Dialect, *, converts: bool) -> Plain:
    """``statement`` compiled for ``dialect``; statements are built once and kept, so
    this is too. With ``converts``, each value is bound and read as its type says, and
    a list may be bound one placeholder per item; without, the driver does both."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[n] for n in names]
    built = tuple(compiled.params[n] for n in names)
    required = frozenset(n for n, b in zip(names, binds, strict=True) if b.required)
    if compiled.literal_execute_params or (
        compiled.post_compile_params
        and not (converts and all(b.expanding for b in compiled.post_compile_params))
    ):
        raise ValueError("a statement with values rendered as it runs is not kept")
    if not converts:
        return Plain(str(compiled), names, built, required)
    processors = compiled._bind_processors
    expanding = tuple(b.expanding for b in binds)
    return Plain(
        str(compiled),
        names,
        built,
        required,
        tuple(_one(processors.get(n)) for n in names),
        columns_read(compiled),
        expanding if any(expanding) else (),
    )


def columns_read(compiled: SQLCompiler) -> tuple[Processor, ...]:
    """How each column of a compiled statement is read (its type's result processor)."""
    return tuple(
        column.type._cached_result_processor(compiled.dialect, None)
        for column in compiled._result_columns
    )


def _one(processor: object) -> Processor:
    """A bind processor of one value (SQLAlchemy gives a sequence for a tuple type)."""
    if processor is None:
        return None
    assert callable(processor)
    return processor
