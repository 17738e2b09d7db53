"""The storage schema, described once, and the versioned migrations that build it.

Every backend renders the same :data:`TABLES` through a :class:`Dialect`; the only differences are
column type names, parameter placeholders and how time-series tables (``Table.time_column``) are
partitioned: not at all (SQLite), natively by day (PostgreSQL) or as TimescaleDB hypertables with
one-day chunks. ``INSERT ... ON CONFLICT`` is spelled the same in SQLite (>= 3.24) and PostgreSQL, so
idempotent writes need no per-backend code.

Decimals are stored as TEXT (``str(Decimal)``) so nothing is ever rounded; JSON columns hold TEXT too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["text", "decimal", "json", "real", "integer", "serial"]
Partitioning = Literal["none", "native", "timescale"]

DAY_S = 86_400
"""Partition / chunk width of time-series tables, in the store's time unit (seconds)."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    primary_key: bool = False
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class Conflict:
    """What a re-inserted row does: nothing (``update`` empty) or update some columns, optionally only
    ``where`` a condition on ``excluded`` holds."""

    target: tuple[str, ...]
    update: tuple[str, ...] = ()
    where: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    conflict: Conflict | None = None
    indexes: tuple[tuple[str, ...], ...] = ()
    time_column: str = ""
    """Set on append-only time series: partitioned by day on PostgreSQL."""

    @property
    def insert_columns(self) -> tuple[str, ...]:
        """The columns a row tuple carries, in order (generated ids excluded)."""
        return tuple(c.name for c in self.columns if c.type != "serial")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    types: dict[str, str]
    placeholder: Callable[[int], str]
    partitioning: Partitioning = "none"

    def column_sql(self, column: Column, *, partitioned: bool = False) -> str:
        type_sql = self.types[column.type]
        if partitioned and column.type == "serial":
            # A partitioned table's unique keys must contain the partition key; a time series needs none.
            type_sql = self.types["serial_no_key"]
        sql = f"{column.name} {type_sql}"
        if column.primary_key and column.type != "serial":
            sql += " PRIMARY KEY"
        if column.not_null and not column.primary_key:
            sql += " NOT NULL"
        return sql


