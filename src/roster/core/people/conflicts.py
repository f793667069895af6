"""Writes that race other writers to a unique value."""

from __future__ import annotations

from sqlalchemy import Executable
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.errors import Conflict


async def write_unique(conn: AsyncConnection, statement: Executable, conflict: str) -> None:
    """Run a write whose unique values were checked first; ``Conflict`` if another writer
    took one of them in between (the check and the write are not atomic).
    """
    try:
        async with conn.begin_nested():
            await conn.execute(statement)
    except IntegrityError as error:
        raise Conflict(conflict) from error
