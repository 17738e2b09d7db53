"""The ``Store`` contract: the same assertions against SQLite (a file) and PostgreSQL (the real server).

PostgreSQL runs at ``CRYPTOARB_TEST_PG_DSN`` (default: the local server's ``test`` database); each test
gets its own schema, dropped afterwards. Only a missing server skips the PostgreSQL half, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_factories import batch_of, make_execution, make_opportunity, make_order, make_rejection
from typer.testing import CliRunner

from cryptoarb.model import Balance, BookUpdate, Execution, Notice, OrderResult, OrderStatus, Side, Ticker
from cryptoarb.storage import Batch, PostgresStore, SqliteStore, Store, StoreError, StoreWriter
from cryptoarb.storage.cli import db_app
from cryptoarb.storage.postgres import pg_unavailable
from cryptoarb.storage.schema import LATEST_VERSION, TABLES
from cryptoarb.storage.writer import balance_row, book_snapshot_row, tick_row

PG_DSN = os.environ.get("CRYPTOARB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = f"t{os.getpid()}_{uuid.uuid4().hex[:6]}"


@dataclass
class Backend:
    """One store under test plus the backend-specific ways the assertions look inside it."""

    name: str
    store: Any
    new_store: Callable[..., Any]
    rows: Callable[[str], Awaitable[list[dict[str, Any]]]]
    columns: Callable[[str], Awaitable[list[str]]]
    snapshot: Callable[[], contextlib.AbstractAsyncContextManager[Callable[[str], Awaitable[int]]]]


def sqlite_backend(path: Path) -> Backend:
    def new_store(**kw: Any) -> SqliteStore:
        return SqliteStore(path, **kw)

    async def rows(sql: str) -> list[dict[str, Any]]:
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql).fetchall()]

    async def columns(table: str) -> list[str]:
        return [r["name"] for r in await rows(f"PRAGMA table_info({table})")]

    @contextlib.asynccontextmanager
    async def snapshot() -> AsyncIterator[Callable[[str], Awaitable[int]]]:
        async with SqliteStore(path, busy_timeout_ms=50) as reader:
            await reader.db.execute("BEGIN")
            try:
                yield reader.count
            finally:
                await reader.db.execute("COMMIT")

    return Backend("sqlite", new_store(), new_store, rows, columns, snapshot)


def postgres_backend(schema: str) -> Backend:
    def new_store(**kw: Any) -> PostgresStore:
        return PostgresStore(PG_DSN, schema=schema, **kw)

    store = new_store()

    async def rows(sql: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await store.pool.fetch(sql)]

    async def columns(table: str) -> list[str]:
        found = await store.pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
            "ORDER BY ordinal_position", schema, table)
        return [r[0] for r in found]

    @contextlib.asynccontextmanager
    async def snapshot() -> AsyncIterator[Callable[[str], Awaitable[int]]]:
        async with store.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            async def count(table: str) -> int:
                return int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}"))
            yield count

    return Backend("postgres", store, new_store, rows, columns, snapshot)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        b = sqlite_backend(tmp_path / "contract.sqlite")
    else:
        if reason := await pg_unavailable(PG_DSN):
            pytest.skip(reason)
        b = postgres_backend(f"{RUN_ID}_{uuid.uuid4().hex[:8]}")
    await b.store.open()
    await b.store.migrate()
    try:
        yield b
    finally:
        if isinstance(b.store, PostgresStore):
            await b.store.drop_schema()
        await b.store.close()


async def test_satisfies_protocol(backend: Backend) -> None:
    assert isinstance(backend.store, Store)


async def test_migrations_are_idempotent_and_match_schema(backend: Backend) -> None:
    assert await backend.store.schema_version() == LATEST_VERSION
    assert await backend.store.migrate() == LATEST_VERSION
    async with backend.new_store() as again:
        assert await again.migrate() == LATEST_VERSION
    versions = [r["version"] for r in await backend.rows("SELECT version FROM schema_version")]
    assert versions == [m for m in range(1, LATEST_VERSION + 1)]
    for name, table in TABLES.items():
        assert await backend.columns(name) == [c.name for c in table.columns], name


async def test_concurrent_migrations_apply_once(backend: Backend) -> None:
    stores = [backend.new_store() for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        assert await asyncio.gather(*(s.migrate() for s in stores)) == [LATEST_VERSION] * 3
    finally:
        for s in stores:
            await s.close()
    assert len(await backend.rows("SELECT * FROM schema_version")) == LATEST_VERSION


async def test_opportunity_round_trip_is_exact(backend: Backend) -> None:
    opp = make_opportunity()
    await backend.store.write_batch(batch_of(opp))
    (row,) = await backend.rows("SELECT * FROM opportunities")
    assert (row["id"], row["cycle_id"], row["kind"], row["status"]) == (opp.id, 7, "triangular", "detected")
    assert tuple(json.loads(row["path"])) == opp.path
    for name in ("input", "output", "profit"):
        assert row[name] == str(getattr(opp, name))
    assert (row["profit_usd"], row["net_return_bps"], row["detected_at"]) == (
        opp.profit_usd, opp.net_return_bps, opp.detected_at)
    for stored, leg in zip(json.loads(row["legs"]), opp.legs, strict=True):
        assert Side(stored["side"]) is leg.side and stored["book_age_ms"] == leg.book_age_ms
        for name in ("limit_price", "size", "amount_in", "amount_out", "fee"):
            assert stored[name] == str(getattr(leg, name))


async def test_execution_round_trip_is_exact(backend: Backend) -> None:
    opp = make_opportunity()
    ex = make_execution(opp)
    await backend.store.write_batch(batch_of(opp, ex))
    assert [r["status"] for r in await backend.rows("SELECT status FROM opportunities")] == ["executed"]
    orders = await backend.rows("SELECT * FROM orders ORDER BY leg_index")
    assert [o["client_oid"] for o in orders] == [r.order.client_oid for r in ex.results]
    for stored, result in zip(orders, ex.results, strict=True):
        assert (stored["price"], stored["size"]) == (str(result.order.price), str(result.order.size))
        assert (stored["side"], stored["status"], stored["type"], stored["time_in_force"]) == (
            result.order.side.value, "filled", "limit", "IOC")
    fills = await backend.rows("SELECT * FROM fills ORDER BY id")
    expected = [f for r in ex.results for f in r.fills]
    assert [f["id"] for f in fills] == ["opp-1-L0:0", "opp-1-L0:1", "opp-1-L1:0", "opp-1-L2:0"]
    for stored, fill in zip(fills, expected, strict=True):
        assert (stored["price"], stored["size"], stored["fee"]) == (str(fill.price), str(fill.size),
                                                                     str(fill.fee))
        assert (stored["fee_asset"], stored["at"]) == (fill.fee_asset, fill.at)
    (row,) = await backend.rows("SELECT * FROM executions")
    assert (row["realized_profit"], row["realized_profit_usd"], row["fees_usd"], row["mode"], row["at"]) == (
        "0.1200000001", 0.1, 0.03, "paper", 101.0)


async def test_other_tables_round_trip(backend: Backend) -> None:
    notice = Notice(kind="venue", message="kucoin reconnected", at=5.5, fields={"shard": "2"})
    batch = batch_of(make_rejection(), notice)
    batch.add("balances", balance_row(Balance("kucoin", "BTC", Decimal("0.15000000"), Decimal("0.2")), 6.0))
    batch.add("ticks", tick_row(Ticker("kucoin", "BTC-USDT", 60000.5, 0.25, 60001.0, 1.5, 1_700_000_000_123)))
    book = BookUpdate("kucoin", "BTC-USDT", ((60000.5, 0.25), (60000.0, 1.0)), ((60001.0, 1.5),), 42,
                      1_700_000_000_123, 1_700_000_000.125)
    batch.add("book_snapshots", book_snapshot_row(book))
    await backend.store.write_batch(batch)
    (r,) = await backend.rows("SELECT * FROM rejections")
    assert (r["cycle_id"], json.loads(r["path"]), r["reason"], r["detail"], r["net_return_bps"], r["at"]) == (
        3, ["USDT", "KCS", "BTC", "USDT"], "below_min_profit", "0.2 bps < 5", 0.2, 99.0)
    (e,) = await backend.rows("SELECT * FROM events")
    assert (e["kind"], e["message"], json.loads(e["fields"]), e["at"]) == (
        "venue", notice.message, {"shard": "2"}, 5.5)
    (b,) = await backend.rows("SELECT * FROM balances")
    assert (b["venue"], b["asset"], b["free"], b["total"], b["at"]) == (
        "kucoin", "BTC", "0.15000000", "0.2", 6.0)
    (t,) = await backend.rows("SELECT * FROM ticks")
    assert (t["bid"], t["bid_size"], t["ask"], t["ask_size"], t["ts"]) == (
        60000.5, 0.25, 60001.0, 1.5, 1_700_000_000.123)
    (s,) = await backend.rows("SELECT * FROM book_snapshots")
    assert (s["sequence"], s["exchange_ts_ms"], s["ts"]) == (42, 1_700_000_000_123, 1_700_000_000.125)
    assert json.loads(s["bids"]) == [[60000.5, 0.25], [60000.0, 1.0]]
    assert json.loads(s["asks"]) == [[60001.0, 1.5]]


async def test_replayed_batches_never_duplicate_and_status_only_moves_forward(backend: Backend) -> None:
    opp = make_opportunity()
    ex = make_execution(opp)
    await backend.store.write_batch(batch_of(opp, ex))
    await backend.store.write_batch(batch_of(opp, ex))
    await backend.store.write_batch(batch_of(opp))
    counts = {t: await backend.store.count(t) for t in ("opportunities", "orders", "fills", "executions")}
    assert counts == {"opportunities": 1, "orders": 3, "fills": 4, "executions": 1}
    assert [r["status"] for r in await backend.rows("SELECT status FROM opportunities")] == ["executed"]


async def test_a_late_intent_never_undoes_an_order_status(backend: Backend) -> None:
    opp = make_opportunity()
    ex = make_execution(opp)
    writer = StoreWriter(backend.store, batch_size=100, flush_interval_s=60.0)
    await writer.write_intent(ex.results[0].order)
    assert [r["status"] for r in await backend.rows("SELECT status FROM orders")] == ["new"]
    writer.submit(ex)
    await writer.flush()
    await writer.write_intent(ex.results[0].order)  # a crashed executor re-declaring its intent
    rows = await backend.rows("SELECT client_oid, status FROM orders ORDER BY client_oid")
    assert [(r["client_oid"], r["status"]) for r in rows] == [
        ("opp-1-L0", "filled"), ("opp-1-L1", "filled"), ("opp-1-L2", "filled")]
    await writer.close()


async def test_write_intent_is_committed_when_it_returns(backend: Backend) -> None:
    opp = make_opportunity()
    orders = [make_order(opp, i, 1.0) for i in range(3)]
    writer = StoreWriter(backend.store, batch_size=1000, flush_interval_s=60.0)
    writer.submit(make_rejection())  # queued, not an intent: intents do not wait for the queue
    await asyncio.gather(*(writer.write_intent(o) for o in orders))
    # Another connection sees them: committed, not just queued.
    async with backend.new_store() as other:
        assert await other.count("orders") == 3
    assert writer.intents_written == 3 and writer.queued == 1
    await writer.close()
    assert await backend.store.count("rejections") == 1


async def test_concurrent_intents_share_transactions_and_failure(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    store = backend.store
    real_write = store.write_batch
    sizes: list[int] = []

    async def counting(batch: Batch) -> None:
        sizes.append(len(batch))
        await real_write(batch)

    monkeypatch.setattr(store, "write_batch", counting)
    writer = StoreWriter(store, batch_size=100, flush_interval_s=60.0)
    opps = [make_opportunity(f"o{i}") for i in range(5)]
    await asyncio.gather(*(writer.write_intent(*(make_order(o, i, 1.0) for i in range(3))) for o in opps))
    assert sum(sizes) == 15 and len(sizes) < 5  # the ones that waited went in together
    assert await store.count("orders") == 15

    async def failing(batch: Batch) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(store, "write_batch", failing)
    late = [make_opportunity(f"late{i}") for i in range(3)]
    results = await asyncio.gather(*(writer.write_intent(make_order(o, 0, 2.0)) for o in late),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)  # nobody may send an order whose intent failed
    monkeypatch.setattr(store, "write_batch", real_write)
    assert await store.count("orders") == 15
    await writer.close()


async def test_read_methods(backend: Backend) -> None:
    older, newer = make_opportunity("a", at=10.0), make_opportunity("b", at=20.0)
    partial = make_execution(newer, at=21.0)
    partial = Execution(partial.opportunity,
                        (partial.results[0],
                         OrderResult(partial.results[1].order, OrderStatus.PARTIAL, partial.results[1].fills),
                         OrderResult(partial.results[2].order, OrderStatus.REJECTED, reason="min size")),
                        Decimal("-0.5"), -0.5, 0.01, at=21.0)
    await backend.store.write_batch(batch_of(older, newer, make_execution(older, at=11.0, profit_usd=1.25),
                                             partial, make_rejection(), make_rejection()))
    store = backend.store
    assert await store.count("rejections") == 2
    assert await store.trades_count() == 4 + 3
    assert await store.pnl_usd() == pytest.approx(0.75)
    assert await store.pnl_usd(since=15.0) == pytest.approx(-0.5)
    assert await store.pnl_usd(since=100.0) == 0.0
    assert await store.pnl_usd(mode="paper") == pytest.approx(0.75) and await store.pnl_usd(mode="live") == 0.0
    assert await store.pnl_usd(since=15.0, mode="paper") == pytest.approx(-0.5)
    recent = await store.recent_executions(5)
    assert [r.opportunity_id for r in recent] == ["b", "a"]
    assert recent[0].realized_profit == Decimal("-0.5") and recent[0].path == ("USDT", "BTC", "ETH", "USDT")
    assert recent[1].kind == "triangular" and recent[1].realized_profit_usd == 1.25
    assert [r.opportunity_id for r in await store.recent_executions(1)] == ["b"]
    with pytest.raises(StoreError):
        await store.count("fills; DROP TABLE fills")


async def test_a_failing_batch_writes_nothing(backend: Backend) -> None:
    batch = batch_of(make_opportunity("ok"), make_execution(make_opportunity("ok")))
    batch.add("events", ("kind", "message", "{}", None))  # at is NOT NULL
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own integrity error
        await backend.store.write_batch(batch)
    for table in ("opportunities", "orders", "fills", "executions", "events"):
        assert await backend.store.count(table) == 0, table
    await backend.store.write_batch(batch_of(make_opportunity("after")))  # the store is still usable
    assert await backend.store.count("opportunities") == 1


async def test_a_reader_never_blocks_the_writer(backend: Backend) -> None:
    await backend.store.write_batch(batch_of(make_opportunity("first")))
    async with backend.snapshot() as count:
        assert await count("opportunities") == 1
        for b in range(4):  # not held up by the open read
            batch = batch_of(*(make_opportunity(f"{b}-{i}") for i in range(25)))
            await asyncio.wait_for(backend.store.write_batch(batch), 10)
        assert await count("opportunities") == 1  # the reader keeps its snapshot
    assert await backend.store.count("opportunities") == 101


async def test_closed_store_refuses_work(backend: Backend) -> None:
    other = backend.new_store()
    with pytest.raises(StoreError):
        await other.count("fills")


decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"),
                       max_value=Decimal("1e12"), places=None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=decimals)
async def test_any_decimal_survives_exactly(backend: Backend, value: Decimal) -> None:
    oid = f"h-{value!s}"
    await backend.store.write_batch(batch_of(make_opportunity(oid, input_=value)))
    rows = await backend.rows(f"SELECT input FROM opportunities WHERE id = '{oid}'")
    assert rows[0]["input"] == str(value) and Decimal(rows[0]["input"]) == value


# -- cryptoarb db init | migrate | stats ---------------------------------------------------------


def db_cli() -> tuple[typer.Typer, CliRunner]:
    app = typer.Typer()
    app.add_typer(db_app, name="db")
    return app, CliRunner()


@pytest.fixture
def db_target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("CRYPTOARB_DATA_DIR", "CRYPTOARB_DB_DSN", "CRYPTOARB_SECRETS__DB_DSN"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        yield ["--sqlite", str(tmp_path / "cli.sqlite")], lambda: SqliteStore(tmp_path / "cli.sqlite")
        return
    if reason := asyncio.run(pg_unavailable(PG_DSN)):
        pytest.skip(reason)
    schema = f"{RUN_ID}_{uuid.uuid4().hex[:8]}"
    yield ["--dsn", PG_DSN, "--schema", schema], lambda: PostgresStore(PG_DSN, schema=schema)

    async def drop() -> None:
        async with PostgresStore(PG_DSN, schema=schema) as store:
            await store.drop_schema()

    asyncio.run(drop())


@pytest.mark.parametrize("db_target", ["sqlite", "postgres"], indirect=True)
def test_db_init_migrate_stats(db_target: tuple[list[str], Callable[[], Any]]) -> None:
    args, new_store = db_target
    app, runner = db_cli()

    def db(*command: str) -> dict[str, Any]:
        result = runner.invoke(app, ["db", *command, *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = db("init")
    assert (first["schema_version_before"], first["schema_version"]) == (0, LATEST_VERSION)
    assert db("init")["schema_version_before"] == LATEST_VERSION
    assert db("migrate")["applied"] == 0
    stats = db("stats")
    assert stats["schema_version"] == stats["latest_version"] == LATEST_VERSION
    assert stats["tables"] == dict.fromkeys(TABLES, 0) and stats["size_bytes"] > 0

    async def write() -> None:
        async with new_store() as store:
            batch = batch_of(make_opportunity(), make_execution(make_opportunity()))
            batch.add("ticks", tick_row(Ticker("kucoin", "BTC-USDT", 1.0, 1.0, 2.0, 1.0, 5_000)))
            await store.write_batch(batch)

    asyncio.run(write())
    stats = db("stats")
    assert {t: stats["tables"][t] for t in ("opportunities", "orders", "fills", "executions", "ticks")} == {
        "opportunities": 1, "orders": 3, "fills": 4, "executions": 1, "ticks": 1}
    assert stats["time_span"]["ticks"] == [5.0, 5.0]


def test_db_commands_fail_with_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRYPTOARB_DB_DSN", raising=False)
    app, runner = db_cli()
    missing = runner.invoke(app, ["db", "migrate", "--sqlite", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 1 and "cryptoarb db init" in missing.stderr
    down = runner.invoke(app, ["db", "stats", "--dsn", "postgresql://u:secret@127.0.0.1:1/x"])
    assert down.exit_code == 1 and "secret" not in down.output
    sqlite_with_schema = ["db", "stats", "--schema", "s", "--sqlite", str(tmp_path / "a")]
    assert runner.invoke(app, sqlite_with_schema).exit_code == 2
    assert runner.invoke(app, ["db", "init", "--dsn", PG_DSN, "--schema", "Bad-Name"]).exit_code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense = 1\n")
    assert runner.invoke(app, ["db", "stats", "--config", str(bad)]).exit_code == 2


def test_db_stats_leaves_the_file_it_inspects_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRYPTOARB_DB_DSN", raising=False)
    foreign = tmp_path / "someone-elses.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
    conn.close()
    before = foreign.read_bytes()
    app, runner = db_cli()
    result = runner.invoke(app, ["db", "stats", "--sqlite", str(foreign), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["schema_version"] == 0 and set(stats["tables"].values()) == {None}
    assert foreign.read_bytes() == before and not Path(f"{foreign}-wal").exists()  # no table, no WAL switch

    ours = tmp_path / "ours.sqlite"  # a cryptoarb database, in WAL mode: stats leaves no -wal/-shm behind
    assert runner.invoke(app, ["db", "init", "--sqlite", str(ours)]).exit_code == 0
    listing = sorted(p.name for p in tmp_path.iterdir())
    assert runner.invoke(app, ["db", "stats", "--sqlite", str(ours)]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
