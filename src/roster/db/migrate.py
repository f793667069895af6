"""Apply the Alembic migrations shipped inside the package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import ColumnElement, Connection, cast, func, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import LargeBinary

from roster.db.backends import backend_named


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "roster:migrations")
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def not_ascii(column: ColumnElement[str], dialect: str) -> ColumnElement[bool]:
    """For a migration that rewrites text only where it holds a character of more than
    one byte (UTF-8): true for such a ``column``."""
    if dialect == "postgresql":
        return func.octet_length(column) != func.char_length(column)
    return func.length(cast(column, LargeBinary)) != func.length(column)


@dataclass(frozen=True)
class Migrated:
    """Where an upgrade started and ended: revisions, ``None`` for an empty database."""

    before: str | None
    after: str | None

    @property
    def applied(self) -> list[str]:
        """The migrations applied, oldest first, by file name (``20261122_0001_initial_schema``)."""
        if self.after is None or self.before == self.after:
            return []
        scripts = ScriptDirectory.from_config(alembic_config())
        steps = scripts.iterate_revisions(self.after, self.before)
        return [Path(step.path).stem for step in reversed(list(steps))]


def _current(connection: Connection) -> str | None:
    """The database's revision (read directly: a MigrationContext would log its set-up)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


def _upgrade(connection: Connection, revision: str) -> Migrated:
    # Several `roster serve` processes starting together migrate one at a time.
    for statement in backend_named(connection.dialect.name).migration_lock:
        connection.execute(text(statement))
    before = _current(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return Migrated(before, _current(connection))


async def upgrade(engine: AsyncEngine, revision: str = "head") -> Migrated:
    """Bring the database to ``revision`` (the newest by default); a no-op when it is there."""
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade, revision)


async def is_current(engine: AsyncEngine) -> bool:
    """True when the database is at the newest migration."""
    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads())
        )
    return heads == set(ScriptDirectory.from_config(alembic_config()).get_heads())
