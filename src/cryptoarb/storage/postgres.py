"""``PostgresStore``: the same schema and migrations as SQLite, on PostgreSQL through asyncpg.

Append-only tables (ticks, book snapshots, rejections, balances, events) are written with ``COPY``
(binary, one round trip per table per batch); keyed tables (opportunities, orders, fills,
executions, recordings) go through the shared ``INSERT ... ON CONFLICT`` so a replayed batch stays
idempotent, pipelined in one ``executemany``. Every batch is one transaction.

Time series are partitioned by day: TimescaleDB hypertables (1-day chunks) when the extension is
installed in the database, otherwise native range partitions created on demand before a batch that
needs them. Writes have a connection of their own and reads a pool, so no number of readers can keep
the writer waiting (and MVCC shows readers committed batches only).

``schema`` puts every table in its own PostgreSQL schema (created if missing): tests and several
deployments can share one database without colliding.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

import asyncpg

from cryptoarb.storage.base import Batch, ExecutionRecord, Row, StoreError
from cryptoarb.storage.schema import (
    DAY_S,
    MIGRATIONS,
    POSTGRES,
    POSTGRES_TIMESCALE,
    TABLES,
    TIME_SERIES,
    Dialect,
    create_partition_sql,
    insert_sql,
    partition_name,
    schema_version_sql,
)

_INSERT_SQL = {name: insert_sql(table, POSTGRES) for name, table in TABLES.items()}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Arbitrary constants: one lock serialises migrations, the other partition creation, across processes.
_MIGRATION_LOCK = 0x63617262_01
_PARTITION_LOCK = 0x63617262_02


_MASK = "********"
_SECRET_KEYS = frozenset({"password", "sslpassword"})
# A URL: a scheme, then (usually) "//". Anything else is read as libpq's keyword/value form.
_URL_START = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]*:(?://)?")
_URL_PREFIX = re.compile(r"[\x00-\x20]*postgres(?:ql)?://", re.IGNORECASE)
_QUERY_KEY = re.compile(r"(?<=[?&])([^=&#?]*)=")
# A secret query value runs to the next "&name=": a raw "&", "?" or "#" in a password stays masked.
_NEXT_FIELD = re.compile(r"&[^=&#?]*=")
# libpq keyword/value: ``password = 'it\'s'`` quoted (backslash escapes; an unterminated quote runs to
# the end) or bare (up to unescaped whitespace).
_KEYWORD_SECRET = re.compile(
    r"(?:^|(?<=\s))(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*(?:'|\\?\Z)|(?:[^\s\\]|\\.)*\\?)",
    re.IGNORECASE | re.DOTALL)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with every password replaced by ``********``, safe to print; never raises.

    Masks the URL's userinfo password (up to the *last* ``@``, so a raw ``@``, ``:`` or ``/`` in it is
    masked whole), ``password=`` and ``sslpassword=`` in the URL's query (names percent-decoded), and
    the same keys in libpq's ``key=value`` form, quoted or not. When in doubt it masks more.
    """
    spans: list[tuple[int, int]] = []
    if url := _URL_START.match(dsn):
        start = url.end()
        first_secret = len(dsn)
        if (query := dsn.find("?", start)) >= 0:
            for key in _QUERY_KEY.finditer(dsn, query):
                if unquote_plus(key.group(1)).strip().lower() in _SECRET_KEYS:
                    following = _NEXT_FIELD.search(dsn, key.end())
                    spans.append((key.end(), following.start() if following else len(dsn)))
                    first_secret = min(first_secret, key.start())
        # The userinfo ends at the last "@" before any secret query field (whose value may hold "@").
        at = dsn.rfind("@", start, first_secret)
        colon = dsn.find(":", start, at) if at >= 0 else -1
        if colon >= 0:
            spans.append((colon + 1, at))
    else:
        spans += [m.span(1) for m in _KEYWORD_SECRET.finditer(dsn)]
    merged: list[list[int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    out, pos = [], 0
    for begin, end in merged:
        out += [dsn[pos:begin], _MASK]
        pos = end
    out.append(dsn[pos:])
    return "".join(out)


def check_dsn(dsn: str) -> None:
    """Raise :class:`StoreError` (naming the problem, the DSN masked) unless asyncpg reads ``dsn`` as meant.

    That is a ``postgresql://`` (or ``postgres://``) URL with numeric ports and a well-formed query. A
    raw ``@`` in the user name or password is refused: asyncpg splits the userinfo at the *first* ``@``
    and would take the rest of the password for the host name (and print it in its errors).
    """
    if reason := _dsn_problem(dsn):
        # a string that is not even a URL could be anything (a password pasted in the wrong variable): not shown
        shown = mask_dsn(dsn) if _URL_PREFIX.match(dsn) else "(not shown)"
        raise StoreError(f"invalid PostgreSQL DSN {shown}: {reason}")


def _dsn_problem(dsn: str) -> str | None:
    # Fixed texts only: urllib's and int()'s messages can quote parts of the password.
    try:
        parsed = urlsplit(dsn)
    except ValueError:
        return "not a valid URL (an IPv6 host goes in brackets: [::1])"
    if parsed.scheme not in ("postgresql", "postgres") or not _URL_PREFIX.match(dsn):
        return "expected a postgresql://user:password@host:port/database URL (not the libpq key=value form)"
    userinfo, at, hostspec = parsed.netloc.rpartition("@")
    if "@" in userinfo:
        return "write an @ in the user name or password as %40"
    if not at and "@" in parsed.path:  # "u:pa/ss@host/db": the password's tail would be the database name
        return "write a / in a password as %2F (and an @ in a database name as %40)"
    query: dict[str, list[str]] = {}
    if parsed.query:
        try:
            query = parse_qs(parsed.query, strict_parsing=True)
        except ValueError:
            return "malformed query string (name=value fields joined by &, percent-encoded)"
    if hostspec and not _hosts_ok(hostspec, unquote_ports=True):
        return "malformed host or port (write a /, ? or # in a password as %2F, %3F, %23)"
    if "host" in query and not _hosts_ok(query["host"][-1], unquote_ports=False):
        return "malformed host or port in the query's host="
    if "port" in query and not all(_is_int(p) for p in query["port"][-1].split(",")):
        return "the query's port= is not a number"
    return None


def _hosts_ok(hostlist: str, *, unquote_ports: bool) -> bool:
    """Whether asyncpg's host list parser reads ``hostlist``: ``host[:port]``, ``[ipv6][:port]`` or
    ``/socket/dir``, comma-separated."""
    for spec in hostlist.split(","):
        if not spec or (spec[0] == "[" and not re.match(r"\[[^\]]+\](?::[0-9]+)?", spec)):
            return False
        if spec[0] in "/[":
            continue
        port = spec.partition(":")[2]
        if port and not _is_int(unquote(port) if unquote_ports else port):
            return False
    return True


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


async def pg_unavailable(dsn: str, timeout_s: float = 5.0) -> str | None:
    """Why no PostgreSQL server answers at ``dsn`` (``None`` when one does)."""
    try:
        check_dsn(dsn)
    except StoreError as exc:
        return str(exc)
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"no PostgreSQL server at {mask_dsn(dsn)}: {type(exc).__name__}: {exc}"
    except ValueError:
        return f"no PostgreSQL server at {mask_dsn(dsn)}: invalid DSN"
    await conn.close()
    return None


class PostgresStore:
    def __init__(self, dsn: str, *, schema: str | None = None, min_connections: int = 1,
                 max_connections: int = 4, command_timeout_s: float = 60.0) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(f"schema name {schema!r} must be lower-case letters, digits and _")
        self.dsn = dsn
        self.schema = schema
        self._min = min_connections
        self._max = max(max_connections, min_connections)
        self._command_timeout_s = command_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._write_pool: asyncpg.Pool | None = None
        self._timescale: bool | None = None
        self._partitions: dict[str, set[int]] = {}

    @property
    def location(self) -> str:
        return mask_dsn(self.dsn) + (f" (schema {self.schema})" if self.schema else "")

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._pool is not None:
            return
        check_dsn(self.dsn)
        try:
            settings = await self._prepare()
            pools: list[asyncpg.Pool] = []
            try:
                for size in (1, self._max):
                    pools.append(await asyncpg.create_pool(
                        self.dsn, min_size=min(self._min, size), max_size=size, server_settings=settings,
                        command_timeout=self._command_timeout_s))
            except BaseException:
                for pool in pools:
                    await pool.close()
                raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to {mask_dsn(self.dsn)}: {exc}") from exc
        except ValueError as exc:  # from urllib or int(): its message may quote part of the DSN
            raise StoreError(f"cannot connect to {mask_dsn(self.dsn)}: invalid DSN") from exc
        self._write_pool, self._pool = pools

    async def _prepare(self) -> dict[str, str]:
        """Detect TimescaleDB, create the schema; returns the sessions' settings."""
        conn = await asyncpg.connect(self.dsn, timeout=self._command_timeout_s)
        try:
            ext_schema = await conn.fetchval(
                "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'timescaledb'")
            self._timescale = ext_schema is not None
            if self.schema:
                with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError):
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        finally:
            await conn.close()
        settings = {"application_name": "cryptoarb"}
        if self.schema:
            # Only our schema (plus TimescaleDB's, for create_hypertable): an unqualified name must
            # never fall through to another deployment's table in public.
            settings["search_path"] = ", ".join([self.schema, *([ext_schema] if ext_schema else [])])
        return settings

    async def close(self) -> None:
        pools = [p for p in (self._pool, self._write_pool) if p is not None]
        self._pool = self._write_pool = None
        for pool in pools:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        """Connections for reads."""
        if self._pool is None:
            raise StoreError(f"store {self.location} is not open")
        return self._pool

    @property
    def write_pool(self) -> asyncpg.Pool:
        """The one connection writes (batches, migrations) use."""
        if self._write_pool is None:
            raise StoreError(f"store {self.location} is not open")
        return self._write_pool

    @property
    def dialect(self) -> Dialect:
        return POSTGRES_TIMESCALE if self._timescale else POSTGRES

    @property
    def timescale(self) -> bool:
        return bool(self._timescale)

    async def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (tests, throwaway deployments)."""
        if not self.schema:
            raise StoreError("refusing to drop a store without its own schema")
        await self.write_pool.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self._partitions.clear()

    # -- migrations ----------------------------------------------------------------------------
    async def schema_version(self) -> int:
        async with self.pool.acquire() as conn:
            return await self._version(conn)

    async def _version(self, conn: asyncpg.Connection) -> int:
        exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        if not exists:
            return 0
        return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def migrate(self) -> int:
        dialect = self.dialect
        async with self.write_pool.acquire() as conn, conn.transaction():
            # Transactional DDL plus one lock: concurrent migrators apply each step exactly once.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(schema_version_sql(dialect))
            current = await self._version(conn)
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements(dialect):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                    migration.version, migration.description, time.time())
                current = migration.version
        self._partitions.clear()
        return current

    # -- writes --------------------------------------------------------------------------------
    async def write_batch(self, batch: Batch) -> None:
        if not len(batch):
            return
        async with self.write_pool.acquire() as conn:
            await self._ensure_partitions(conn, batch)
            async with conn.transaction():
                await self.write_rows(conn, batch)

    async def write_rows(self, conn: asyncpg.Connection, batch: Batch) -> None:
        """Every row of ``batch`` on ``conn``, inside the caller's transaction."""
        for table, rows in batch.tables():
            spec = TABLES[table]
            if spec.conflict is not None:
                await conn.executemany(_INSERT_SQL[table], rows)
            else:
                await conn.copy_records_to_table(table, records=rows, columns=spec.insert_columns)

    async def _ensure_partitions(self, conn: asyncpg.Connection, batch: Batch) -> None:
        if self._timescale:
            return  # TimescaleDB makes its chunks itself
        needed: dict[str, set[int]] = {}
        for table in TIME_SERIES:
            rows = batch.rows.get(table)
            if not rows:
                continue
            position = TABLES[table].insert_columns.index(TABLES[table].time_column)
            days = {math.floor(row[position] / DAY_S) for row in rows}
            known = await self._known_partitions(conn, table)
            if missing := days - known:
                needed[table] = missing
        if not needed:
            return
        # Its own transaction, so a failed batch does not roll back partitions another writer saw made.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
            for table, days in needed.items():
                attached = set(await self._partition_names(conn, table))
                for day in sorted(days):
                    if partition_name(table, day) not in attached:  # another writer may have made it
                        for statement in create_partition_sql(table, day):
                            await conn.execute(statement)
        for table, days in needed.items():
            self._partitions[table] |= days

    async def _known_partitions(self, conn: asyncpg.Connection, table: str) -> set[int]:
        known = self._partitions.get(table)
        if known is None:
            known = self._partitions[table] = {
                day for name in await self._partition_names(conn, table)
                if (day := _partition_day(table, name)) is not None}
        return known

    async def _partition_names(self, conn: asyncpg.Connection, table: str) -> list[str]:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass($1)", table)
        return sorted(r[0] for r in rows)

    # -- reads ---------------------------------------------------------------------------------
    async def count(self, table: str) -> int:
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}")
        return int(await self.pool.fetchval(f"SELECT COUNT(*) FROM {table}"))

    async def trades_count(self) -> int:
        return int(await self.pool.fetchval("SELECT COUNT(*) FROM fills"))

    async def pnl_usd(self, since: float | None = None, mode: str | None = None) -> float:
        sql = "SELECT COALESCE(SUM(realized_profit_usd), 0.0) FROM executions WHERE at >= $1"
        args: list[Any] = [float("-inf") if since is None else since]
        if mode is not None:
            sql += " AND mode = $2"
            args.append(mode)
        return float(await self.pool.fetchval(sql, *args))

    async def recent_executions(self, n: int) -> list[ExecutionRecord]:
        rows = await self.pool.fetch(
            "SELECT e.opportunity_id, o.kind, o.path, e.realized_profit, e.realized_profit_usd, "
            "e.fees_usd, e.mode, e.at FROM executions e "
            "LEFT JOIN opportunities o ON o.id = e.opportunity_id "
            "ORDER BY e.at DESC, e.opportunity_id DESC LIMIT $1", n)
        return [
            ExecutionRecord(
                opportunity_id=r[0], kind=r[1] or "", path=tuple(json.loads(r[2])) if r[2] else (),
                realized_profit=Decimal(r[3]), realized_profit_usd=r[4], fees_usd=r[5], mode=r[6], at=r[7])
            for r in rows
        ]

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Rows of a read-only query as plain tuples (reports, the replay of stored recordings)."""
        return [tuple(r) for r in await self.pool.fetch(sql, *args)]

    async def partitions(self, table: str) -> list[str]:
        """Native partitions (or TimescaleDB chunks) of a time-series ``table``."""
        if table not in TIME_SERIES:
            raise StoreError(f"{table!r} is not a time-series table")
        async with self.pool.acquire() as conn:
            if self._timescale:
                rows = await conn.fetch("SELECT chunk_name FROM timescaledb_information.chunks "
                                        "WHERE hypertable_name = $1 ORDER BY chunk_name", table)
                return [r[0] for r in rows]
            return await self._partition_names(conn, table)

    async def size_bytes(self) -> int:
        """On-disk size of every table of this store, partitions and indexes included."""
        schema = self.schema or "public"
        size = int(await self.pool.fetchval(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
            schema))
        if self._timescale:  # chunks live in TimescaleDB's own schema
            size += int(await self.pool.fetchval(
                "SELECT COALESCE(SUM(hypertable_size(format('%I.%I', hypertable_schema, hypertable_name)"
                "::regclass)), 0) FROM timescaledb_information.hypertables WHERE hypertable_schema = $1",
                schema))
        return size


def _partition_day(table: str, name: str) -> int | None:
    match = re.fullmatch(rf"{re.escape(table)}_([pm])(\d+)", name)
    if match is None:
        return None
    day = int(match.group(2))
    return day if match.group(1) == "p" else -day

