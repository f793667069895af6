"""Statements compiled once per shape: a large statement built around small parts (a
filter's condition, an order) whose values change with every request.

SQLAlchemy compiles a statement once and keeps it, but finds it again by the statement's
cache key, computed anew for each statement object it is given: for a page of SCIM Users
(two correlated JSON subqueries, four joins) that key cost 0.5 ms of CPU a request, more
than the database took to answer an ``eq`` filter. Here the key is the parts' own (the
same mechanism, over a few elements): the first statement of a shape is built and
compiled, and each later one takes its parts' values (SQLAlchemy's
``construct_params(extracted_parameters=...)``, as its own cache does).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from roster.db.plain import Processor, columns_read

#: How many shapes are kept (each a compiled statement); the oldest goes first.
SHAPES_KEPT = 512

#: What builds a statement from the backend and the parts, a module-level function (it
#: is part of the shape).
Build = Callable[..., Select[Any]]


@dataclass(frozen=True)
class _Shape:
    compiled: SQLCompiler
    sql: str
    #: The statement's own extracted parameters (its cache key's), in order.
    extracted: tuple[BindParameter[Any], ...]
    #: Where each of the parts' parameters stands among them: (statement's, parts').
    slots: tuple[tuple[int, int], ...]
    #: The positional parameters' names, and how each type converts its value.
    positions: tuple[tuple[str, Processor], ...]
    #: How each column is read (where the driver does not).
    columns: tuple[Processor, ...]


class Shaped(NamedTuple):
    """A statement's SQL, its values in order, and how each column of its rows is read."""

    sql: str
    values: list[Any]
    columns: tuple[Processor, ...]


_SHAPES: dict[Hashable, _Shape | None] = {}


def known_shapes() -> frozenset[Hashable]:
    """The shapes kept now (at most ``SHAPES_KEPT``: a full cache drops its oldest)."""
    return frozenset(_SHAPES)


def shaped_sql(
    dialect: Dialect,
    backend: object,
    build: Build,
    parts: Sequence[ClauseElement],
    parameters: Mapping[str, Any],
) -> Shaped | None:
    """The SQL of ``build(backend, *parts)``, its parameters' values in order (the
    parts' values, then ``parameters`` by name, each converted as its type binds it)
    and how its columns are read; None when the statement cannot be kept (a part
    SQLAlchemy cannot key, or parameters expanded as the statement runs): then build it
    and run it as usual."""
    keys = [part._generate_cache_key() for part in parts]
    if any(key is None for key in keys):
        return None
    own = [bound for key in keys if key is not None for bound in key.bindparams]
    known = (dialect, build, backend, tuple(key.key for key in keys if key is not None))
    if known not in _SHAPES:
        while len(_SHAPES) >= SHAPES_KEPT:
            del _SHAPES[next(iter(_SHAPES))]
        _SHAPES[known] = _shape(dialect, build(backend, *parts), own)
    shape = _SHAPES[known]
    if shape is None:
        return None
    extracted = list(shape.extracted)
    for at, part in shape.slots:
        extracted[at] = own[part]
    values = shape.compiled.construct_params(params=parameters, extracted_parameters=extracted)
    return Shaped(
        shape.sql,
        [
            values[name] if convert is None else convert(values[name])
            for name, convert in shape.positions
        ],
        shape.columns,
    )


def _shape(
    dialect: Dialect, statement: Select[Any], own: list[BindParameter[Any]]
) -> _Shape | None:
    full = statement._generate_cache_key()
    if full is None:
        return None
    compiled = statement.compile(dialect=dialect, cache_key=full)
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None  # an IN list or a literal rendered as it runs: SQLAlchemy's own path
    place: dict[int, int] = {}
    for index, bound in enumerate(own):
        place.setdefault(id(bound), index)
    slots = tuple(
        (at, place[id(bound)]) for at, bound in enumerate(full.bindparams) if id(bound) in place
    )
    if {part for _, part in slots} != set(place.values()):
        return None  # a part's parameter was copied as the statement was built
    processors = compiled._bind_processors
    positions = tuple(
        (name, convert if callable(convert := processors.get(name)) else None)
        for name in compiled.positiontup or ()
    )
    return _Shape(
        compiled, str(compiled), tuple(full.bindparams), slots, positions, columns_read(compiled)
    )
