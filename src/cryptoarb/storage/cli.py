"""``cryptoarb db init|migrate|stats``: create, upgrade and inspect the store.

The backend is PostgreSQL when a DSN is given (``--dsn``, else ``CRYPTOARB_DB_DSN``, else
``CRYPTOARB_SECRETS__DB_DSN``), otherwise the SQLite file in the data directory. Exit codes: 0 done,
2 bad usage or configuration, 1 the database failed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from cryptoarb.config import ConfigError, Settings, load_settings
from cryptoarb.storage import PostgresStore, SqliteStore, Store, StoreError, mask_dsn, resolve_dsn
from cryptoarb.storage.postgres import check_dsn
from cryptoarb.storage.schema import LATEST_VERSION, TABLES, TIME_SERIES

EXIT_RUNTIME = 1
EXIT_USAGE = 2

db_app = typer.Typer(no_args_is_help=True, help="Create, migrate and inspect the database (SQLite or "
                     "PostgreSQL).")
err = Console(stderr=True)
T = TypeVar("T")

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML settings file (default: ./cryptoarb.toml when present).", dir_okay=False)]
DsnOption = Annotated[str | None, typer.Option(
    help="PostgreSQL DSN (default: $CRYPTOARB_DB_DSN, then secrets.db_dsn); without one, SQLite is used.")]
SchemaOption = Annotated[str | None, typer.Option(
    help="PostgreSQL schema to keep the tables in (created if missing; default: the search path).")]
SqliteOption = Annotated[Path | None, typer.Option(
    "--sqlite", help="SQLite file (default: <data_dir>/<storage.sqlite_file>).", dir_okay=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _store(settings: Settings, dsn: str | None, schema: str | None, sqlite: Path | None) -> Store:
    resolved = resolve_dsn(settings, dsn)
    if resolved:
        try:
            check_dsn(resolved)  # an unreadable DSN is bad configuration, said without its password
            return PostgresStore(resolved, schema=schema)
        except StoreError as exc:
            raise _fail(str(exc), EXIT_USAGE) from None
    if schema:
        raise _fail("--schema needs PostgreSQL (a DSN)", EXIT_USAGE)
    return SqliteStore(sqlite or settings.sqlite_path)


def _location(store: Store) -> str:
    return store.location if isinstance(store, PostgresStore) else str(getattr(store, "path", "?"))


def _run(work: Callable[[], Awaitable[T]], store: Store) -> T:
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except (StoreError, OSError, asyncpg.PostgresError) as exc:
        raise _fail(str(exc), EXIT_RUNTIME) from None
    except sqlite3.Error as exc:  # "file is not a database" and the like: say which file
        raise _fail(f"{_location(store)}: {exc}", EXIT_RUNTIME) from None


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        print(json.dumps(data, separators=(",", ":")))
    else:
        Console(soft_wrap=True).print(text, highlight=False)


@db_app.command("init")
def init(config: ConfigOption = None, dsn: DsnOption = None, schema: SchemaOption = None,
         sqlite: SqliteOption = None, as_json: JsonOption = False) -> None:
    """Create the database if it does not exist yet, then apply every migration.

    SQLite: creates the file (and the data directory). PostgreSQL: creates the DSN's database when the
    server lacks it (needs CREATEDB) and the schema when --schema names one.
    """
    store = _store(_settings(config), dsn, schema, sqlite)

    async def work() -> tuple[int, int, bool]:
        created = False
        if isinstance(store, PostgresStore):
            created = await _create_database_if_missing(store.dsn)
        elif isinstance(store, SqliteStore):
            created = not store.path.exists()
        await store.open()
        try:
            before = await store.schema_version()
            return before, await store.migrate(), created
        finally:
            await store.close()

    before, after, created = _run(work, store)
    data = {"backend": _backend(store), "location": _location(store), "created": created,
            "schema_version_before": before, "schema_version": after}
    verb = "created" if created else "found"
    _emit(as_json, data,
          f"{verb} {_backend(store)} database {_location(store)}; schema version {before} -> {after}")


@db_app.command("migrate")
def migrate(config: ConfigOption = None, dsn: DsnOption = None, schema: SchemaOption = None,
            sqlite: SqliteOption = None, as_json: JsonOption = False) -> None:
    """Apply pending migrations to an existing database (safe to repeat, safe to run concurrently)."""
    store = _store(_settings(config), dsn, schema, sqlite)
    if isinstance(store, SqliteStore) and not store.path.exists():
        raise _fail(f"no database at {store.path}; create it with `cryptoarb db init`", EXIT_RUNTIME)

    async def work() -> tuple[int, int]:
        await store.open()
        try:
            before = await store.schema_version()
            return before, await store.migrate()
        finally:
            await store.close()

    before, after = _run(work, store)
    data = {"backend": _backend(store), "location": _location(store), "schema_version_before": before,
            "schema_version": after, "applied": after - before}
    _emit(as_json, data, f"{_location(store)}: schema version {before} -> {after} "
                         f"({after - before} migration(s) applied)")


@db_app.command("stats")
def stats(config: ConfigOption = None, dsn: DsnOption = None, schema: SchemaOption = None,
          sqlite: SqliteOption = None, as_json: JsonOption = False) -> None:
    """Schema version, rows per table, time span of the market data, size on disk, partitions."""
    store = _store(_settings(config), dsn, schema, sqlite)
    if isinstance(store, SqliteStore):
        if not store.path.exists():
            raise _fail(f"no database at {store.path}; create it with `cryptoarb db init`", EXIT_RUNTIME)
        store = SqliteStore(store.path, read_only=True)  # inspecting a file must not change it
    data = _run(lambda: store_stats(store), store)
    if as_json:
        print(json.dumps(data, separators=(",", ":")))
        return
    table = Table(title=f"{data['backend']} {data['location']}", show_header=True)
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("partitions", justify="right")
    for name, rows in data["tables"].items():
        parts = data["partitions"].get(name)
        table.add_row(name, f"{rows:,}" if rows is not None else "-", "" if parts is None else str(parts))
    out = Console()
    out.print(table)
    out.print(f"schema version {data['schema_version']} (latest {data['latest_version']}), "
              f"{data['size_bytes'] / 1e6:,.1f} MB, timescale: {data['timescale']}", highlight=False)
    for name, span in data["time_span"].items():
        out.print(f"{name}: {span[0]} .. {span[1]}", highlight=False)


def _backend(store: Store) -> str:
    if isinstance(store, PostgresStore):
        return "postgres+timescale" if store.timescale else "postgres"
    return "sqlite"


async def store_stats(store: Store) -> dict[str, Any]:
    """What ``db stats`` prints, as plain data (also for reports and the dashboard)."""
    await store.open()
    try:
        version = await store.schema_version()
        tables: dict[str, int | None] = {}
        for name in TABLES:
            tables[name] = await store.count(name) if version else None
        spans: dict[str, list[float]] = {}
        partitions: dict[str, int] = {}
        if isinstance(store, PostgresStore):
            size = await store.size_bytes()
            for name in TIME_SERIES:
                if version:
                    partitions[name] = len(await store.partitions(name))
                    row = (await store.fetch(f"SELECT MIN(ts), MAX(ts) FROM {name}"))[0]
                    if row[0] is not None:
                        spans[name] = [row[0], row[1]]
        else:
            assert isinstance(store, SqliteStore)
            size = sum(p.stat().st_size for p in (store.path, Path(f"{store.path}-wal")) if p.exists())
            for name in TIME_SERIES:
                if version:
                    async with store.db.execute(f"SELECT MIN(ts), MAX(ts) FROM {name}") as cur:
                        row = await cur.fetchone()
                    if row and row[0] is not None:
                        spans[name] = [row[0], row[1]]
    finally:
        await store.close()
    return {"backend": _backend(store), "location": _location(store), "schema_version": version,
            "latest_version": LATEST_VERSION, "tables": tables, "size_bytes": size,
            "partitions": partitions, "timescale": isinstance(store, PostgresStore) and store.timescale,
            "time_span": spans}


async def _create_database_if_missing(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    except (OSError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"cannot connect to {mask_dsn(dsn)}: {exc}") from exc
    else:
        await conn.close()
        return False
    name = _database_name(dsn)
    try:
        admin = await asyncpg.connect(dsn, database="postgres")
    except (OSError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"cannot connect to {mask_dsn(dsn)} (database postgres): {exc}") from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    return True


def _database_name(dsn: str) -> str:
    name = unquote(urlsplit(dsn).path.lstrip("/"))
    if not name or '"' in name:
        raise StoreError(f"cannot tell which database {mask_dsn(dsn)} names")
    return name
