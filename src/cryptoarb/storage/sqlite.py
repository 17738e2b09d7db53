"""``SqliteStore``: the default store, one file in WAL mode.

WAL lets readers (reports, a second process, ``cryptoarb db``) read while the engine writes, and
``synchronous=NORMAL`` syncs only at checkpoints: a crash of the process loses nothing committed,
a power loss may lose the last transactions, which the idempotent inserts make safe to replay.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from cryptoarb.storage.base import Batch, ExecutionRecord, StoreError
from cryptoarb.storage.schema import MIGRATIONS, SCHEMA_VERSION_SQL, SQLITE, TABLES, insert_sql

_INSERT_SQL = {name: insert_sql(table, SQLITE) for name, table in TABLES.items()}


class SqliteStore:
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5_000, read_only: bool = False) -> None:
        """``read_only``: inspect an existing file without changing it (no journal mode switch, no schema
        table created): what ``db stats`` opens."""
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self.read_only = read_only
        self._db: aiosqlite.Connection | None = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.read_only:
            # rw + query_only, not mode=ro: a read-only connection to a WAL database creates its -wal/-shm
            # files and can never remove them; this one changes no data and lets SQLite clean up (see report)
            db = await aiosqlite.connect(self.path.resolve().as_uri() + "?mode=rw", uri=True, isolation_level=None)
            try:
                await db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
                await db.execute("PRAGMA query_only = ON")
            except BaseException:
                await db.close()
                raise
            self._db = db
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"store {self.path} is not open")
        return self._db

    async def schema_version(self) -> int:
        if self.read_only:
            async with self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'") \
                    as cur:
                if await cur.fetchone() is None:
                    return 0  # not a cryptoarb database (yet)
        else:
            await self.db.execute(SCHEMA_VERSION_SQL)
        async with self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        db = self.db
        await db.execute(SCHEMA_VERSION_SQL)
        # IMMEDIATE takes the write lock first, so two processes migrating at once apply each step once.
        await db.execute("BEGIN IMMEDIATE")
        try:
            current = await self.schema_version()
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements(SQLITE):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.description, time.time()))
                current = migration.version
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise
        return current

    async def write_batch(self, batch: Batch) -> None:
        if not len(batch):
            return
        db = self.db
        await db.execute("BEGIN")
        try:
            for table, rows in batch.tables():
                await db.executemany(_INSERT_SQL[table], rows)
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise

    async def count(self, table: str) -> int:
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}")
        return await self._scalar(f"SELECT COUNT(*) FROM {table}")

    async def trades_count(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM fills")

    async def pnl_usd(self, since: float | None = None, mode: str | None = None) -> float:
        sql = "SELECT COALESCE(SUM(realized_profit_usd), 0.0) FROM executions WHERE at >= ?"
        args: tuple[Any, ...] = (float("-inf") if since is None else since,)
        if mode is not None:
            sql, args = sql + " AND mode = ?", (*args, mode)
        return float(await self._scalar(sql, args))

    async def recent_executions(self, n: int) -> list[ExecutionRecord]:
        sql = (
            "SELECT e.opportunity_id, o.kind, o.path, e.realized_profit, e.realized_profit_usd, "
            "e.fees_usd, e.mode, e.at FROM executions e "
            "LEFT JOIN opportunities o ON o.id = e.opportunity_id "
            "ORDER BY e.at DESC, e.opportunity_id DESC LIMIT ?"
        )
        async with self.db.execute(sql, (n,)) as cur:
            rows = await cur.fetchall()
        return [
            ExecutionRecord(
                opportunity_id=r[0], kind=r[1] or "", path=tuple(json.loads(r[2])) if r[2] else (),
                realized_profit=Decimal(r[3]), realized_profit_usd=r[4], fees_usd=r[5], mode=r[6], at=r[7])
            for r in rows
        ]

    async def _scalar(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return row[0] if row else 0


async def _rollback(db: aiosqlite.Connection) -> None:
    # After a cancellation the COMMIT may already have run in aiosqlite's thread; then there is
    # nothing to roll back, and that error must not replace the original one.
    with contextlib.suppress(sqlite3.Error):
        await db.execute("ROLLBACK")