SQLITE = Dialect(
    name="sqlite",
    types={"text": "TEXT", "decimal": "TEXT", "json": "TEXT", "real": "REAL", "integer": "INTEGER",
           "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
           "serial_no_key": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    placeholder=lambda _n: "?",
)

POSTGRES = Dialect(
    name="postgres",
    types={"text": "TEXT", "decimal": "TEXT", "json": "TEXT", "real": "DOUBLE PRECISION",
           "integer": "BIGINT", "serial": "BIGSERIAL PRIMARY KEY", "serial_no_key": "BIGSERIAL"},
    placeholder=lambda n: f"${n}",
    partitioning="native",
)

POSTGRES_TIMESCALE = dataclasses.replace(POSTGRES, name="postgres+timescale", partitioning="timescale")

TIMESCALE_TIME_FUNC = "cryptoarb_epoch_s_to_timestamptz"
"""TimescaleDB partitions only on integer or timestamp columns; our times are float seconds, so the
hypertable partitions through this immutable conversion instead of changing the column type."""


def _c(name: str, type_: ColumnType, *, pk: bool = False, not_null: bool = False) -> Column:
    return Column(name, type_, primary_key=pk, not_null=not_null)


_ID = _c("id", "serial")

OPPORTUNITIES = Table(
    "opportunities",
    (
        _c("id", "text", pk=True), _c("cycle_id", "integer", not_null=True), _c("kind", "text"),
        _c("path", "json"), _c("legs", "json"), _c("input", "decimal"), _c("output", "decimal"),
        _c("profit", "decimal"), _c("profit_usd", "real"), _c("net_return_bps", "real"),
        _c("detected_at", "real", not_null=True), _c("status", "text", not_null=True),
    ),
    # Status only moves forward: a replayed 'detected' row never undoes 'executed'.
    conflict=Conflict(("id",), update=("status",), where="excluded.status = 'executed'"),
    indexes=(("detected_at",),),
)

REJECTIONS = Table(
    "rejections",
    (
        _ID, _c("cycle_id", "integer"), _c("path", "json"), _c("reason", "text", not_null=True),
        _c("detail", "text"), _c("net_return_bps", "real"), _c("at", "real", not_null=True),
    ),
    indexes=(("at",),),
)

ORDERS = Table(
    "orders",
    (
        _c("client_oid", "text", pk=True), _c("opportunity_id", "text", not_null=True),
        _c("leg_index", "integer"), _c("venue", "text"), _c("symbol", "text"), _c("side", "text"),
        _c("price", "decimal"), _c("size", "decimal"), _c("type", "text"), _c("time_in_force", "text"),
        _c("status", "text"), _c("reason", "text"), _c("created_at", "real"),
    ),
    # An intent ('new', written before the order is sent) replayed late never undoes a later status.
    conflict=Conflict(("client_oid",), update=("status", "reason"), where="excluded.status <> 'new'"),
    indexes=(("opportunity_id",),),
)

FILLS = Table(
    "fills",
    (
        # client_oid + ':' + n: deterministic, so a replayed batch cannot double a fill.
        _c("id", "text", pk=True), _c("client_oid", "text", not_null=True),
        _c("opportunity_id", "text", not_null=True), _c("leg_index", "integer"), _c("venue", "text"),
        _c("symbol", "text"), _c("side", "text"), _c("price", "decimal"), _c("size", "decimal"),
        _c("fee", "decimal"), _c("fee_asset", "text"), _c("at", "real"),
    ),
    conflict=Conflict(("id",)),
    indexes=(("opportunity_id",),),
)

EXECUTIONS = Table(
    "executions",
    (
        _c("opportunity_id", "text", pk=True), _c("realized_profit", "decimal"),
        _c("realized_profit_usd", "real"), _c("fees_usd", "real"), _c("mode", "text"),
        _c("at", "real", not_null=True),
    ),
    conflict=Conflict(("opportunity_id",)),
    indexes=(("at",),),
)

BALANCES = Table(
    "balances",
    (
        _ID, _c("venue", "text", not_null=True), _c("asset", "text", not_null=True),
        _c("free", "decimal"), _c("total", "decimal"), _c("at", "real", not_null=True),
    ),
    indexes=(("venue", "asset", "at"),),
)

EVENTS = Table(
    "events",
    (_ID, _c("kind", "text", not_null=True), _c("message", "text"), _c("fields", "json"),
     _c("at", "real", not_null=True)),
    indexes=(("at",),),
)

TICKS = Table(
    "ticks",
    (
        _ID, _c("venue", "text", not_null=True), _c("symbol", "text", not_null=True), _c("bid", "real"),
        _c("bid_size", "real"), _c("ask", "real"), _c("ask_size", "real"), _c("ts", "real", not_null=True),
    ),
    indexes=(("venue", "symbol", "ts"),),
    time_column="ts",
)

BOOK_SNAPSHOTS = Table(
    "book_snapshots",
    (
        _ID, _c("venue", "text", not_null=True), _c("symbol", "text", not_null=True),
        _c("sequence", "integer"), _c("exchange_ts_ms", "integer"), _c("bids", "json"), _c("asks", "json"),
        _c("ts", "real", not_null=True),
    ),
    indexes=(("venue", "symbol", "ts"),),
    time_column="ts",
)

RECORDINGS = Table(
    "recordings",
    (
        # What a market-data recording in the store needs to be replayed: its venues' markets (rules).
        _c("id", "text", pk=True), _c("source", "text"), _c("venues", "json"), _c("markets", "json"),
        _c("started_at", "real", not_null=True), _c("ended_at", "real"), _c("updates", "integer"),
    ),
    conflict=Conflict(("id",), update=("ended_at", "updates")),
)

# Also the order a batch is written in.
TABLES: dict[str, Table] = {t.name: t for t in (
    OPPORTUNITIES, ORDERS, FILLS, EXECUTIONS, REJECTIONS, BALANCES, EVENTS, TICKS, BOOK_SNAPSHOTS,
    RECORDINGS)}

TIME_SERIES: tuple[str, ...] = tuple(t.name for t in TABLES.values() if t.time_column)


def create_table_sql(table: Table, dialect: Dialect) -> list[str]:
    partitioned = bool(table.time_column) and dialect.partitioning != "none"
    cols = ",\n  ".join(dialect.column_sql(c, partitioned=partitioned) for c in table.columns)
    create = f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {cols}\n)"
    if partitioned and dialect.partitioning == "native":
        create += f" PARTITION BY RANGE ({table.time_column})"
    statements = [create]
    if partitioned and dialect.partitioning == "timescale":
        statements.append(
            f"SELECT create_hypertable('{table.name}', '{table.time_column}', "
            f"chunk_time_interval => INTERVAL '1 day', time_partitioning_func => '{TIMESCALE_TIME_FUNC}', "
            "if_not_exists => TRUE)")
    for index in table.indexes:
        name = f"ix_{table.name}_{'_'.join(index)}"
        statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(index)})")
    return statements


