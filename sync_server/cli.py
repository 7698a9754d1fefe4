"""``sync-server``: serve, migrate, and the tools that work on the log."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from .settings import Settings

if TYPE_CHECKING:
    from event_store import EventStore

# prometheus_client's multiprocess directory (named here so that the CLI does not import it).
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _settings(args: argparse.Namespace) -> Settings:
    # Command-line flags win over the environment; the environment over the defaults.
    overrides = {}
    if getattr(args, "database_url", None):
        overrides["DATABASE_URL"] = args.database_url
    if getattr(args, "data_dir", None):
        overrides["SYNC_DATA_DIR"] = args.data_dir
    os.environ.update(overrides)
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import logs

    if args.host:
        os.environ["SYNC_HOST"] = args.host
    if args.port is not None:
        os.environ["SYNC_PORT"] = str(args.port)
    if args.workers is not None:
        os.environ["SYNC_WORKERS"] = str(args.workers)
    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_json)
    if settings.embedded and settings.workers > 1:
        print(
            "sync-server: the embedded SQLite mode runs one writer process; use --workers 1, "
            "or set DATABASE_URL to a PostgreSQL database for several workers",
            file=sys.stderr,
        )
        return 2
    if not settings.embedded and not _preflight(settings):
        return 2
    with _metrics_directory():
        uvicorn.run(
            "sync_server.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    return 0


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """A fresh directory where every worker process writes its metrics (see ``metrics.py``).

    Set before the app (and prometheus_client) is imported in any process, inherited by the
    workers; removed when the server stops. One given by the operator is used as it is.
    """
    if os.environ.get(METRICS_DIR):
        yield
        return
    path = tempfile.mkdtemp(prefix="sync-server-metrics-")
    os.environ[METRICS_DIR] = path
    # uvicorn re-raises the SIGTERM it shut down on once it is done; by default that would end
    # the process before the directory is removed.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        del os.environ[METRICS_DIR]
        shutil.rmtree(path, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _preflight(settings: Settings) -> bool:
    """Before serving on PostgreSQL: migrations applied (unless applied on start), and a
    warning when the workers' pools may ask for more connections than the database allows."""
    from event_store import StoreUnavailable, pending

    from .services import MIGRATIONS, connect

    try:
        with connect(settings) as store:
            waiting = [] if settings.should_migrate_on_start else pending(store, MIGRATIONS)
            with store.sql() as sql:
                row = sql.fetchone(
                    "SELECT current_setting('max_connections')::int "
                    "- current_setting('superuser_reserved_connections')::int"
                )
    except StoreUnavailable as error:
        # Serve anyway: /ready says 503 until the database answers, and the pool reconnects.
        print(f"sync-server: the database is unavailable for now ({error})", file=sys.stderr)
        return True
    if waiting:
        print(
            f"sync-server: {len(waiting)} migration(s) pending; run `sync-server migrate` "
            "first (or set SYNC_MIGRATE_ON_START=true)",
            file=sys.stderr,
        )
        return False
    # Each process: its pool, and one connection listening for change notices.
    wanted = settings.workers * (settings.pool_max_size + 1)
    if row is not None and wanted > int(row[0]):
        print(
            f"sync-server: warning: {settings.workers} worker(s) x (SYNC_POOL_MAX_SIZE="
            f"{settings.pool_max_size} + 1 listener) = {wanted} connections, but the database "
            f"accepts {row[0]}; lower SYNC_POOL_MAX_SIZE or raise max_connections",
            file=sys.stderr,
        )
    return True


def cmd_migrate(args: argparse.Namespace) -> int:
    from .services import connect, migrate_all

    settings = _settings(args)
    with connect(settings) as store:
        applied = migrate_all(store)
    for migration in applied:
        print(f"applied {migration.component} {migration.version:04d}_{migration.name}")
    print(f"database {settings.display_database} is up to date ({len(applied)} applied)")
    return 0


@contextlib.contextmanager
def _store(args: argparse.Namespace) -> Iterator[EventStore]:
    """The store the settings name, migrated (embedded mode) or checked to be up to date."""
    from event_store import pending

    from .services import MIGRATIONS, connect, migrate_all

    settings = _settings(args)
    with connect(settings) as store:
        if settings.should_migrate_on_start:
            migrate_all(store)
        elif pending(store, MIGRATIONS):
            raise _Refused("migrations are pending: run `sync-server migrate` first")
        yield store


class _Refused(Exception):
    """The command cannot run as asked; its message says why (exit status 2)."""


def cmd_rebuild(args: argparse.Namespace) -> int:
    from . import log_commands

    with _store(args) as store:
        return log_commands.rebuild(store, args.tables, sys.stdout, sys.stderr)


