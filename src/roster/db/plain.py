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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect

#: A list SQLAlchemy binds as one placeholder per item (an "expanding" parameter).
_EXPANDING = re.compile(r"\(__\[POSTCOMPILE_(\w+)\]\)")

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Plain:
    """A statement compiled for one dialect: its SQL and, in order, each parameter's
    name and the value it was built with; where the driver needs them (``converts``),
    how each value is bound and each column read."""

    sql: str
    names: tuple[str, ...]
    built: tuple[Any, ...]
    binds: tuple[Processor, ...] = ()
    columns: tuple[Processor, ...] = ()
    #: The SQL for each length of the lists bound one placeholder per item.
    expanded: dict[tuple[int, ...], str] = field(default_factory=dict, compare=False)

    def values(
        self, parameters: Mapping[str, Any], replaced: Mapping[Any, Any] | None = None
    ) -> list[Any]:
        """The values to bind: a parameter by name from ``parameters``, else the value
        it was built with (or what ``replaced`` puts in its place)."""
        given = zip(self.names, self.built, strict=True)
        if not replaced:
            return [parameters.get(name, value) for name, value in given]
        return [
            parameters[n] if n in parameters else replaced.get(value, value) if value else value
            for n, value in given
        ]

    def bound(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """The SQL and the values to send: converted as their types bind them, and a
        list's items each bound on its own."""
        if not self.binds:
            return self.sql, list(values)
        sent: list[Any] = []
        lengths: list[int] = []
        for value, process in zip(values, self.binds, strict=True):
            if isinstance(value, list | tuple):
                lengths.append(len(value))
                sent.extend(process(v) if process else v for v in value)
            else:
                sent.append(process(value) if process else value)
        if not lengths:
            return self.sql, sent
        key = tuple(lengths)
        if (sql := self.expanded.get(key)) is None:
            counts = iter(lengths)
            # SQLite takes an empty list, "IN ()", as a list that holds nothing.
            sql = self.expanded[key] = _EXPANDING.sub(
                lambda _: "(" + ", ".join("?" * next(counts)) + ")", self.sql
            )
        return sql, sent

    def read(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The rows with each value as SQLAlchemy reads it."""
        if not any(self.columns):
            return rows
        return [
            tuple(p(v) if p else v for p, v in zip(self.columns, row, strict=True)) for row in rows
        ]


@lru_cache(maxsize=512)
def plain(statement: Select[Any], dialect: Dialect, *, converts: bool) -> Plain:
    """``statement`` compiled for ``dialect``; statements are built once and kept, so
    this is too. With ``converts``, each value is bound and read as its type says."""
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    built = tuple(compiled.params[n] for n in names)
    if not converts:
        return Plain(str(compiled), names, built)
    if compiled.literal_execute_params or not all(
        bound.expanding for bound in compiled.post_compile_params
    ):
        raise ValueError("a statement with values rendered as it runs is not kept")
    processors = compiled._bind_processors
    return Plain(
        str(compiled),
        names,
        built,
        tuple(_one(processors.get(n)) for n in names),
        tuple(
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns
        ),
    )


def _one(processor: object) -> Processor:
    """A bind processor of one value (SQLAlchemy gives a sequence for a tuple type)."""
    if processor is None:
        return None
    assert callable(processor)
    return processor
