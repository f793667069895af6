"""The ``roster`` command: serve, migrate, accounts, clients, import, export, demo, events.

Every command reads the same :class:`~roster.settings.Settings` as the server
(``ROSTER_*`` variables and ``.env``; ``--database-url`` overrides), runs one core
function in one unit of work, and prints text, or JSON with ``--json``. Every
error is one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO, TypeVar
from urllib.parse import quote

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from roster import __version__
from roster.core import accounts as account_core
from roster.core import auth
from roster.db.engine import create_engine, database_unavailable, unit_of_work
from roster.db.migrate import Migrated, upgrade
from roster.errors import RosterError
from roster.listeners import (
    FAIR_SHARING,
    WorkerListener,
    reserve,
    serve_on,
    shown,
    supervise,
)
from roster.settings import Settings

if TYPE_CHECKING:
    from roster.core.demo import DemoSummary

T = TypeVar("T")

app = typer.Typer(
    name="roster",
    help="Roster, a self-hosted people directory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
accounts_app = typer.Typer(help="Accounts and their core roles.", no_args_is_help=True)
clients_app = typer.Typer(help="API clients and their credentials.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
events_app = typer.Typer(help="The change log: export and prune.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(events_app, name="events")
persons_app = typer.Typer(help="One person: show what is held, or erase it.", no_args_is_help=True)
app.add_typer(persons_app, name="persons")
IdentifierArgument = Annotated[
    str,
    typer.Argument(metavar="IDENTIFIER", help="The person's id, email address or external ref."),
]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


class CommandError(Exception):
    """A problem the operator can fix, reported as one line."""


# -- plumbing -------------------------------------------------------------------------


_overrides: dict[str, Any] = {}


def settings() -> Settings:
    return Settings(**_overrides)


@asynccontextmanager
async def migrated(config: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the configured database, its pending migrations applied first."""
    engine = create_engine(config)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


