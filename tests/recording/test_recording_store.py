"""Recording into the store: top of book per update into ticks, optional full snapshots, the recording's
own row; the same assertions on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cryptoarb.config import Settings
from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate
from cryptoarb.recording import StoreSink, record
from cryptoarb.storage import PostgresStore, SqliteStore, StoreWriter
from cryptoarb.storage.postgres import pg_unavailable
from cryptoarb.venues.sim.venue import SimVenue

PG_DSN = os.environ.get("CRYPTOARB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        s: Any = SqliteStore(tmp_path / "rec.sqlite")
    else:
        if reason := await pg_unavailable(PG_DSN):
            pytest.skip(reason)
        s = PostgresStore(PG_DSN, schema=f"rec{os.getpid()}_{uuid.uuid4().hex[:8]}")
    await s.open()
    await s.migrate()
    try:
        yield s
    finally:
        if isinstance(s, PostgresStore):
            await s.drop_schema()
        await s.close()


async def rows(store: Any, sql: str) -> list[tuple[Any, ...]]:
    if isinstance(store, PostgresStore):
        return await store.fetch(sql)
    async with store.db.execute(sql) as cur:
        return [tuple(r) for r in await cur.fetchall()]


@pytest.mark.parametrize("snapshots", [False, True])
async def test_ticks_and_snapshots_land_in_the_store(store: Any, snapshots: bool) -> None:
    venue = SimVenue(Settings(sim={"pairs": 40, "assets": 20, "hot_pairs": 8, "seed": 5}).sim, speed=0)
    writer = StoreWriter(store, batch_size=500, flush_interval_s=0.05)
    seen: list[BookUpdate] = []
    sink = StoreSink(writer, "rec-test", snapshots=snapshots)
    stats = await record(venue, sink, max_batches=40, source="sim seed 5",
                         on_batch=lambda _clock, batch: seen.extend(batch))
    await writer.close()
    books = BookStore()
    expected = []
    for u in seen:
        book = books.apply(u)
        (bid, bid_size), (ask, ask_size) = book.bids[0], book.asks[0]
        expected.append((u.venue, u.symbol, bid, bid_size, ask, ask_size, u.received_at))
    got = await rows(store, "SELECT venue, symbol, bid, bid_size, ask, ask_size, ts FROM ticks ORDER BY id")
    assert got == expected and stats.dropped == 0
    n_snapshots = await store.count("book_snapshots")
    assert n_snapshots == (sum(1 for u in seen if u.snapshot) if snapshots else 0)
    ((rid, source, venues, markets, started, ended, updates),) = await rows(
        store, "SELECT id, source, venues, markets, started_at, ended_at, updates FROM recordings")
    assert (rid, source, json.loads(venues), started, ended, updates) == (
        "rec-test", "sim seed 5", ["kucoin"], stats.first_clock, stats.last_clock, len(seen))
    assert len(json.loads(markets)["kucoin"]) == len(await venue.load_markets())


async def test_overload_samples_ticks_and_counts_what_it_dropped(store: Any) -> None:
    venue = SimVenue(Settings(sim={"pairs": 40, "assets": 20, "hot_pairs": 8, "seed": 5}).sim, speed=0)
    # No writer task runs while recording: the queue only grows, so the bound must shed ticks.
    writer = StoreWriter(store, batch_size=100, flush_interval_s=60.0, max_queue=50)
    stats = await record(venue, StoreSink(writer, "rec-overload"), max_batches=20)
    await writer.close()
    assert stats.dropped > 0 and writer.dropped["ticks"] == stats.dropped
    assert await store.count("ticks") + stats.dropped == stats.updates
    assert await store.count("recordings") == 1  # never sampled
