"""KucoinPrivateStream: order and balance pushes over a bullet-private websocket, against the KuCoin simulator
in a separate process (orders placed through KucoinRest), plus the decoding of KuCoin's documented frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from kucoin_sim_process import CREDS, SimProcess
from yarl import URL

from cryptoarb.core.books import BookStore
from cryptoarb.execution.live import LiveExecutor
from cryptoarb.model import Notice, Order, OrderStatus, Side
from cryptoarb.venues.base import OrderUpdate, OrderUpdateSource
from cryptoarb.venues.kucoin.private_ws import (
    BALANCE,
    ORDERS_V2,
    BalanceUpdate,
    KucoinPrivateStream,
    PrivateWsOptions,
    balance_update,
    fee_rates,
    order_update,
)
from cryptoarb.venues.kucoin.rest import KucoinAuthError, KucoinRest
from cryptoarb.venues.kucoin.signing import Credentials

FROZEN = ("--pairs", "60", "--speed", "0", "--balance", "USDT=10000000")  # books move only when we trade
FAST = PrivateWsOptions(backoff_base_s=0.02, backoff_max_s=0.2, welcome_timeout_s=5.0, ack_timeout_s=5.0)


# -- decoding KuCoin's own examples (reference §A.2) -------------------------------------------------------
V2_RECEIVED = {"clientOid": "5c52e11203aa677f33e493fc", "orderId": "6720da3fa30a360007f5f832",
               "orderTime": 1730206271588, "orderType": "market", "originSize": "0.00001", "side": "buy",
               "status": "new", "symbol": "BTC-USDT", "ts": 1730206271616000000, "type": "received"}
V1_MATCH = {"symbol": "KCS-USDT", "orderType": "limit", "side": "sell", "orderId": "5efab07953bdea00089965fa",
            "liquidity": "taker", "type": "match", "orderTime": 1670329987026, "size": "0.1", "filledSize": "0.1",
            "price": "0.938", "matchPrice": "0.96738", "matchSize": "0.1", "tradeId": "5efab07a4ee4c7000a82d6d9",
            "clientOid": "1593487481000313", "remainSize": "0", "status": "match", "ts": 1670329987311000000}
BALANCE_DATA = {"accountId": "548674591753", "currency": "USDT", "total": "21.133773386762",
                "available": "20.132773386762", "hold": "1.001", "availableChange": "-0.5005",
                "holdChange": "0.5005",
                "relationContext": {"symbol": "BTC-USDT", "orderId": "6721d0632db25b0007071fdc"},
                "relationEvent": "trade.hold", "relationEventId": "354689988084000", "time": "1730269283892"}


def test_order_change_frames_become_order_updates() -> None:
    received = order_update(V2_RECEIVED, at=5.0)
    assert received == OrderUpdate("kucoin", "BTC-USDT", "5c52e11203aa677f33e493fc", OrderStatus.NEW, Decimal(0),
                                   at=5.0)
    sent = Order("1593487481000313", "opp-7", 2, "kucoin", "KCS-USDT", Side.SELL, Decimal("0.938"), Decimal("0.1"),
                 0.0)
    match = order_update(V1_MATCH, at=6.0, fee_rate=lambda s, liq: Decimal("0.001") if liq == "taker" else Decimal(9),
                         order_lookup={sent.client_oid: sent}.get)
    assert (match.status, match.filled_size, match.final) == (OrderStatus.PARTIAL, Decimal("0.1"), False)
    (fill,) = match.fills
    assert (fill.price, fill.size, fill.side, fill.fee_asset) == (Decimal("0.96738"), Decimal("0.1"), Side.SELL, "USDT")
    assert fill.fee == Decimal("0.96738") * Decimal("0.1") * Decimal("0.001")
    assert (fill.opportunity_id, fill.leg_index, fill.at) == ("opp-7", 2, 6.0)
    done = {**V1_MATCH, "status": "done", "remainSize": "0"}
    assert order_update({**done, "type": "filled"}).status is OrderStatus.FILLED
    assert order_update({**done, "type": "filled"}).final and not order_update({**done, "type": "filled"}).fills
    assert order_update({**done, "type": "canceled"}).status is OrderStatus.PARTIAL  # IOC rest canceled
    nothing = order_update({**done, "type": "canceled", "filledSize": "0"})
    assert (nothing.status, nothing.final, nothing.filled_size) == (OrderStatus.CANCELED, True, Decimal(0))
    unmatched = order_update(V1_MATCH)  # no fee_rate, no lookup: what the push itself says
    assert unmatched.fills[0].fee == 0 and unmatched.fills[0].opportunity_id == ""


def test_balance_frames_become_balance_updates() -> None:
    b = balance_update(BALANCE_DATA, at=3.0)
    assert b == BalanceUpdate("kucoin", "USDT", Decimal("21.133773386762"), Decimal("20.132773386762"),
                              Decimal("1.001"), Decimal("-0.5005"), Decimal("0.5005"), "trade.hold", "BTC-USDT",
                              "6721d0632db25b0007071fdc", 1730269283892, 3.0)
    assert (b.balance.free, b.balance.total, b.balance.asset) == (b.available, b.total, "USDT")


# -- against the simulator ---------------------------------------------------------------------------------
@dataclass
class Wire:
    """What the client sent over HTTP: bullet requests and websocket connects (traced by aiohttp)."""

    requests: list[tuple[str, URL]] = field(default_factory=list)

    @property
    def bullets(self) -> list[URL]:
        return [u for m, u in self.requests if m == "POST" and u.path.startswith("/api/v1/bullet")]

    @property
    def ws_tokens(self) -> list[str]:
        return [u.query["token"] for m, u in self.requests if m == "GET" and "token" in u.query]


@dataclass
class Account:
    """The engine's side of one private stream: updates per order, balances, notices; waitable."""

    rest: KucoinRest
    wire: Wire
    stream: KucoinPrivateStream = field(init=False)
    sent: dict[str, Order] = field(default_factory=dict)
    balances: list[BalanceUpdate] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    updates: dict[str, list[OrderUpdate]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self, *_: Any) -> None:
        self.changed.set()

    def on_balance(self, update: BalanceUpdate) -> None:
        self.balances.append(update)
        self.poke()

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.poke()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    async def place(self, oid: str, price: float | Decimal | str, size: float | Decimal | str, side: Side = Side.BUY,
                    symbol: str = "BTC-USDT") -> Any:
        order = Order(oid, f"opp-{oid}", 1, "kucoin", symbol, side, _d(price), _d(size), 0.0)
        self.sent[oid] = order
        return await self.rest.place_order(order)

    def final(self, oid: str) -> OrderUpdate | None:
        got = self.updates.get(oid) or []
        return got[-1] if got and got[-1].final else None