def cmd_verify(args: argparse.Namespace) -> int:
    from . import log_commands

    with _store(args) as store:
        return log_commands.verify(store, sys.stdout, sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    from . import log_commands

    with _store(args) as store:
        if args.output in (None, "-"):
            return log_commands.export(store, sys.stdout.buffer, sys.stderr)
        with open(args.output, "wb") as out:
            return log_commands.export(store, out, sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    from . import log_commands

    with _store(args) as store:
        if args.file == "-":
            return log_commands.import_(store, sys.stdin.buffer, sys.stdout, sys.stderr)
        try:
            source = open(args.file, "rb")  # noqa: SIM115 (closed below, after the store)
        except OSError as error:
            raise _Refused(f"cannot read {args.file}: {error.strerror}") from None
        with source:
            return log_commands.import_(store, source, sys.stdout, sys.stderr)


_ENTITY_NAMES = {
    "show": "show", "shows": "show", "cost": "cost", "costs": "cost",
    "workout": "workout", "workouts": "workout",
    "product": "product", "products": "product", "inventory": "product",
}  # fmt: skip


def _moment(raw: str) -> datetime:
    from schemas.moments import parse_moment

    try:
        return parse_moment(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_replay(args: argparse.Namespace) -> int:
    from . import log_commands

    if (args.entity is None) != (args.id is None):
        raise _Refused("--entity and --id go together")
    entity = None if args.entity is None else _ENTITY_NAMES.get(args.entity.lower())
    if args.entity is not None and entity is None:
        raise _Refused(f"unknown entity {args.entity!r}; known: show, cost, workout, product")
    with _store(args) as store:
        return log_commands.replay(
            store, args.as_of, args.owner, entity, args.id, sys.stdout, sys.stderr
        )


def cmd_project(args: argparse.Namespace) -> int:
    import signal
    import threading

    from . import log_commands, logs

    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_json)
    stop = threading.Event()
    if not args.once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _store(args) as store:
        try:
            return log_commands.project(store, args.once, args.interval, sys.stdout, stop)
        except KeyboardInterrupt:
            return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL, or SQLite)")
    parser.add_argument("--data-dir", help="where the embedded SQLite file lives (.sync-data)")


def _command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    run: Callable[[argparse.Namespace], int],
    **text: str,
) -> argparse.ArgumentParser:
    """A subcommand with the common options, run by ``run``; ``text``: its help and
    description."""
    parser: argparse.ArgumentParser = commands.add_parser(name, **text)
    _common(parser)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sync-server", description="Event-sourced, offline-first sync backend."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = _command(commands, "serve", cmd_serve, help="run the HTTP server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, help="server processes (PostgreSQL only)")

    _command(commands, "migrate", cmd_migrate, help="apply pending database migrations")

    rebuild = _command(
        commands,
        "rebuild",
        cmd_rebuild,
        help="rebuild read tables from the log, aside, then swap (safe while serving)",
        description="Rebuild read tables from the log into copies aside, then write the rows "
        "that differ into the live tables under a short lock. Same sync positions as before: "
        "clients keep their cursors unless rows changed (then they are told to reset).",
    )
    rebuild.add_argument(
        "tables", nargs="*", metavar="table", help="shows, costs, workouts, inventory (all)"
    )

    _command(
        commands,
        "verify",
        cmd_verify,
        help="compare the read tables with the log and check the hash chains",
        description="Rebuild every read table aside and print each difference with the live "
        "one (table, owner, id, field, live value, replayed value); check every owner's hash "
        "chain. Exit status 1 on any difference or broken link.",
    )

    export = _command(
        commands,
        "export",
        cmd_export,
        help="write the log (events and idempotency keys) as NDJSON",
        description="Write the whole log as NDJSON from one snapshot, streamed: safe while "
        "serving, constant memory for any size.",
    )
    export.add_argument("--output", "-o", help="file to write (default: standard output)")

    load = _command(
        commands,
        "import",
        cmd_import,
        help="load an NDJSON export into an empty store, then rebuild the read tables",
        description="Load an export into an empty store in one transaction: a damaged file "
        "stops at its first bad line, named by number, and nothing of it is kept.",
    )
    load.add_argument("file", help="the export to load ('-' for standard input)")

    project = _command(
        commands,
        "project",
        cmd_project,
        help="keep the catch-up read models up with the log",
        description="Apply the log to the read models that are not written inline (daily "
        "sales), from each one's checkpoint; rebuild the read tables if the projector code "
        "changed. Any number may run against one PostgreSQL: each event is applied once.",
    )
    project.add_argument("--once", action="store_true", help="stop once caught up")
    project.add_argument(
        "--interval", type=float, default=1.0, help="seconds between rounds (default 1)"
    )

    replay = _command(
        commands,
        "replay",
        cmd_replay,
        help="print entities as they were at a moment, rebuilt from the log",
        description="Print, one JSON line per entity, the state at --as-of rebuilt from the "
        "log (never read from the read tables): of one entity, of one owner, or of everyone.",
    )
    replay.add_argument("--as-of", type=_moment, required=True, help="RFC 3339 time")
    replay.add_argument("--owner", type=UUID, help="the user id whose entities to replay")
    replay.add_argument("--entity", help="show, cost, workout or product (with --id)")
    replay.add_argument("--id", type=UUID, help="the entity's id (with --entity)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except _Refused as refused:
        print(f"sync-server {args.command}: {refused}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`sync-server replay … | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
