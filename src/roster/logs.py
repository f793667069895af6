"""Logs as one JSON object per line, never holding a secret or a value a client sent."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

#: Attributes of a LogRecord that are not extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        return "" if ei[1] is None else described_traceback(ei[1])


#: Attributes of database errors that name what failed without quoting any value:
#: asyncpg's SQLSTATE and schema names, SQLite's result code.
_ERROR_FACTS = ("sqlstate", "sqlite_errorname", "constraint_name", "table_name", "column_name")


def described_traceback(error: BaseException) -> str:
    """A traceback of ``error`` and the errors it was raised from: every frame, and each
    error's type (with its SQLSTATE or SQLite code and constraint, for database errors),
    but no error's message. Messages quote what a client sent: PostgreSQL's "Key
    (email_key)=(...) already exists", SQLite's FTS5 "syntax error near ...", and
    SQLAlchemy's statement parameters.
    """
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for number, each in enumerate(reversed(chain)):
        if number:
            parts.append("\nThe error above led to:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(each.__traceback__)))
        facts = [
            f"{name}={getattr(each, name)}" for name in _ERROR_FACTS if getattr(each, name, None)
        ]
        kind = f"{type(each).__module__}.{type(each).__qualname__}"
        parts.append(f"{kind} ({', '.join(facts)})\n" if facts else f"{kind}\n")
    return "".join(parts)


def configure_logging(level: str = "INFO") -> None:
    """Send every log line to stderr as JSON (the server's logging setup)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Uvicorn's own access log would repeat ours, without request or client ids.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs each request it makes at INFO: a line per webhook delivery (and per SCIM
    # Bulk operation). The deliveries are in webhook_deliveries, failures logged by us.
    logging.getLogger("httpx").setLevel(logging.WARNING)
