"""StoreWriter: batching by size and by time, flush/close, overload and store failures."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cryptoarb.model import (
    Balance,
    Execution,
    Fill,
    Notice,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    Rejection,
    RejectReason,
    Side,
    Ticker,
)
from cryptoarb.storage import Batch, SqliteStore, StoreError, StoreWriter


def opportunity(oid: str, at: float = 1.0) -> Opportunity:
    return Opportunity(id=oid, cycle_id=1, kind="triangular", path=("USDT", "BTC", "ETH", "USDT"), legs=(),
                       input=Decimal("100.00"), output=Decimal("100.0100000001"),
                       profit=Decimal("0.0100000001"), profit_usd=0.01, net_return_bps=1.0, detected_at=at)


def execution(opp: Opportunity, legs: int = 3) -> Execution:
    results = []
    for i in range(legs):
        order = Order(f"{opp.id}-{i}", opp.id, i, "kucoin", "BTC-USDT", Side.BUY, Decimal("60000.1"),
                      Decimal("0.001"), created_at=opp.detected_at)
        fill = Fill(order.client_oid, opp.id, i, "kucoin", "BTC-USDT", Side.BUY, Decimal("60000.1"),
                    Decimal("0.001"), Decimal("0.00000006"), "USDT", opp.detected_at)
        results.append(OrderResult(order, OrderStatus.FILLED, (fill,)))
    return Execution(opp, tuple(results), Decimal("0.01"), 0.01, 0.001, at=opp.detected_at)


def rejection(i: int) -> Rejection:
    return Rejection(i, ("USDT", "BTC", "USDT"), RejectReason.BELOW_MIN_PROFIT, "", 0.1, float(i))


class SpyStore(SqliteStore):
    """A real SqliteStore that reports each batch it wrote and can be told to fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batch_sizes: list[int] = []
        self.wrote = asyncio.Event()
        self.failures_left = 0

    async def write_batch(self, batch: Batch) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("disk on fire")
        await super().write_batch(batch)
        self.batch_sizes.append(len(batch))
        self.wrote.set()

    async def next_write(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.wrote.wait(), timeout)
        self.wrote.clear()


@pytest.fixture
async def store(tmp_path: Path):
    s = SpyStore(tmp_path / "w.sqlite")
    await s.open()
    await s.migrate()
    yield s
    await s.close()


async def test_flushes_by_size(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=10, flush_interval_s=60.0)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        for i in range(25):
            writer.submit(rejection(i))
        await store.next_write()
        if len(store.batch_sizes) < 2:
            await store.next_write()
        # 60 s interval: these two batches can only have been triggered by size.
        assert store.batch_sizes == [10, 10] and writer.queued == 5
        await writer.close()
        await asyncio.wait_for(task, 5)
    assert store.batch_sizes == [10, 10, 5]
    assert await store.count("rejections") == 25
    assert writer.written["rejections"] == 25 and writer.batches == 3


async def test_flushes_by_time(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=1000, flush_interval_s=0.05)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        started = time.monotonic()
        for i in range(3):
            writer.submit(opportunity(f"t{i}"))
        await store.next_write()
        waited = time.monotonic() - started
        assert store.batch_sizes == [3]
        assert 0.04 <= waited < 2.0
        writer.submit(opportunity("t3"))
        await store.next_write()
        assert store.batch_sizes == [3, 1]
        await writer.close()
    assert await store.count("opportunities") == 4
    assert writer.last_flush_latency_s > 0


async def test_flush_waits_for_everything_submitted(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=7, flush_interval_s=60.0)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        for i in range(30):
            writer.submit(opportunity(f"f{i}"))
            writer.submit(rejection(i))
        await writer.flush()
        assert writer.queued == 0
        assert await store.count("opportunities") == 30 and await store.count("rejections") == 30
        await writer.close()


