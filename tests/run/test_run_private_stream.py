"""A live ``cryptoarb run`` learns its orders' outcomes from KuCoin's private websocket.

End to end: ``RunApp`` in live mode against ``cryptoarb sim-server`` in its own process (the fake keys the
server accepts by default): orders are only acknowledged over REST and their final states arrive pushed;
when the private stream drops (the server stops answering its pings) orders are still resolved over REST,
the stream reconnects, and pushes resolve orders again. Then the parts: acknowledged placement and how its
refusals are classified, balance pushes reconciling the ledger, and the executor's side of a lost stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from rich.console import Console
from run_helpers import parse_prometheus, start_sim

from cryptoarb.config import RunSettings, Secrets, Settings
from cryptoarb.core.ledger import Ledger
from cryptoarb.model import Order, OrderStatus, Side
from cryptoarb.run.metrics import render_metrics
from cryptoarb.run.private import PrivateFeed
from cryptoarb.run.runner import RunApp, RunSummary
from cryptoarb.storage import SqliteStore
from cryptoarb.venues.kucoin.private_ws import BalanceUpdate, PrivateWsOptions
from cryptoarb.venues.kucoin.rest import KucoinAuthError, KucoinRateLimited, KucoinRest, KucoinUnavailable
from cryptoarb.venues.kucoin.signing import Credentials
from cryptoarb.venues.kucoin.sim_config import DEFAULT_API_KEY, DEFAULT_API_PASSPHRASE, DEFAULT_API_SECRET

CREDS = Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_API_PASSPHRASE)
SIM_ARGS = ("--pairs", "300")
TOLERANCE = Decimal("1e-12")
"""Ledger against account for assets last moved by an order resolved over REST (booked at dealFunds / dealSize)."""


def _faulty_venue() -> Any:
    """tests/execution/faulty_venue.py (the executor's fault-injecting venue harness), loaded by path."""
    name = "faulty_venue"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "execution" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# -- a live run in this process, against the simulator in its own ------------------------------------------
@pytest.fixture
def live_sim() -> Iterator[Any]:
    server = start_sim(*SIM_ARGS)
    yield server
    server.stop()


def live_settings(sim: Any, tmp_path: Path, mode: str = "live") -> Settings:
    secrets = Secrets(kucoin_api_key=SecretStr(CREDS.key), kucoin_api_secret=SecretStr(CREDS.secret),
                      kucoin_api_passphrase=SecretStr(CREDS.passphrase))
    return Settings(mode=mode, data_dir=tmp_path / "data", secrets=secrets,  # type: ignore[arg-type]
                    run=RunSettings(rest_url=sim.url, status_port=0, scan_interval_s=1.0,
                                    watchlist_file=tmp_path / "watchlist.json"))


@dataclass
class Running:
    app: RunApp
    task: asyncio.Task[RunSummary]
    logs: list[str] = field(default_factory=list)

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        """Wait for ``predicate`` (checked every 50 ms: nothing to await on across the process boundary)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if self.task.done():
                raise AssertionError(f"the run ended while waiting for {what}: {self.task.result()}")
            if loop.time() > deadline:
                status = self.app.status()
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; private: "
                                     f"{status['venues']['kucoin']['private']}, orders: {status['orders']}")
            await asyncio.sleep(0.05)

    def resolution(self) -> dict[str, int]:
        return self.app.status()["orders"]["resolution"]

    def private(self) -> dict[str, Any]:
        return self.app.status()["venues"]["kucoin"]["private"]

    async def get(self, path: str) -> str:
        assert self.app.status_server is not None
        async with aiohttp.ClientSession() as http, http.get(self.app.status_server.url + path) as resp:
            assert resp.status == 200
            return await resp.text()


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.asynccontextmanager
async def running(settings: Settings, *, live: bool = True,
                  options: PrivateWsOptions | None = None) -> AsyncIterator[Running]:
    """The run as a task, stopped (as by a signal) when the block ends; every log line it writes is kept."""
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    app = RunApp(settings, live=live, console=console, live_view=False, install_signals=False,
                 private_options=options)
    run = Running(app, asyncio.create_task(app.run()))
    handler = _Collect(run.logs)
    logger = logging.getLogger("cryptoarb")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield run
    finally:
        app.request_stop("test")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(run.task), 60)
        logger.removeHandler(handler)
        logger.setLevel(level)
        console.file.close()


async def sim_orders(sim: Any) -> dict[str, dict[str, Any]]:
    return {o["clientOid"]: o for o in await sim.admin("GET", "/_sim/orders")}


def stored_fills(tmp_path: Path) -> tuple[dict[str, str], list[tuple[str, str, int, str, str, str]]]:
    with sqlite3.connect(tmp_path / "data" / "cryptoarb.sqlite") as db:
        orders = dict(db.execute("SELECT client_oid, status FROM orders"))
        fills = db.execute("SELECT client_oid, opportunity_id, leg_index, size, fee, fee_asset FROM fills").fetchall()
    return orders, fills


def assert_fills_match_the_server(orders: dict[str, str], fills: list[tuple[str, str, int, str, str, str]],
                                  server: dict[str, dict[str, Any]]) -> None:
    """Every stored fill is booked to its order's opportunity and leg, and per order the fills add up to what
    the server dealt and charged (pushed fills are one per match: nothing missed, nothing doubled)."""
    assert orders and "new" not in orders.values()
    size: dict[str, Decimal] = {}
    fee: dict[str, Decimal] = {}
    for oid, opportunity_id, leg_index, fill_size, fill_fee, fee_asset in fills:
        m = re.fullmatch(r"(.+)-([LUH])(\d+)", oid)
        assert m and m.group(1) == opportunity_id, (oid, opportunity_id)
        assert leg_index == int(m.group(3)) or (m.group(2) != "L" and leg_index >= 100), (oid, leg_index)
        assert fee_asset == server[oid]["feeCurrency"]
        size[oid] = size.get(oid, Decimal(0)) + Decimal(fill_size)
        fee[oid] = fee.get(oid, Decimal(0)) + Decimal(fill_fee)
    for oid, status in orders.items():
        if oid not in server:
            assert status == "rejected"  # refused before sending (exchange rules)
            continue
        assert size.get(oid, Decimal(0)) == Decimal(server[oid]["dealSize"]), oid
        assert fee.get(oid, Decimal(0)) == Decimal(server[oid]["fee"]), oid


async def test_a_restart_keeps_todays_losses_against_the_daily_limit(live_sim: Any, tmp_path: Path) -> None:
    # earlier paper runs lost 110 USD today (limit 100): a new run starts with its kill switch engaged; yesterday's
    # and live runs' results do not count
    db = tmp_path / "data" / "cryptoarb.sqlite"
    async with SqliteStore(db) as store:
        await store.migrate()
    now = time.time()
    today = now - now % 86_400
    rows = [("a", -60.0, "paper", now - 10), ("b", -50.0, "paper", today + 1), ("c", -1_000.0, "paper", today - 1),
            ("d", -1_000.0, "live", now - 5)]
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO executions (opportunity_id, realized_profit, realized_profit_usd, fees_usd, "
                         "mode, at) VALUES (?, '0', ?, 0.0, ?, ?)", rows)
    async with running(live_settings(live_sim, tmp_path, mode="paper"), live=False) as run:
        await run.until(lambda: run.app.engine is not None, "the engine")
        assert run.app.engine is not None
        assert run.app.engine.risk.killed_reason == "daily loss limit: -110.00 USD today (earlier runs included)"


# -- end to end ---------------------------------------------------------------------------------------------
async def test_a_live_run_starts_its_ledger_at_the_accounts_exact_balances(tmp_path: Path) -> None:
    # through a float this amount would become 123456789.12345679: more than the account holds, so preflight
    # would pass an order the venue refuses for funds
    exact = "123456789.123456789"
    sim = start_sim(*SIM_ARGS, "--balance", f"QAX={exact}")
    try:
        async with running(live_settings(sim, tmp_path)) as run:
            await run.until(lambda: run.app.engine is not None, "the engine")
            assert run.app.engine is not None
            assert run.app.engine.ledger.free("kucoin", "QAX") == Decimal(exact)
    finally:
        sim.stop()


@pytest.mark.slow
async def test_a_live_run_resolves_its_orders_from_pushed_updates(live_sim: Any, tmp_path: Path) -> None:
    async with running(live_settings(live_sim, tmp_path)) as run:
        await run.until(lambda: run.resolution().get("pushed_resolutions", 0) >= 5, "5 orders resolved by pushes")
        doc = json.loads(await run.get("/status"))
        private = doc["venues"]["kucoin"]["private"]
        assert private["enabled"] and private["state"] == "live" and private["live"]
        assert private["connects"] == 1 and private["reconnects"] == 0 and private["lost"] == 0
        assert private["order_updates"] > 0 and private["balance_updates"] > 0 and private["decode_errors"] == 0
        resolution = doc["orders"]["resolution"]
        assert resolution["pushed_resolutions"] >= 5
        assert resolution["placed_ack"] >= resolution["pushed_resolutions"] + resolution["rest_resolutions"]
        assert resolution["updates_received"] >= resolution["pushed_resolutions"]
        families = parse_prometheus(await run.get("/metrics"))
        series = {name: {tuple(sorted(labels.items())): v for labels, v in samples}
                  for name, samples in families.items()}
        v = (("venue", "kucoin"),)
        assert series["cryptoarb_private_ws_up"][v] == 1
        assert series["cryptoarb_private_updates_total"][(("kind", "order"), *v)] > 0
        assert series["cryptoarb_private_updates_total"][(("kind", "balance"), *v)] > 0
        assert series["cryptoarb_private_ws_reconnects_total"][v] == 0
        assert series["cryptoarb_order_resolutions_total"][(("source", "push"), *v)] >= 5
        assert series["cryptoarb_order_placements_total"][(*v, ("via", "ack"))] >= 5
        texts = [str(doc), await run.get("/metrics")]
    summary = run.task.result()
    assert summary.mode == "live" and summary.unresolved == 0 and summary.resolved_by_push >= 5
    assert summary.private_updates > 0
    assert run.app.supervisor is not None and run.app.supervisor.tasks["private-stream"].failures == 0
    for text in [*texts, *run.logs, str(summary.as_dict())]:
        assert CREDS.secret not in text and CREDS.passphrase not in text
    orders, fills = stored_fills(tmp_path)
    assert_fills_match_the_server(orders, fills, await sim_orders(live_sim))


@pytest.mark.slow
async def test_when_the_private_stream_drops_orders_resolve_over_rest_and_it_reconnects(
        live_sim: Any, tmp_path: Path) -> None:
    # Pings every 0.2 s (the market-data sockets keep the server's 18 s): with pongs withheld, the private
    # stream is declared dead within 0.4 s of each reconnect and stays down for 1-2 s between attempts.
    options = PrivateWsOptions(ping_interval_s=0.2, ping_timeout_s=0.2, backoff_base_s=2.0, backoff_max_s=2.0)
    async with running(live_settings(live_sim, tmp_path), options=options) as run:
        app = run.app
        await run.until(lambda: run.resolution().get("pushed_resolutions", 0) >= 1, "an order resolved by a push")

        await live_sim.faults(ignore_pings=True)
        await run.until(lambda: run.private()["lost"] >= 1, "the private stream dropped")
        placed_rest = run.resolution()["placed_rest"]
        await run.until(lambda: run.resolution()["placed_rest"] > placed_rest, "an order sent while it is down")
        assert "no pong" in run.private()["last_reason"]

        await live_sim.faults(ignore_pings=False)
        pushed = run.resolution()["pushed_resolutions"]
        await run.until(lambda: run.resolution()["pushed_resolutions"] > pushed, "pushes resolving orders again")
        assert run.private()["reconnects"] >= 1
        # the stream reconnected by itself: its supervised task never failed
        assert app.supervisor is not None and app.supervisor.tasks["private-stream"].failures == 0

        # quiet: nothing new is sent; once nothing is in flight the ledger is the account's balances
        assert app.engine is not None and app.rest is not None
        engine, rest = app.engine, app.rest
        engine.accepting = False
        await run.until(lambda: engine.pending == 0, "the orders in flight")
        account = {b.asset: b.free for b in await rest.fetch_balances()}
        await run.until(lambda: all(abs(engine.ledger.free("kucoin", a) - amount) <= TOLERANCE
                                    for a, amount in account.items()), "the ledger to match the account", 30)
        assert run.private()["balances"]["applied"] > 0
    summary = run.task.result()
    assert summary.unresolved == 0 and summary.placed_rest >= 1 and summary.resolved_by_push >= 2
    assert summary.private_reconnects >= 1
    orders, fills = stored_fills(tmp_path)
    assert_fills_match_the_server(orders, fills, await sim_orders(live_sim))


@pytest.mark.slow
async def test_a_paper_run_starts_nothing_private(live_sim: Any, tmp_path: Path) -> None:
    async with running(live_settings(live_sim, tmp_path, mode="paper"), live=False) as run:
        await run.until(lambda: run.app.state == "running", "the run to start")
        status = run.app.status()
        assert status["mode"] == "paper" and status["orders"]["resolution"] == {}
        assert status["venues"]["kucoin"]["private"] == {"enabled": False, "state": "off", "live": False}
        assert run.app.private is None and run.app.supervisor is not None
        assert "private-stream" not in run.app.supervisor.tasks
        assert not any(name.startswith("cryptoarb_private") for name in parse_prometheus(await run.get("/metrics")))


# -- acknowledged placement -----------------------------------------------------------------------------------
def _rest(sim, creds: Credentials = CREDS, url: str | None = None) -> KucoinRest:
    return KucoinRest(api_key=creds.key, api_secret=creds.secret, api_passphrase=creds.passphrase,
                      base_url=url or sim.url, enable_rate_limit=False)


@pytest.mark.parametrize("account", ["--classic", "--hf"])
async def test_acknowledged_orders_and_how_refusals_are_classified(account: str) -> None:
    sim = start_sim("--pairs", "60", "--speed", "0", account)
    try:
        rest = _rest(sim)
        try:
            await rest.load_markets()
            ask, _ = (await rest.fetch_book("BTC-USDT", 5)).asks[0]
            order = _order("ack-1", Decimal(repr(ask)), Decimal("0.001"))
            acked = await rest.acknowledge_order(order)
            assert (acked.order, acked.status, acked.fills) == (order, OrderStatus.NEW, ())
            found = await rest.fetch_order("BTC-USDT", "ack-1")  # placed: the venue knows it, filled
            assert found.status is OrderStatus.FILLED and found.filled_size == Decimal("0.001")
            assert found.order == order  # the lookup keeps the order as it was sent (opportunity, leg)
            again = await rest.acknowledge_order(order)  # a retry of a client order id: looked up, not sent
            assert again.status is OrderStatus.FILLED
            twin = _order("ack-7", Decimal(repr(ask)), Decimal("0.001"))  # two callers at once: one request
            first, second = await asyncio.gather(rest.acknowledge_order(twin), rest.acknowledge_order(twin))
            assert first.status is second.status is OrderStatus.NEW

            broke = await rest.acknowledge_order(_order("ack-2", Decimal(repr(ask)), Decimal("1000")))
            assert broke.status is OrderStatus.REJECTED and broke.reason == "200004: Balance insufficient!"
            odd = await rest.acknowledge_order(_order("ack-3", Decimal(repr(ask)), Decimal("0.0000001")))
            assert odd.status is OrderStatus.REJECTED and odd.reason.startswith("400100: ")
            await sim.faults(http_429_burst=1)
            with pytest.raises(KucoinRateLimited) as limited:
                await rest.acknowledge_order(_order("ack-4", Decimal(repr(ask)), Decimal("0.001")))
            assert limited.value.retryable and limited.value.code == "429000"
        finally:
            await rest.close()
        wrong = _rest(sim, Credentials(CREDS.key, "not-the-secret", "not-the-passphrase"))
        try:
            with pytest.raises(KucoinAuthError) as refused:
                await wrong.acknowledge_order(_order("ack-5", Decimal(1), Decimal(1)))
            assert refused.value.code == "400005" and not refused.value.retryable
            assert "not-the-secret" not in str(refused.value) and "not-the-passphrase" not in str(refused.value)
        finally:
            await wrong.close()
        sent = [o["clientOid"] for o in await sim.admin("GET", "/_sim/orders")]
        # one order per client order id, once (the retry was looked up, the twins shared one request); the
        # refused ones never existed
        assert sent == ["ack-1", "ack-7"]
    finally:
        sim.stop()
    gone = _rest(sim)  # the server has stopped: nothing listens there
    try:
        gone._by_id = {"BTC-USDT": "BTC/USDT"}  # markets known from before it stopped
        with pytest.raises(KucoinUnavailable, match=r"cannot reach 127\.0\.0\.1:") as down:
            await gone.acknowledge_order(_order("ack-6", Decimal(1), Decimal(1)))
        assert down.value.retryable
    finally:
        await gone.close()


def _order(oid: str, price: Decimal, size: Decimal) -> Order:
    return Order(oid, f"opp-{oid}", 0, "kucoin", "BTC-USDT", Side.BUY, price, size, 0.0)


# -- balance pushes and the ledger --------------------------------------------------------------------------
@dataclass
class FakeEngine:
    ledger: Ledger
    pending: int = 0


@dataclass
class FakeExecutor:
    lost: int = 0

    def order_updates_lost(self) -> None:
        self.lost += 1

    def order_updates_resumed(self) -> None:
        pass


def _balance(asset: str, available: str) -> BalanceUpdate:
    amount = Decimal(available)
    return BalanceUpdate("kucoin", asset, amount, amount, Decimal(0), Decimal(0), Decimal(0), "trade.setted",
                         "BTC-USDT", "order-1", 0, 0.0)


def test_balance_pushes_reconcile_the_ledger_only_when_nothing_is_in_flight() -> None:
    ledger = Ledger({"kucoin": {"USDT": 1000.0, "BTC": 1.0, "ETH": 2.0}, "other": {"USDT": 5.0}})
    engine = FakeEngine(ledger, pending=1)
    executor = FakeExecutor()
    feed = PrivateFeed(None, CREDS, "http://unused", venue="kucoin", engine=engine,  # type: ignore[arg-type]
                       executor=executor, fee_rate=lambda s, liq: Decimal(0), clock=lambda: 0.0)
    feed.on_balance(_balance("USDT", "990.5"))
    feed.on_balance(_balance("BTC", "1.0001"))
    feed.on_balance(_balance("USDT", "989.25"))  # the latest per asset wins
    assert ledger.free("kucoin", "USDT") == Decimal("1000.0")  # in flight: the fills are not booked yet
    assert feed.status()["balances"]["held"] == 2

    engine.pending = 0
    feed.reconcile()
    assert ledger.free("kucoin", "USDT") == Decimal("989.25") and ledger.free("kucoin", "BTC") == Decimal("1.0001")
    assert ledger.free("kucoin", "ETH") == Decimal("2.0") and ledger.free("other", "USDT") == Decimal("5.0")
    assert feed.status()["balances"] == {"applied": 2, "held": 0, "dropped": 0, "corrections": 2}

    feed.on_balance(_balance("ETH", "2.0"))  # idle: applied at once; the same amount is no correction
    assert feed.status()["balances"] == {"applied": 3, "held": 0, "dropped": 0, "corrections": 2}

    engine.pending = 1
    feed.on_balance(_balance("USDT", "1"))
    feed.on_live(False)  # pushes may have been missed: what was held may be stale
    engine.pending = 0
    feed.reconcile()
    assert ledger.free("kucoin", "USDT") == Decimal("989.25")
    assert feed.status()["balances"]["dropped"] == 1 and feed.lost == 1 and executor.lost == 1


# -- the executor's side --------------------------------------------------------------------------------------
@pytest.fixture
def faulty_live() -> Any:
    fv = _faulty_venue()
    balances = {"USDT": 10_000.0, "BTC": 0.15, "ETH": 3.0, "KCS": 500.0}
    settings = Settings(sim=fv.SIM, balances={"kucoin": balances}, risk={"max_concurrent": 1})
    venue = fv.FaultyVenue(fv.SimVenue(fv.SIM, speed=0, balances=balances))
    events: list[Any] = []
    # no poll before an hour: only a push or the loss of the stream can settle an open order in time
    engine = fv.make_live(settings, venue, events, poll_interval_s=3600.0, resolve_timeout_s=7200.0)
    return fv, engine, venue, events


async def test_pushed_fills_are_booked_to_the_order_s_opportunity_and_leg(faulty_live: Any) -> None:
    fv, engine, venue, events = faulty_live
    executor = engine.executor
    venue.inject("open_push", leg_index=1)

    def bare(update: Any) -> None:  # what a KuCoin push knows: the client order id, not opportunity or leg
        executor.on_order_update(replace(update, fills=tuple(replace(f, opportunity_id="", leg_index=0)
                                                             for f in update.fills)))

    venue.push = bare
    await fv.drive(engine, venue, lambda: bool(venue.injected) and bool(fv.executions(events)))
    ex = fv.executions(events)[0]
    pushed = ex.results[1]
    assert pushed.order.client_oid == f"{ex.opportunity.id}-L1" and pushed.order.client_oid not in venue.fetched
    assert pushed.fills and {(f.opportunity_id, f.leg_index) for f in pushed.fills} == {(ex.opportunity.id, 1)}
    assert executor.order_state_stats()["pushed_resolutions"] == 1
    assert engine.opportunity_ledger.get(ex.opportunity.id).attribution.legs[1].filled_size == pushed.filled_size


async def test_a_lost_stream_sends_the_orders_waiting_for_a_push_to_rest_at_once(faulty_live: Any) -> None:
    fv, engine, venue, events = faulty_live
    executor = engine.executor
    venue.inject("open_rest", leg_index=0)  # acknowledged as open, and no push will ever come
    place = venue.place_order

    async def place_then_lose_the_stream(order: Any) -> Any:
        result = await place(order)
        if result.status is OrderStatus.NEW:  # runs once the executor waits for the order's push
            asyncio.get_running_loop().call_soon(executor.order_updates_lost)
        return result

    venue.place_order = place_then_lose_the_stream
    await fv.drive(engine, venue, lambda: bool(venue.injected) and bool(fv.executions(events)))
    ex = fv.executions(events)[0]
    first = ex.results[0]
    assert first.status is OrderStatus.FILLED and venue.fetched == [first.order.client_oid]
    stats = executor.order_state_stats()
    assert (stats["interruptions"], stats["rest_resolutions"], stats["pushed_resolutions"]) == (1, 1, 0)


async def test_an_order_sent_as_the_stream_is_lost_is_looked_up_at_once_not_at_the_next_poll(
        faulty_live: Any) -> None:
    """The loss is noticed while the order's request is in flight: no waiter exists yet for the loss to wake,
    so the order must not wait for a push (or the hour-long poll of this fixture) before its lookup."""
    fv, engine, venue, events = faulty_live
    executor = engine.executor
    venue.inject("open_rest", leg_index=0)
    place = venue.place_order

    async def lose_the_stream_while_placing(order: Any) -> Any:
        result = await place(order)
        if result.status is OrderStatus.NEW:
            executor.order_updates_lost()  # before the executor has the answer
        return result

    venue.place_order = lose_the_stream_while_placing
    started = time.monotonic()
    await asyncio.wait_for(fv.drive(engine, venue, lambda: bool(venue.injected) and bool(fv.executions(events))),
                           10.0)
    ex = fv.executions(events)[0]
    assert ex.results[0].status is OrderStatus.FILLED and venue.fetched == [ex.results[0].order.client_oid]
    assert executor.order_state_stats()["rest_resolutions"] == 1
    assert time.monotonic() - started < 5.0  # the drain's own limit: the order did not sit out a poll


async def test_orders_wait_for_their_push_again_once_the_stream_is_back(faulty_live: Any) -> None:
    fv, engine, venue, events = faulty_live
    executor = engine.executor
    executor.order_updates_lost()
    executor.order_updates_resumed()
    venue.inject("open_push", leg_index=1)
    await fv.drive(engine, venue, lambda: bool(venue.injected) and bool(fv.executions(events)))
    pushed = fv.executions(events)[0].results[1]
    assert pushed.order.client_oid not in venue.fetched  # no lookup: its push settled it
    assert executor.order_state_stats()["pushed_resolutions"] == 1


# -- /metrics -----------------------------------------------------------------------------------------------
def test_private_stream_and_order_resolution_metrics() -> None:
    doc = {"state": "running", "venue": "kucoin", "orders": {"resolution": {
        "pushed_resolutions": 40, "rest_resolutions": 2, "rest_lookups": 5, "placed_ack": 42, "placed_rest": 3}},
        "venues": {"kucoin": {"private": {"enabled": True, "live": True, "order_updates": 160,
                                          "balance_updates": 90, "reconnects": 1, "lost": 1,
                                          "balances": {"corrections": 4}}}}}
    series = {name: {tuple(sorted(labels.items())): v for labels, v in samples}
              for name, samples in parse_prometheus(render_metrics(doc)).items()}
    v = (("venue", "kucoin"),)
    assert series["cryptoarb_private_updates_total"] == {(("kind", "order"), *v): 160, (("kind", "balance"), *v): 90}
    assert series["cryptoarb_order_resolutions_total"] == {(("source", "push"), *v): 40, (("source", "rest"), *v): 2}
    assert series["cryptoarb_order_placements_total"] == {(*v, ("via", "ack")): 42, (*v, ("via", "rest")): 3}
    assert series["cryptoarb_private_ws_up"][v] == 1 and series["cryptoarb_private_ws_reconnects_total"][v] == 1
    assert series["cryptoarb_order_rest_lookups_total"][v] == 5
    assert series["cryptoarb_balance_corrections_total"][v] == 4 and series["cryptoarb_private_ws_lost_total"][v] == 1