def on_database(config: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` with an engine on the migrated database, then dispose of it."""

    async def go() -> T:
        async with migrated(config) as engine:
            return await work(engine)

    return asyncio.run(go())


def run_in(write: bool, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in one unit of work on the configured, migrated database."""

    async def in_unit(engine: AsyncEngine) -> T:
        async with unit_of_work(engine, write=write) as conn:
            return await work(conn)

    return on_database(settings(), in_unit)


def emit_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=_jsonable), indent=None)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def shown_url(database_url: str) -> str:
    """The database URL without its password, for messages."""
    return make_url(database_url).render_as_string(hide_password=True)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except (CommandError, RosterError) as error:
        _fail(str(error))
    except ValidationError as error:
        problems = "; ".join(
            f"ROSTER_{'_'.join(map(str, e['loc'])).upper()}: "
            + e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )
        _fail(f"invalid configuration: {problems}")
    except (OSError, DBAPIError) as error:
        if isinstance(error, OSError) and error.filename is not None:  # a file, not the database
            _fail(f"{error.filename}: {error.strerror or error}")
        if isinstance(error, OSError) or database_unavailable(error):
            where = shown_url(_overrides.get("database_url") or _configured_url())
            _fail(f"cannot reach the database at {where}: {_first_line(error)}")
        _fail(f"database error: {_first_line(error)}")
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as error:  # a bug of ours: still one line, the trace on request
        if os.environ.get("ROSTER_DEBUG"):
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (ROSTER_DEBUG=1 shows the traceback)")


def _configured_url() -> str:
    try:
        return settings().database_url
    except ValidationError:
        return "(invalid ROSTER_DATABASE_URL)"


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise SystemExit(1)


def main() -> None:
    """Console-script entry point."""
    with _one_line_errors():
        app()


def _print_version(wanted: bool) -> None:
    """Eager: runs while the options are parsed, before a missing command is an error."""
    if wanted:
        out.print(f"roster {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="ROSTER_DATABASE_URL",
            help="sqlite:///PATH or postgresql://user:pass@host:port/db",
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    _overrides.clear()
    if database_url:
        _overrides["database_url"] = database_url


# -- serve and migrate -------------------------------------------------------------------


@app.command()
def migrate(as_json: JsonOption = False) -> None:
    """Apply pending migrations (Alembic)."""
    config = settings()

    async def migrate_once() -> Migrated:
        engine = create_engine(config)
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    done = asyncio.run(migrate_once())
    where = shown_url(config.database_url)
    if as_json:
        emit_json(
            {
                "database": where,
                "from_revision": done.before,
                "to_revision": done.after,
                "applied": done.applied,
            }
        )
    elif not done.applied:
        out.print(f"Database {where} is up to date (revision {done.after}); nothing to apply.")
    else:
        start = f"revision {done.before}" if done.before else "an empty database"
        out.print(
            f"Migrated {where} from {start} to revision {done.after}: "
            f"applied {', '.join(done.applied)}."
        )


#: What each server process serves: the app, built from the environment's settings.
APP_FACTORY = "roster.api.app:app_from_environment"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create demo data first when the database is empty.")
    ] = False,
) -> None:
    """Apply pending migrations, then serve the HTTP API."""
    import uvicorn

    from roster.logs import configure_logging
    from roster.protocol import SERVER_OPTIONS

    config = settings()
    configure_logging(config.log_level)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "server_header": False,
        **SERVER_OPTIONS,  # bounded request heads, refused in the error shape
    }
    server = uvicorn.Config(APP_FACTORY, **options)
    per_worker = workers > 1 and FAIR_SHARING
    # The address first: a port in use is one line, before migrations, the demo or a worker.
    try:
        address = (
            WorkerListener(host, port, server.backlog)
            if per_worker
            else reserve(host, port, server.backlog)
        )
    except OSError as error:
        _fail(f"Cannot listen on {shown(host, port)}: {error.strerror or error}.")
    asyncio.run(_prepare(config, host, port, demo))
    # Workers read their settings from the environment, like any operator setting.
    os.environ.update({f"ROSTER_{k.upper()}": str(v) for k, v in _overrides.items()})
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="roster-metrics-")
    if isinstance(address, WorkerListener):
        if not supervise(server, address):
            _fail("A worker could not start; its error is logged above.")
    elif not serve_on(server, address):
        _fail("The server could not start; its error is logged above.")


async def _prepare(config: Settings, host: str, port: int, demo: bool) -> None:
    async with migrated(config) as engine:
        if not demo:
            return
        from roster.core.demo import generate_demo

        async with unit_of_work(engine, write=False) as conn:
            empty = not await account_core.list_accounts(conn)
        if empty:
            err.print(f"Creating the demo account {DEMO_ACCOUNT} (the database is empty)...")
            await generate_demo(engine, config, DEMO_ACCOUNT, people=DEMO_PEOPLE, seed=1)
        async with unit_of_work(engine, write=True) as conn:
            out.print(await _introduce(conn, f"http://{shown(_client_host(host), port)}"))


DEMO_ACCOUNT = "DEMO"
DEMO_PEOPLE = 1000


async def _introduce(conn: AsyncConnection, base_url: str) -> str:
    """A fresh demo key (secrets are stored hashed, so each start makes a new one) and two
    requests that work against the demo data."""
    from roster.core.demo import sample_person

    known = [a.id for a in await account_core.list_accounts(conn)]
    account = DEMO_ACCOUNT if DEMO_ACCOUNT in known else known[0]
    made = await auth.create_client(conn, "demo (roster serve --demo)", ["read", "write"], None)
    email, last_name = await sample_person(conn, account) or ("a@b.c", "a")
    key = f"Authorization: ApiKey {made.api_key}"
    find = json.dumps({"email_address": email})
    return "\n".join(
        [
            f"Demo API key (client {made.client_id}, scopes read write): {made.api_key}",
            "Try:",
            f"  curl -s -X POST {base_url}/persons/find/ -H '{key}' "
            f"-H 'Content-Type: application/json' -d '{find}'",
            f"  curl -s '{base_url}/people?accountId={account}&search={quote(last_name[:4])}"
            f"&include=persona.teams&limit=5' -H '{key}'",
        ]
    )


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


# -- accounts ----------------------------------------------------------------------------


def _print_listing(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], empty: str) -> None:
    """Rows whose first column holds ids that other commands take, never cut.

    On a terminal wide enough: a table (the id column never wraps, the others fold).
    Otherwise (piped, or a narrow terminal): a tab-separated header and one line per row,
    every value whole.
    """
    if not rows:
        out.print(empty)
        return
    columns = list(zip(headers, *rows, strict=True))
    # Each column at its narrowest: the ids whole, the others down to their longest word;
    # each column adds three characters of border and padding, and the table one more.
    narrowest = [max(map(len, columns[0]))] + [
        max(len(word) for value in column for word in value.split() or [""])
        for column in columns[1:]
    ]
    if out.is_terminal and sum(narrowest) + 3 * len(headers) + 1 <= out.width:
        table = Table(
            Column(headers[0], no_wrap=True),
            *(Column(header, overflow="fold") for header in headers[1:]),
        )
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    for row in (headers, *rows):
        out.print("\t".join(row), markup=False)


@accounts_app.command("create")
def accounts_create(
    account_id: Annotated[str, typer.Argument(metavar="ID", help="The account id.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    external_ref: Annotated[str | None, typer.Option(help="The account's external ref.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account with its six core roles."""
    created = run_in(
        True, lambda conn: account_core.create_account(conn, account_id, name, external_ref)
    )
    if as_json:
        emit_json(asdict(created))
    else:
        out.print(f"Created account {created.id} ({created.name}) with its six core roles.")


@accounts_app.command("list")
def accounts_list(as_json: JsonOption = False) -> None:
    """List accounts."""
    found = run_in(False, account_core.list_accounts)
    if as_json:
        emit_json([asdict(a) for a in found])
        return
    rows = [
        (a.id, a.name, a.external_ref or "", a.created_at.isoformat(timespec="seconds"))
        for a in found
    ]
    _print_listing(("id", "name", "external ref", "created"), rows, "No accounts yet.")


@accounts_app.command("update")
def accounts_update(
    account_id: Annotated[str, typer.Argument(metavar="ID", help="The account id.")],
    name: Annotated[str | None, typer.Option(help="A new display name.")] = None,
    external_ref: Annotated[
        str | None, typer.Option(help="A new external ref (an empty one clears it).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change an account's name or external ref (its id never changes)."""
    changes: dict[str, str | None] = {}
    if name is not None:
        changes["name"] = name
    if external_ref is not None:
        changes["external_ref"] = external_ref or None
    if not changes:
        raise CommandError("give --name or --external-ref")
    updated = run_in(True, lambda conn: account_core.update_account(conn, account_id, changes))
    if as_json:
        emit_json(asdict(updated))
    else:
        ref = f", external ref {updated.external_ref}" if updated.external_ref else ""
        out.print(f"Account {updated.id}: {updated.name}{ref}.")


# -- clients -----------------------------------------------------------------------------


def _print_credentials(made: auth.ClientCredentials) -> None:
    out.print("Keep these now; they cannot be shown again:")
    out.print(f"  client_id:     {made.client_id}")
    out.print(f"  client_secret: {made.client_secret}")
    out.print(f"  api_key:       {made.api_key}")


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Who the client is, for your records.")],
    account: Annotated[
        list[str] | None, typer.Option("--account", help="An account it may reach (repeat).")
    ] = None,
    all_accounts: Annotated[
        bool, typer.Option("--all-accounts", help="It may reach every account.")
    ] = False,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="read, write or admin (repeat).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API client; its secret and key are printed once and stored only as hashes."""
    if bool(account) == all_accounts:
        raise CommandError("give --account ID (one or more) or --all-accounts, not both")
    scopes = scope or ["read"]
    made = run_in(
        True,
        lambda conn: auth.create_client(conn, name, scopes, None if all_accounts else account),
    )
    if as_json:
        emit_json(asdict(made))
        return
    out.print(f"Created client {made.client_id} ({name}), scopes: {' '.join(scopes)}.")
    _print_credentials(made)


@clients_app.command("list")
def clients_list(as_json: JsonOption = False) -> None:
    """List API clients (never their secrets)."""
    found = run_in(False, auth.list_clients)
    if as_json:
        emit_json([asdict(c) for c in found])
        return
    rows = [
        (
            c.client_id,
            c.name,
            " ".join(c.scopes),
            "all" if c.account_ids is None else ", ".join(c.account_ids),
            c.created_at.isoformat(timespec="seconds"),
            c.revoked_at.isoformat(timespec="seconds") if c.revoked_at else "",
        )
        for c in found
    ]
    headers = ("client id", "name", "scopes", "accounts", "created", "revoked")
    _print_listing(headers, rows, "No clients yet.")


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a client: its key and tokens stop working from the next request."""
    at = run_in(True, lambda conn: auth.revoke_client(conn, client_id))
    if as_json:
        emit_json({"client_id": client_id, "revoked_at": at})
    else:
        out.print(f"Revoked {client_id} (at {at.isoformat(timespec='seconds')}).")


@clients_app.command("rotate")
def clients_rotate(
    client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
    grace: Annotated[
        int,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            help="How long the old secret and key keep working (0: they stop now; at most 7 days).",
        ),
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Give a client a new secret and key, printed once; the old ones stop now or after --grace."""
    done = run_in(True, lambda conn: auth.rotate_client(conn, client_id, timedelta(seconds=grace)))
    if as_json:
        emit_json(
            {
                **asdict(done.credentials),
                "rotated_at": done.rotated_at,
                "previous_expire_at": done.previous_expire_at,
            }
        )
        return
    made = done.credentials
    stop = (
        "now"
        if done.previous_expire_at == done.rotated_at
        else f"at {done.previous_expire_at.isoformat(timespec='seconds')}"
    )
    out.print(f"Rotated {made.client_id}; its old secret and key stop {stop}.")
    _print_credentials(made)


# -- import, export, demo ----------------------------------------------------------------


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with a header row, or JSON Lines.")],
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            help="The account the people join. Without it, each row names its account "
            "in an account_id column.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per committed batch.", min=1)] = 5000,
    as_json: JsonOption = False,
) -> None:
    """Create or update people from a file, by the Persons API's matching rules."""
    from roster.core.importing import ImportProgress, import_rows

    config = settings()
    with _progress(as_json) as progress:
        task = progress.add_task("Importing", total=None) if progress else None

        def report(step: ImportProgress) -> None:
            if progress is not None and task is not None:
                progress.update(
                    task,
                    completed=step.bytes_read,
                    total=step.total_bytes,
                    description=f"Imported {step.rows:,} rows",
                )

        summary = on_database(
            config,
            lambda engine: import_rows(
                engine, config, account, file, batch_size=batch_size, on_progress=report
            ),
        )
    if as_json:
        emit_json({"rows": summary.rows, **asdict(summary)})
    else:
        out.print(
            f"{summary.rows:,} rows: {summary.created:,} created, {summary.updated:,} updated, "
            f"{summary.unchanged:,} unchanged, {summary.failed:,} failed."
        )
        for failure in summary.failures:
            out.print(f"  line {failure.line}: {failure.reason}")
    if summary.failed:
        raise typer.Exit(2)


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if quiet or not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        yield progress


@app.command("export")
def export(
    account: Annotated[str, typer.Option("--account", help="The account to export.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from -o, else csv).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write an account's people in the format import reads (round-trip safe)."""
    from roster.core.exporting import EXPORT_FORMATS, export_rows

    wanted = fmt or ("jsonl" if output and output.suffix in (".jsonl", ".ndjson") else "csv")
    chosen = next((f for f in EXPORT_FORMATS if f == wanted), None)
    if chosen is None:
        raise CommandError(f"--format must be csv or jsonl, not {wanted!r}")
    config = settings()

    def write_to(stream: TextIO) -> int:
        return on_database(config, lambda engine: export_rows(engine, account, chosen, stream))

    written = _write_output(output, write_to)
    if output is not None:
        err.print(f"Wrote {written:,} people of {account} to {output}.")


def _write_output(output: Path | None, write_to: Callable[[TextIO], int]) -> int:
    """Run ``write_to`` on stdout, or on ``output``: a file that appears whole, or not at
    all if the export fails; what ``write_to`` answers."""
    if output is None:
        return write_to(sys.stdout)
    partial = output.with_name(output.name + ".partial")
    try:
        stream = partial.open("w", encoding="utf-8", newline="")
    except OSError as error:
        raise CommandError(f"cannot write {str(output)!r}: {error.strerror or error}") from None
    try:
        with stream:
            written = write_to(stream)
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)  # a failed export leaves no file behind
        raise
    return written


@events_app.command("export")
def events_export(
    account: Annotated[str, typer.Option("--account", help="The account whose events to export.")],
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Only events from this date or time on (UTC unless it says otherwise).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write an account's events as JSON Lines, oldest first (the audit trail's archive)."""
    from roster.api.events import event_json
    from roster.core.events import EventFilter, export_events

    start = None if since is None else since if since.tzinfo else since.replace(tzinfo=UTC)
    wanted = EventFilter(account, since=start)
    config = settings()

    def write_to(stream: TextIO) -> int:
        return on_database(config, lambda engine: export_events(engine, wanted, stream, event_json))

    written = _write_output(output, write_to)
    if output is not None:
        err.print(f"Wrote {written:,} events of {account} to {output}.")


@events_app.command("prune")
def events_prune(
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            help="Keep this many days of events (default: ROSTER_EVENT_RETENTION_DAYS, 90).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Remove the events older than the retention period."""
    from roster.core.events import prune_events

    kept = days or settings().event_retention_days
    removed = run_in(True, lambda conn: prune_events(conn, kept))
    if as_json:
        emit_json({"removed": removed, "retention_days": kept})
    else:
        out.print(f"Removed {removed:,} events older than {kept} days.")


@persons_app.command("show")
def persons_show(identifier: IdentifierArgument, as_json: JsonOption = False) -> None:
    """Print everything Roster holds about one person (a subject access request)."""
    from roster.core.erasure import person_record

    record = run_in(False, lambda conn: person_record(conn, identifier))
    if as_json:
        emit_json(record)
        return
    person = record["person"]
    out.print(f"Person {person['id']}: {person['first_name'] or ''} {person['last_name'] or ''}")
    rows = [
        (p["account_id"], str(p["id"]), p["role_name"], p["status"]) for p in record["personas"]
    ]
    _print_listing(("account", "persona", "role", "status"), rows, "No personas.")
    out.print(f"{len(record['events'])} events carry this person's data (--json shows all).")


@persons_app.command("erase")
def persons_erase(
    identifier: IdentifierArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Erase: it cannot be undone.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Erase a person everywhere, and its data from the change log (right to be forgotten)."""
    from roster.core.erasure import erase_person

    if not yes:
        raise CommandError("erasure cannot be undone: add --yes to erase this person")
    erased = run_in(True, lambda conn: erase_person(conn, identifier))
    if as_json:
        emit_json(asdict(erased))
        return
    out.print(
        f"Erased person {erased.person_id} from {len(erased.account_ids)} accounts "
        f"({', '.join(erased.account_ids) or 'none'}); {erased.events_scrubbed} earlier "
        "events no longer carry its data."
    )


@app.command()
def demo(
    people: Annotated[int, typer.Option(help="How many people.", min=1, max=1_000_000)] = 1000,
    account: Annotated[str, typer.Option(help="The account (created if missing).")] = "DEMO",
    seed: Annotated[int, typer.Option(help="Same seed, same people.")] = 1,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Add demo people to an account that has real people too."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fill an account with realistic generated people, teams, roles, budgets, addresses.

    Running it again adds only what is missing (the same seed gives the same people)."""
    from roster.core.demo import RealAccount, generate_demo

    config = settings()

    def fill(engine: AsyncEngine) -> Awaitable[DemoSummary]:
        return generate_demo(
            engine, config, account, people=people, seed=seed, into_real_account=yes
        )

    try:
        made = on_database(config, fill)
    except RealAccount as error:
        raise CommandError(f"{error.message} Pass --yes to add them anyway.") from None
    if as_json:
        emit_json(asdict(made))
    else:
        counted = ", ".join(
            f"{v:,} {k.replace('_', ' ')}" for k, v in asdict(made).items() if type(v) is int
        )
        out.print(f"Demo data in {account}: {counted}.")


if __name__ == "__main__":  # pragma: no cover
    main()
