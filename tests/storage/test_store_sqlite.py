"""SqliteStore against a real file: schema, migrations, exact round trips, idempotency, WAL readers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_factories import batch_of, make_execution, make_opportunity, make_rejection

from cryptoarb.model import Balance, Execution, Notice, OrderResult, OrderStatus, Side, Ticker
from cryptoarb.storage import Batch, SqliteStore, Store, StoreError
from cryptoarb.storage.schema import LATEST_VERSION, TABLES
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


async def test_migrations_are_idempotent_and_match_schema(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    async with SqliteStore(path) as s:
        assert await s.schema_version() == 0
        assert await s.migrate() == LATEST_VERSION
        assert await s.migrate() == LATEST_VERSION
    async with SqliteStore(path) as s:
        assert await s.migrate() == LATEST_VERSION
    assert [r["version"] for r in query(path, "SELECT version FROM schema_version")] == [LATEST_VERSION]
    for name, table in TABLES.items():
        columns = [r["name"] for r in query(path, f"PRAGMA table_info({name})")]
        assert columns == [c.name for c in table.columns], name


async def test_concurrent_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    stores = [SqliteStore(path) for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        versions = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert versions == [LATEST_VERSION] * 3
    assert len(query(path, "SELECT * FROM schema_version")) == 1


async def test_opportunity_round_trip_is_exact(store: SqliteStore) -> None:
    opp = make_opportunity()
    await store.write_batch(batch_of(opp))
    (row,) = query(store.path, "SELECT * FROM opportunities")
    assert row["id"] == opp.id and row["cycle_id"] == 7 and row["kind"] == "triangular"
    assert tuple(json.loads(row["path"])) == opp.path
    for name in ("input", "output", "profit"):
        assert row[name] == str(getattr(opp, name))  # trailing zeros and all digits kept
        assert Decimal(row[name]) == getattr(opp, name)
    assert row["profit_usd"] == opp.profit_usd and row["net_return_bps"] == opp.net_return_bps
    assert row["detected_at"] == opp.detected_at and row["status"] == "detected"
    legs = json.loads(row["legs"])
    assert len(legs) == 3
    for stored, leg in zip(legs, opp.legs, strict=True):
        assert Side(stored["side"]) is leg.side
        for name in ("limit_price", "size", "amount_in", "amount_out", "fee"):
            assert stored[name] == str(getattr(leg, name))
        assert stored["book_age_ms"] == leg.book_age_ms


async def test_execution_round_trip_is_exact(store: SqliteStore) -> None:
    opp = make_opportunity()
    ex = make_execution(opp)
    await store.write_batch(batch_of(opp, ex))
    assert query(store.path, "SELECT status FROM opportunities")[0][0] == "executed"
    orders = query(store.path, "SELECT * FROM orders ORDER BY leg_index")
    assert [o["client_oid"] for o in orders] == [r.order.client_oid for r in ex.results]
    for stored, result in zip(orders, ex.results, strict=True):
        assert stored["price"] == str(result.order.price) and stored["size"] == str(result.order.size)
        assert (stored["side"], stored["status"]) == (result.order.side.value, "filled")
        assert (stored["type"], stored["time_in_force"]) == ("limit", "IOC")
    fills = query(store.path, "SELECT * FROM fills ORDER BY id")
    expected = [f for r in ex.results for f in r.fills]
    assert len(fills) == len(expected) == 4
    assert [f["id"] for f in fills] == ["opp-1-L0:0", "opp-1-L0:1", "opp-1-L1:0", "opp-1-L2:0"]
    for stored, fill in zip(fills, expected, strict=True):
        for name in ("price", "size", "fee"):
            assert stored[name] == str(getattr(fill, name))
        assert stored["fee_asset"] == fill.fee_asset and stored["at"] == fill.at
    assert sum(Decimal(f["size"]) for f in fills if f["leg_index"] == 0) == Decimal("1.2340000")
    (row,) = query(store.path, "SELECT * FROM executions")
    assert Decimal(row["realized_profit"]) == ex.realized_profit
    assert row["realized_profit"] == "0.1200000001"
    assert (row["realized_profit_usd"], row["fees_usd"], row["mode"], row["at"]) == (
        0.1, 0.03, "paper", 101.0)


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


async def test_read_methods(store: SqliteStore) -> None:
    older, newer = make_opportunity("a", at=10.0), make_opportunity("b", at=20.0)
    partial = make_execution(newer, at=21.0, profit_usd=-0.5)
    partial = Execution(partial.opportunity,
                        (partial.results[0],
                         OrderResult(partial.results[1].order, OrderStatus.PARTIAL, partial.results[1].fills),
                         OrderResult(partial.results[2].order, OrderStatus.REJECTED, reason="min size")),
                        Decimal("-0.5"), -0.5, 0.01, at=21.0)
    await store.write_batch(batch_of(older, newer, make_execution(older, at=11.0, profit_usd=1.25), partial,
                                     make_rejection(), make_rejection()))
    assert await store.count("rejections") == 2
    assert await store.trades_count() == 4 + 3  # one per fill: 'a' has 4, 'b' 2 + 1 (its third leg failed)
    assert await store.pnl_usd() == pytest.approx(0.75)
    assert await store.pnl_usd(since=15.0) == pytest.approx(-0.5)
    assert await store.pnl_usd(since=100.0) == 0.0
    recent = await store.recent_executions(5)
    assert [r.opportunity_id for r in recent] == ["b", "a"]
    assert recent[0].realized_profit == Decimal("-0.5") and recent[0].path == ("USDT", "BTC", "ETH", "USDT")
    assert recent[1].kind == "triangular" and recent[1].realized_profit_usd == 1.25
    assert [r.opportunity_id for r in await store.recent_executions(1)] == ["b"]
    with pytest.raises(StoreError):
        await store.count("sqlite_master; DROP TABLE fills")


async def test_unknown_table_in_batch_is_refused() -> None:
    with pytest.raises(StoreError):
        Batch().add("nope", ())


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "x.sqlite")
    with pytest.raises(StoreError):
        await s.count("fills")


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


decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"),
                       max_value=Decimal("1e12"), places=None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=decimals)
def test_any_decimal_survives_exactly(tmp_path: Path, value: Decimal) -> None:
    async def round_trip() -> str:
        async with SqliteStore(tmp_path / "h.sqlite") as s:
            await s.migrate()
            oid = f"h-{value!s}"
            await s.write_batch(batch_of(make_opportunity(oid, input_=value)))
            async with s.db.execute("SELECT input FROM opportunities WHERE id = ?", (oid,)) as cur:
                row = await cur.fetchone()
            assert row is not None
            return row[0]

    stored = asyncio.run(round_trip())
    assert stored == str(value) and Decimal(stored) == value