async def test_flush_without_run_task_writes_directly(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=100, flush_interval_s=60.0)
    writer.submit(Notice("risk", "paused", at=1.0, fields={"by": "discord"}))
    writer.submit_balances([Balance("kucoin", "USDT", Decimal("1.5"), Decimal("2"))], at=2.0)
    writer.submit_tick(Ticker("kucoin", "BTC-USDT", 1.0, 2.0, 3.0, 4.0, 5000))
    await writer.close()
    assert {t: await store.count(t) for t in ("events", "balances", "ticks")} == {
        "events": 1, "balances": 1, "ticks": 1}
    with pytest.raises(StoreError):
        writer.submit(opportunity("late"))


async def test_execution_rows_and_replay(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=4, flush_interval_s=60.0)
    opp = opportunity("x")
    writer.submit(opp)
    writer.submit(execution(opp))
    writer.submit(execution(opp))  # a retried publish must not double anything
    await writer.flush()
    assert {t: await store.count(t) for t in ("opportunities", "orders", "fills", "executions")} == {
        "opportunities": 1, "orders": 3, "fills": 3, "executions": 1}
    assert await store.trades_count() == 3
    assert await store.pnl_usd() == pytest.approx(0.01)


async def test_an_execution_is_never_split_across_transactions(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=3, flush_interval_s=60.0)
    writer.submit(rejection(1))
    writer.submit(execution(opportunity("big")))  # 1 + 3 orders + 3 fills + 1 = 8 rows
    writer.submit(rejection(2))
    await writer.flush()
    assert store.batch_sizes == [9, 1]


async def test_overload_drops_rejections_never_trades(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=50, flush_interval_s=60.0, max_queue=40)
    # No run task: nothing drains, the queue overflows.
    for i in range(100):
        opp = opportunity(f"o{i}")
        writer.submit(opp)
        writer.submit(rejection(i))
        writer.submit(rejection(i))
        if i % 10 == 0:
            writer.submit(execution(opp))
        writer.submit_tick(Ticker("kucoin", "BTC-USDT", 1.0, 1.0, 2.0, 1.0, i))
    assert writer.dropped["rejections"] > 0 and writer.dropped["ticks"] > 0
    assert set(writer.dropped) <= {"rejections", "ticks"}
    await writer.close()
    assert await store.count("opportunities") == 100
    assert await store.count("executions") == 10
    assert await store.count("fills") == 30 and await store.count("orders") == 30
    assert await store.count("rejections") == 200 - writer.dropped["rejections"]
    assert await store.count("ticks") == 100 - writer.dropped["ticks"]
    assert writer.written["opportunities"] == 100 + 10  # detections + executed upserts


async def test_store_failures_are_retried_without_loss(store: SpyStore) -> None:
    store.failures_left = 2
    writer = StoreWriter(store, batch_size=5, flush_interval_s=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(retry_max_s=0.02))
        for i in range(12):
            writer.submit(opportunity(f"r{i}"))
        while store.failures_left or writer.queued:
            await store.next_write()
        await writer.close()
    assert writer.errors == 2 and "disk on fire" in writer.last_error
    assert await store.count("opportunities") == 12


async def test_flush_raises_and_keeps_rows_when_store_fails(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=100, flush_interval_s=60.0)
    writer.submit(opportunity("keep"))
    store.failures_left = 1
    with pytest.raises(OSError):
        await writer.flush()
    assert writer.queued == 1
    await writer.flush()
    assert await store.count("opportunities") == 1


async def test_reader_reads_while_writer_writes(store: SpyStore) -> None:
    writer = StoreWriter(store, batch_size=20, flush_interval_s=0.01)
    counts: list[int] = []
    async with SqliteStore(store.path, busy_timeout_ms=50) as reader, asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        for i in range(400):
            writer.submit(opportunity(f"c{i}"))
            if i % 40 == 0:
                counts.append(await reader.count("opportunities"))
        await writer.flush()
        counts.append(await reader.count("opportunities"))
        await writer.close()
    assert counts == sorted(counts) and counts[-1] == 400
