"""The offset pages of the account's smaller lists (roles, teams, budgets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import Table

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    count: int
    limit: int
    offset: int
    rows: Sequence[T]


@dataclass(frozen=True)
class Paging:
    limit: int = 100
    offset: int = 0


async def page_of(
    conn: AsyncConnection,
    table: Table,
    account_id: str,
    paging: Paging,
    order: Sequence[ColumnElement[Any]],
) -> tuple[int, Sequence[Any]]:
    """How many rows of ``table`` the account has, and one page of them in ``order``."""
    mine = table.c.account_id == account_id
    count = await conn.scalar(select(func.count()).select_from(table).where(mine))
    statement: Select[Any] = (
        select(table).where(mine).order_by(*order).offset(paging.offset).limit(paging.limit)
    )
    return count or 0, (await conn.execute(statement)).all()
