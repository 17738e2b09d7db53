"""SqliteStore against a real file: schema, migrations, exact round trips, idempotency, WAL readers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from store_factories import batch_of, make_execution, make_opportunity, make_rejection

from cryptoarb.model import Balance, Execution, Notice, OrderResult, OrderStatus, Ticker
from cryptoarb.storage import Batch, SqliteStore, Store, StoreError
from cryptoarb.storage.writer import balance_row, tick_row


def query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()


@pytest.fixture
async def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "db" / "arb.sqlite")
    await s.open()
    await s.migrate()
    yield s
    await s.close()


async def test_satisfies_protocol_and_uses_wal(store: SqliteStore) -> None:
    assert isinstance(store, Store)
    assert query(store.path, "PRAGMA journal_mode")[0][0] == "wal"


async def test_execution_without_prior_opportunity_is_still_recorded(store: SqliteStore) -> None:
    await store.write_batch(batch_of(make_execution(make_opportunity("lonely"))))
    assert query(store.path, "SELECT id, status FROM opportunities")[0][:] == ("lonely", "executed")


async def test_rejection_notice_balance_tick_round_trip(store: SqliteStore) -> None:
    rej = make_rejection()
    notice = Notice(kind="venue", message="kucoin reconnected", at=5.5, fields={"shard": "2"})
    batch = batch_of(rej, notice)
    batch.add("balances", balance_row(Balance("kucoin", "BTC", Decimal("0.15000000"), Decimal("0.2")), 6.0))
    batch.add("ticks", tick_row(Ticker("kucoin", "BTC-USDT", 60000.5, 0.25, 60001.0, 1.5, 1_700_000_000_123)))
    await store.write_batch(batch)
    (r,) = query(store.path, "SELECT * FROM rejections")
    assert (r["cycle_id"], tuple(json.loads(r["path"])), r["reason"], r["detail"], r["net_return_bps"],
            r["at"]) == (3, rej.path, "below_min_profit", rej.detail, 0.2, 99.0)
    (e,) = query(store.path, "SELECT * FROM events")
    assert (e["kind"], e["message"], json.loads(e["fields"]), e["at"]) == ("venue", notice.message,
                                                                           {"shard": "2"}, 5.5)
    (b,) = query(store.path, "SELECT * FROM balances")
    assert (b["venue"], b["asset"], b["free"], b["total"], b["at"]) == (
        "kucoin", "BTC", "0.15000000", "0.2", 6.0)
    (t,) = query(store.path, "SELECT * FROM ticks")
    assert (t["bid"], t["bid_size"], t["ask"], t["ask_size"], t["ts"]) == (60000.5, 0.25, 60001.0, 1.5,
                                                                           1_700_000_000.123)


async def test_replayed_batches_never_duplicate(store: SqliteStore) -> None:
    opp = make_opportunity()
    ex = make_execution(opp)
    await store.write_batch(batch_of(opp, ex))
    await store.write_batch(batch_of(opp, ex))
    await store.write_batch(batch_of(opp))  # a late replay of the detection must not undo 'executed'
    assert {t: await store.count(t) for t in ("opportunities", "orders", "fills", "executions")} == {
        "opportunities": 1, "orders": 3, "fills": 4, "executions": 1}
    assert query(store.path, "SELECT status FROM opportunities")[0][0] == "executed"


async def test_order_status_is_upserted(store: SqliteStore) -> None:
    opp = make_opportunity()
    ex = make_execution(opp)
    first = ex.results[0]
    pending = OrderResult(order=first.order, status=OrderStatus.NEW)
    await store.write_batch(batch_of(Execution(opp, (pending,), Decimal(0), 0.0, 0.0, at=1.0)))
    await store.write_batch(batch_of(ex))
    rows = query(store.path, "SELECT status FROM orders WHERE client_oid = ?", (first.order.client_oid,))
    assert [r[0] for r in rows] == ["filled"]


async def test_unknown_table_in_batch_is_refused() -> None:
    with pytest.raises(StoreError):
        Batch().add("nope", ())


async def test_reader_does_not_block_writer(store: SqliteStore, tmp_path: Path) -> None:
    # A short busy timeout: if the open read transaction blocked the writer, the write would fail.
    async with SqliteStore(store.path, busy_timeout_ms=50) as reader:
        await store.write_batch(batch_of(make_opportunity("first")))
        await reader.db.execute("BEGIN")
        assert await reader.count("opportunities") == 1  # the snapshot is taken here
        writer = SqliteStore(store.path, busy_timeout_ms=50)
        await writer.open()
        try:
            await writer.write_batch(batch_of(*(make_opportunity(f"o{i}") for i in range(50))))
        finally:
            await writer.close()
        assert await reader.count("opportunities") == 1  # still its snapshot, never a partial batch
        await reader.db.execute("COMMIT")
        assert await reader.count("opportunities") == 51


async def test_reads_interleave_with_writes(store: SqliteStore) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def write() -> None:
        for b in range(20):
            await store.write_batch(batch_of(*(make_opportunity(f"{b}-{i}") for i in range(25))))
        done.set()

    async def read(reader: SqliteStore) -> None:
        while not done.is_set():
            seen.append(await reader.count("opportunities"))
        seen.append(await reader.count("opportunities"))

    async with SqliteStore(store.path, busy_timeout_ms=50) as reader:
        await asyncio.gather(write(), read(reader))
    assert seen == sorted(seen) and seen[-1] == 500
    assert all(n % 25 == 0 for n in seen)  # whole batches only: one transaction each