def timescale_setup_sql() -> list[str]:
    return [
        f"CREATE OR REPLACE FUNCTION {TIMESCALE_TIME_FUNC}(double precision) RETURNS timestamptz "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT to_timestamp($1)'",
    ]


def partition_name(table: str, day: int) -> str:
    """The native partition of ``table`` holding day ``day`` (days since the epoch of the store's clock)."""
    return f"{table}_p{day:06d}" if day >= 0 else f"{table}_m{-day:06d}"


def create_partition_sql(table: str, day: int) -> list[str]:
    """Make and attach the day partition. ``CREATE TABLE ... PARTITION OF`` would lock the parent
    against readers; ``ATTACH PARTITION`` only takes a lock that readers and writers never conflict with."""
    name = partition_name(table, day)
    bounds = f"FROM ({day * DAY_S}) TO ({(day + 1) * DAY_S})"
    return [f"CREATE TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds}"]


def insert_sql(table: Table, dialect: Dialect) -> str:
    cols = table.insert_columns
    values = ", ".join(dialect.placeholder(i + 1) for i in range(len(cols)))
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({values})"
    conflict = table.conflict
    if conflict is None:
        return sql
    sql += f" ON CONFLICT ({', '.join(conflict.target)})"
    if not conflict.update:
        return sql + " DO NOTHING"
    sql += " DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in conflict.update)
    if conflict.where:
        sql += f" WHERE {conflict.where}"
    return sql


SCHEMA_VERSION_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
    "applied_at REAL NOT NULL)"
)


def schema_version_sql(dialect: Dialect) -> str:
    # PostgreSQL's REAL is 4 bytes: a Unix time would lose minutes.
    return SCHEMA_VERSION_SQL.replace("REAL", dialect.types["real"])


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Dialect], list[str]]


def _v1(dialect: Dialect) -> list[str]:
    setup = timescale_setup_sql() if dialect.partitioning == "timescale" else []
    return setup + [sql for table in _V1_TABLES for sql in create_table_sql(table, dialect)]


# A released migration never changes: v1 keeps the tables as they were at v1. Later changes are new
# migrations (ALTER TABLE ...) and update TABLES to the result; tests check the two agree.
_V1_TABLES = (OPPORTUNITIES, ORDERS, FILLS, EXECUTIONS, REJECTIONS, BALANCES, EVENTS, TICKS, BOOK_SNAPSHOTS,
              RECORDINGS)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _v1),
)

LATEST_VERSION = MIGRATIONS[-1].version