def _d(x: float | Decimal | str) -> Decimal:
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


async def _consume(account: Account) -> None:
    async for update in account.stream.order_updates():
        account.updates.setdefault(update.client_oid, []).append(update)
        account.poke()


@contextlib.asynccontextmanager
async def private_stream(sim: SimProcess, creds: Credentials = CREDS,
                         options: PrivateWsOptions = FAST) -> AsyncIterator[Account]:
    wire = Wire()

    async def on_request(_s: Any, _c: Any, params: aiohttp.TraceRequestStartParams) -> None:
        wire.requests.append((params.method, params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        rest = KucoinRest(api_key=creds.key, api_secret=creds.secret, api_passphrase=creds.passphrase,
                          base_url=sim.url, enable_rate_limit=False)
        account = Account(rest, wire)
        markets = await rest.load_markets() if creds == CREDS else []
        account.stream = stream = KucoinPrivateStream(
            http, creds, sim.url, fee_rate=fee_rates(markets), order_lookup=account.sent.get, options=options,
            on_balance=account.on_balance, on_notice=account.on_notice)
        consumer = asyncio.create_task(_consume(account))
        try:
            yield account
        finally:
            await stream.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer, 5)
            await rest.close()


async def test_ioc_orders_push_received_match_and_filled_updates_and_balances(
        sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*FROZEN)
    async with private_stream(sim) as acc:
        await acc.stream.wait_live(10)
        assert isinstance(acc.stream, OrderUpdateSource)
        (p0, s0), (p1, s1) = (await acc.rest.fetch_book("BTC-USDT", 5)).asks[:2]
        bid = (await acc.rest.fetch_book("BTC-USDT", 5)).bids[0][0]
        filled = await acc.place("fill-1", p0, s0)  # exactly the top level
        partial = await acc.place("part-1", p1, _d(s1) * 2)  # the next level, twice its size
        missed = await acc.place("miss-1", bid, "0.001")  # below the asks: nothing fills
        assert [r.status for r in (filled, partial, missed)] == [
            OrderStatus.FILLED, OrderStatus.PARTIAL, OrderStatus.CANCELED]
        await acc.wait_for(lambda: all(acc.final(o) for o in ("fill-1", "part-1", "miss-1")), what="3 finals")

        for oid, rest_result in (("fill-1", filled), ("part-1", partial), ("miss-1", missed)):
            ups = acc.updates[oid]
            assert ups[0].status is OrderStatus.NEW and ups[0].filled_size == 0  # "received"
            assert [u.final for u in ups] == [False] * (len(ups) - 1) + [True]
            final = ups[-1]
            assert final.status is rest_result.status and final.filled_size == rest_result.filled_size
            fills = [f for u in ups for f in u.fills]
            assert sum((f.size for f in fills), Decimal(0)) == final.filled_size
            if rest_result.fills:  # the pushed fills price and charge what REST reports for the whole order
                cost = sum((f.price * f.size for f in fills), Decimal(0))
                assert cost == rest_result.fills[0].price * rest_result.fills[0].size
                assert sum((f.fee for f in fills), Decimal(0)) == rest_result.fills[0].fee
                assert {(f.opportunity_id, f.leg_index, f.fee_asset) for f in fills} == {(f"opp-{oid}", 1, "USDT")}
        assert [f.price for u in acc.updates["fill-1"] for f in u.fills] == [_d(p0)]
        assert acc.updates["miss-1"][-1].status is OrderStatus.CANCELED and len(acc.updates["miss-1"]) == 2

        # balance pushes: the last one per asset is the account's balance
        rest_balances = {b.asset: b for b in await acc.rest.fetch_balances()}
        await acc.wait_for(lambda: {b.asset for b in acc.balances} >= {"USDT", "BTC"}, what="balances")
        last = {b.asset: b for b in acc.balances}
        for asset in ("USDT", "BTC"):
            assert (last[asset].available, last[asset].total) == (rest_balances[asset].free,
                                                                  rest_balances[asset].total)
        assert {b.event for b in acc.balances} >= {"trade.hold", "trade.setted"}
        stats = acc.stream.stats()
        assert (stats["connects"], stats["errors"], stats["decode_errors"]) == (1, 0, 0)
        assert stats["order_updates"] == sum(len(u) for u in acc.updates.values())

        # what the server saw: one bullet-private and one private socket subscribed to both topics
        assert [u.path for u in acc.wire.bullets] == ["/api/v1/bullet-private"]
        assert (await sim.stats())["errors"] == 0


async def test_live_executor_follows_the_stream(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*FROZEN)
    async with private_stream(sim) as acc:
        executor = LiveExecutor({}, {}, BookStore(), balance=lambda venue, asset: Decimal(0))
        seen: list[OrderUpdate] = []
        executor.on_order_update = lambda u: (seen.append(u), acc.poke())  # type: ignore[method-assign]
        follow = asyncio.create_task(executor.follow(acc.stream))  # starts the stream by itself
        await acc.stream.wait_live(10)
        ask = (await acc.rest.fetch_book("ETH-USDT", 5)).asks[0][0]
        await acc.place("follow-1", ask, "0.01", symbol="ETH-USDT")
        await acc.wait_for(lambda: any(u.final and u.client_oid == "follow-1" for u in seen), what="final")
        assert [u.status for u in seen] == [OrderStatus.NEW, OrderStatus.PARTIAL, OrderStatus.FILLED]
        await acc.stream.close()
        await asyncio.wait_for(follow, 5)  # closing the stream ends follow() without an error
        assert follow.exception() is None


async def test_reconnects_on_a_fresh_token_after_expiry_drops_and_missed_pongs(
        sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*FROZEN, "--ping-interval-ms", "300", "--ping-timeout-ms", "400")
    async with private_stream(sim) as acc:
        s = acc.stream
        s.start()
        await s.wait_live(10)
        connects = lambda: s.stats()["connects"]  # noqa: E731

        def lost() -> int:
            return sum(n.kind == "kucoin_private_ws_disconnected" for n in acc.notices)

        await sim.faults(expire_tokens_now=True)  # KuCoin's "token is expired" error frame, then a close
        await acc.wait_for(lambda: lost() == 1, what="the expired token noticed")
        await s.wait_live(10)  # not live from the loss until the new socket is subscribed
        assert connects() == 2
        assert any(n.fields.get("code") == "401" and "token is expired" in n.message for n in acc.notices)

        await sim.faults(drop_every_s=0.3)  # network drops: no close frame
        await acc.wait_for(lambda: lost() >= 2, what="a drop noticed")
        await sim.faults(drop_every_s=0)
        await s.wait_live(10)
        assert (await sim.stats())["fault_drops"] >= 1 and connects() >= 3

        n_lost = lost()
        await sim.faults(ignore_pings=True)
        await acc.wait_for(lambda: lost() > n_lost, what="a missed pong")
        assert "no pong" in s.stats()["last_reason"]
        await sim.faults(ignore_pings=False)
        await s.wait_live(10)

        tokens = acc.wire.ws_tokens
        assert len(tokens) == connects() == len(acc.wire.bullets) and len(set(tokens)) == len(tokens)
        assert all(u.path == "/api/v1/bullet-private" for u in acc.wire.bullets)
        # still subscribed to both topics after all that: an order's pushes and balances arrive
        n_balances = len(acc.balances)
        ask = (await acc.rest.fetch_book("BTC-USDT", 5)).asks[0][0]
        await acc.place("after-1", ask, "0.001")
        await acc.wait_for(lambda: acc.final("after-1") is not None and len(acc.balances) > n_balances,
                           what="pushes after the reconnects")
        assert acc.final("after-1").status is OrderStatus.FILLED  # type: ignore[union-attr]
        assert (await sim.stats())["errors"] == 0  # never an over-limit or refused subscription


async def test_wrong_secret_is_refused_with_400005_and_a_clear_error(sim: SimProcess) -> None:
    bad = Credentials("sim-key", "not-the-secret", "not-the-passphrase")
    before = (await sim.stats())["connections"]
    async with private_stream(sim, bad) as acc:
        updates = acc.stream.order_updates()
        with pytest.raises(KucoinAuthError) as info:
            await acc.stream.wait_live(10)
        err = info.value
        assert err.code == "400005" and not err.retryable
        assert str(err) == "kucoin bullet-private refused: HTTP 401 400005: Invalid KC-API-SIGN"
        with pytest.raises(KucoinAuthError):
            await anext(updates)  # the iterators end with the same error
        with pytest.raises(KucoinAuthError):
            await acc.stream.run()
        assert len(acc.wire.bullets) == 1 and acc.wire.ws_tokens == []  # refused once, not retried
        assert any(n.kind == "kucoin_private_ws_auth_failed" for n in acc.notices)
        for text in [str(err), *(n.message for n in acc.notices)]:
            assert "not-the-secret" not in text and "not-the-passphrase" not in text
    assert (await sim.stats())["connections"] == before


def test_topics_are_kucoins() -> None:
    assert FAST.topics == (ORDERS_V2, BALANCE) == ("/spotMarket/tradeOrdersV2", "/account/balance")
    assert FAST.key_version == "2"
