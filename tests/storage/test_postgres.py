"""PostgreSQL specifics against the real server: day partitions, COPY writes, schema isolation, DSNs.

The behaviour shared with SQLite is in ``test_store_contract.py``; this file covers what only
PostgreSQL has. Skipped (with the reason) only when no server answers at ``CRYPTOARB_TEST_PG_DSN``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cryptoarb.config import Settings, StorageSettings
from cryptoarb.storage import Batch, PostgresStore, SqliteStore, StoreError, create_store, resolve_dsn
from cryptoarb.storage.postgres import mask_dsn, pg_unavailable
from cryptoarb.storage.schema import (
    DAY_S,
    MIGRATIONS,
    POSTGRES,
    POSTGRES_TIMESCALE,
    TICKS,
    create_table_sql,
    partition_name,
)

PG_DSN = os.environ.get("CRYPTOARB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = f"t{os.getpid()}_{uuid.uuid4().hex[:6]}"


def tick(ts: float, symbol: str = "BTC-USDT") -> tuple:
    return ("kucoin", symbol, 100.0, 1.0, 100.5, 2.0, ts)


def new_schema() -> str:
    return f"{RUN_ID}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    if reason := await pg_unavailable(PG_DSN):
        pytest.skip(reason)
    s = PostgresStore(PG_DSN, schema=new_schema())
    await s.open()
    await s.migrate()
    try:
        yield s
    finally:
        await s.drop_schema()
        await s.close()


async def test_time_series_are_partitioned_by_day(store: PostgresStore) -> None:
    if store.timescale:
        pytest.skip("TimescaleDB is installed: chunks replace native partitions")
    kind = await store.pool.fetchval(
        "SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass('ticks')")
    assert kind == "p"  # a partitioned table
    day = 19_700
    batch = Batch()
    start = day * DAY_S
    for ts in (start, start + 1.5, start + DAY_S - 0.001, start + DAY_S, start + 3 * DAY_S + 7):
        batch.add("ticks", tick(ts))
    await store.write_batch(batch)
    await store.write_batch(batch)  # the same days again: no new partitions, rows appended
    assert await store.partitions("ticks") == [partition_name("ticks", d) for d in (day, day + 1, day + 3)]
    per_partition = {name: await store.pool.fetchval(f"SELECT COUNT(*) FROM {name}")
                     for name in await store.partitions("ticks")}
    assert per_partition == {partition_name("ticks", day): 6, partition_name("ticks", day + 1): 2,
                             partition_name("ticks", day + 3): 2}
    assert await store.count("ticks") == 10


async def test_two_writers_creating_the_same_partition(store: PostgresStore) -> None:
    other = PostgresStore(PG_DSN, schema=store.schema)
    await other.open()
    try:
        batches = []
        for w in range(2):
            b = Batch()
            for i in range(100):
                b.add("ticks", tick(5 * DAY_S + i + w / 2))
                b.add("book_snapshots", ("kucoin", "BTC-USDT", i, i, "[]", "[]", 5 * DAY_S + i))
            batches.append(b)
        await asyncio.gather(store.write_batch(batches[0]), other.write_batch(batches[1]))
    finally:
        await other.close()
    assert await store.count("ticks") == 200 and await store.count("book_snapshots") == 200
    assert await store.partitions("book_snapshots") == [partition_name("book_snapshots", 5)]


async def test_a_fresh_store_knows_existing_partitions(store: PostgresStore) -> None:
    b = Batch()
    b.add("ticks", tick(3 * DAY_S))
    await store.write_batch(b)
    async with PostgresStore(PG_DSN, schema=store.schema) as again:
        await again.write_batch(b)
        assert await again.count("ticks") == 2


async def test_schemas_isolate_deployments(store: PostgresStore) -> None:
    async with PostgresStore(PG_DSN, schema=new_schema()) as neighbour:
        try:
            await neighbour.migrate()
            b = Batch()
            b.add("ticks", tick(1.0))
            await neighbour.write_batch(b)
            assert await neighbour.count("ticks") == 1
            assert await store.count("ticks") == 0
        finally:
            await neighbour.drop_schema()


async def test_copy_keeps_floats_and_large_batches(store: PostgresStore) -> None:
    b = Batch()
    values = [i * 0.1 + 1e-9 for i in range(20_000)]
    for i, v in enumerate(values):
        b.add("ticks", ("kucoin", f"S{i % 7}", v, v / 3, v * 1.0001, 0.3, 10.0 + i * 0.001))
    await store.write_batch(b)
    rows = await store.fetch("SELECT bid, bid_size FROM ticks ORDER BY ts")
    assert [r[0] for r in rows] == values and [r[1] for r in rows] == [v / 3 for v in values]


def test_timescale_migration_makes_hypertables_with_one_day_chunks() -> None:
    sql = "\n".join(s for m in MIGRATIONS for s in m.statements(POSTGRES_TIMESCALE))
    assert "create_hypertable('ticks', 'ts', chunk_time_interval => INTERVAL '1 day'" in sql
    assert "create_hypertable('book_snapshots', 'ts'" in sql
    assert "CREATE OR REPLACE FUNCTION cryptoarb_epoch_s_to_timestamptz" in sql
    assert "PARTITION BY" not in sql
    assert "PARTITION BY RANGE (ts)" in create_table_sql(TICKS, POSTGRES)[0]


async def test_timescale_hypertables_on_a_server_that_has_it(store: PostgresStore) -> None:
    if not store.timescale:
        pytest.skip("TimescaleDB is not installed on this server (the native partitioning path ran)")
    interval = await store.pool.fetchval(
        "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'ticks' "
        "AND hypertable_schema = $1", store.schema)
    assert str(interval) == "1 day, 0:00:00"
    b = Batch()
    for ts in (0.5, DAY_S + 0.5, 2 * DAY_S + 0.5):
        b.add("ticks", tick(ts))
    await store.write_batch(b)
    assert len(await store.partitions("ticks")) == 3


async def test_connection_errors_are_store_errors_without_password() -> None:
    dsn = "postgresql://cryptoarb:hunter2@127.0.0.1:1/nope"
    with pytest.raises(StoreError) as caught:
        await PostgresStore(dsn).open()
    assert "hunter2" not in str(caught.value) and "********" in str(caught.value)
    assert mask_dsn(dsn) == "postgresql://cryptoarb:********@127.0.0.1:1/nope"
    with pytest.raises(StoreError):
        PostgresStore(PG_DSN, schema="Robert'); DROP TABLE fills;--")


def test_dsn_resolution_and_backend_choice(tmp_path: Path) -> None:
    settings = Settings()
    assert resolve_dsn(settings, environ={}) is None
    assert resolve_dsn(settings, environ={"CRYPTOARB_DB_DSN": "postgresql://env"}) == "postgresql://env"
    assert resolve_dsn(settings, "postgresql://flag", environ={"CRYPTOARB_DB_DSN": "x"}) == "postgresql://flag"
    from_secret = Settings(secrets={"db_dsn": "postgresql://secret"})
    assert resolve_dsn(from_secret, environ={}) == "postgresql://secret"
    assert isinstance(create_store(StorageSettings(), tmp_path / "a.sqlite"), SqliteStore)
    assert isinstance(create_store(StorageSettings(), tmp_path / "a.sqlite", dsn=PG_DSN), PostgresStore)


async def test_busy_readers_never_hold_up_the_writer(store: PostgresStore) -> None:
    readers = [await store.pool.acquire() for _ in range(store.pool.get_max_size())]
    try:
        for conn in readers:  # every read connection busy in an open snapshot
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            assert await conn.fetchval("SELECT COUNT(*) FROM ticks") == 0
        b = Batch()
        b.add("ticks", tick(DAY_S * 9 + 1))
        await asyncio.wait_for(store.write_batch(b), 10)
        assert await readers[0].fetchval("SELECT COUNT(*) FROM ticks") == 0  # still its snapshot
    finally:
        for conn in readers:
            await conn.execute("ROLLBACK")
            await store.pool.release(conn)
    assert await store.count("ticks") == 1
