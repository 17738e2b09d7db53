"""Real clients against the KuCoin simulator in a separate process: unmodified ccxt (only its URLs pointed
at the server), ccxt.pro websockets, and our ``KucoinRest``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest
from ccxt.base import errors as ccxt_errors
from kucoin_sim_process import CREDS, SimProcess

from cryptoarb.config import SimSettings
from cryptoarb.model import Order, OrderStatus, Side
from cryptoarb.venues.base import VenueError
from cryptoarb.venues.kucoin.rest import (
    KucoinAuthError,
    KucoinOrderNotFound,
    KucoinRateLimited,
    KucoinRest,
)
from cryptoarb.venues.kucoin.signing import Credentials
from cryptoarb.venues.sim.universe import build_universe

URL_KEYS = ("public", "private", "futuresPublic", "futuresPrivate", "uta", "utaPrivate")
FROZEN = ("--pairs", "60", "--speed", "0")  # books move only when orders take liquidity


@asynccontextmanager
async def ccxt_client(sim: SimProcess, cls: type[Any] = ccxt_async.kucoin,
                      creds: Credentials = CREDS) -> AsyncIterator[Any]:
    """ccxt as shipped, pointed at the simulator as reference §B.2 describes."""
    ex = cls({"apiKey": creds.key, "secret": creds.secret, "password": creds.passphrase,
              "enableRateLimit": False, "options": {"uta": False, "fetchMarkets": {"types": ["spot"]}}})
    for key in URL_KEYS:
        ex.urls["api"][key] = sim.url
    try:
        yield ex
    finally:
        await ex.close()


@asynccontextmanager
async def rest_client(sim: SimProcess, creds: Credentials = CREDS, orders: str = "wire") -> AsyncIterator[KucoinRest]:
    rest = KucoinRest(api_key=creds.key, api_secret=creds.secret, api_passphrase=creds.passphrase,
                      base_url=sim.url, enable_rate_limit=False, native_orders=orders == "wire")
    try:
        yield rest
    finally:
        await rest.close()


def buy(oid: str, price: Decimal, size: Decimal, symbol: str = "BTC-USDT") -> Order:
    return Order(client_oid=oid, opportunity_id="opp", leg_index=0, venue="kucoin", symbol=symbol,
                 side=Side.BUY, price=price, size=size, created_at=0.0)


def dec(x: float) -> Decimal:
    return Decimal(repr(x))


# -- ccxt REST ---------------------------------------------------------------------------------------------
async def test_ccxt_loads_markets_tickers_books_and_balances(sim: SimProcess) -> None:
    async with ccxt_client(sim) as ex:
        markets = await ex.load_markets()
        assert len(markets) == 1250 and all(m["spot"] for m in markets.values())
        btc = markets["BTC/USDT"]
        assert btc["precision"] == {"amount": 1e-8, "price": 0.1}
        assert btc["limits"]["amount"]["min"] == 1e-5 and btc["limits"]["cost"]["min"] == 0.1
        assert btc["taker"] == 0.001 and btc["active"] is True
        tickers = await ex.fetch_tickers()
        assert len(tickers) == 1250 and tickers["BTC/USDT"]["bid"] < tickers["BTC/USDT"]["ask"]
        for limit, levels in ((20, 20), (100, 50), (None, 50)):  # None: the signed full book (v3)
            book = await ex.fetch_order_book("ETH/USDT", limit)
            assert len(book["bids"]) == len(book["asks"]) == levels
            assert book["bids"][0][0] < book["asks"][0][0]
            assert isinstance(book["nonce"], int)
        balance = await ex.fetch_balance()
        assert balance["total"]["USDT"] > 0 and balance["total"]["ETH"] == 40
        fee = await ex.fetch_trading_fee("BTC/USDT")
        assert fee["taker"] == 0.001


@pytest.mark.parametrize("account", ["--classic", "--hf"])
async def test_ccxt_places_and_cancels_orders_with_signed_requests(
        sim_factory: Callable[..., SimProcess], account: str) -> None:
    sim = sim_factory(*FROZEN, account)
    async with ccxt_client(sim) as ex:
        await ex.load_markets()
        assert ex.options["hf"] is (account == "--hf")
        book = await ex.fetch_order_book("BTC/USDT", 20)
        ioc = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, book["asks"][0][0],
                                    {"timeInForce": "IOC"})
        done = await ex.fetch_order(ioc["id"], "BTC/USDT")
        assert (done["status"], done["filled"], done["price"]) == ("closed", 0.001, book["asks"][0][0])
        for side in ("buy", "sell"):
            market = await ex.create_order("BTC/USDT", "market", side, 0.002)
            done = await ex.fetch_order(market["id"], "BTC/USDT")
            assert (done["status"], done["filled"], done["side"]) == ("closed", 0.002, side)
        resting = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, book["bids"][-1][0])
        assert (await ex.fetch_order(resting["id"], "BTC/USDT"))["status"] == "open"
        assert (await ex.fetch_balance())["used"]["USDT"] > 0
        await ex.cancel_order(resting["id"], "BTC/USDT")
        canceled = await ex.fetch_order(resting["id"], "BTC/USDT")
        assert (canceled["status"], canceled["filled"]) == ("canceled", 0.0)
        assert (await ex.fetch_balance())["used"]["USDT"] == 0
        with pytest.raises(ccxt_errors.OrderNotFound):
            await ex.cancel_order(resting["id"], "BTC/USDT")


async def test_ccxt_with_a_wrong_secret_gets_kucoins_signature_error(sim: SimProcess) -> None:
    async with ccxt_client(sim, creds=Credentials("sim-key", "not-the-secret", "sim-passphrase")) as ex:
        with pytest.raises(ccxt_errors.AuthenticationError, match="400005"):
            await ex.fetch_balance()


# -- ccxt.pro websockets -----------------------------------------------------------------------------------
async def test_ccxt_pro_watch_tickers_receives_ticker_all(sim: SimProcess) -> None:
    async with ccxt_client(sim, ccxt_pro.kucoin) as ex:
        await ex.load_markets()
        while len(ex.tickers) < 200:  # each await returns only the frame that woke it (reference §B.1)
            await asyncio.wait_for(ex.watch_tickers(), 10)
        t = ex.tickers["BTC/USDT"] if "BTC/USDT" in ex.tickers else next(iter(ex.tickers.values()))
        assert t["bid"] < t["ask"]
        assert next(iter(ex.clients.values())).subscriptions.get("/market/ticker:all") is not None


async def test_ccxt_pro_watch_order_book_syncs_on_level2(sim: SimProcess) -> None:
    async with ccxt_client(sim, ccxt_pro.kucoin) as ex:
        book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 15)
        first = book["nonce"]
        assert book["bids"][0][0] < book["asks"][0][0]
        while book["nonce"] == first:  # live deltas keep applying on top of the snapshot
            book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 15)
        assert book["nonce"] > first and book["bids"][0][0] < book["asks"][0][0]


async def test_ccxt_pro_book_equals_the_rest_snapshot(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*FROZEN)
    async with ccxt_client(sim, ccxt_pro.kucoin) as ex:
        book = await asyncio.wait_for(ex.watch_order_book("ETH/USDT"), 15)  # quiet market: primed deltas
        rest = await ex.fetch_order_book("ETH/USDT")
        assert book["nonce"] == rest["nonce"]
        assert [r[:2] for r in book["bids"]] == rest["bids"] and [r[:2] for r in book["asks"]] == rest["asks"]
        await ex.create_order("ETH/USDT", "market", "buy", rest["asks"][0][1])  # the top ask: deltas follow
        while book["nonce"] == rest["nonce"]:
            book = await asyncio.wait_for(ex.watch_order_book("ETH/USDT"), 15)
        after = await ex.fetch_order_book("ETH/USDT")
        assert book["nonce"] == after["nonce"] and after["asks"][0][0] > rest["asks"][0][0]
        assert [r[:2] for r in book["asks"]] == after["asks"]


# -- KucoinRest ----------------------------------------------------------------------------------------------
async def test_kucoin_rest_markets_fees_tickers_book_balances(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*FROZEN, "--seed", "11", "--fee-discount", "0.25")
    expected = {p.symbol: p.market for p in build_universe(
        SimSettings(seed=11, pairs=60, assets=20, hot_pairs=15, depth_levels=50)).pairs}
    async with rest_client(sim) as rest:
        markets = await rest.load_markets()
        assert {m.symbol for m in markets} == set(expected)
        for m in markets:
            want = expected[m.symbol]
            assert (m.base, m.quote, m.price_tick, m.size_increment, m.min_size, m.min_funds) == (
                want.base, want.quote, want.price_tick, want.size_increment, want.min_size, want.min_funds)
            assert m.taker_fee == m.maker_fee == Decimal("0.00075")  # the account's rate, not allTickers'
        tickers = await rest.fetch_tickers()
        assert len(tickers) == 60 and all(t.bid < t.ask for t in tickers)
        book = await rest.fetch_book("BTC-USDT", 5)
        assert len(book.bids) == len(book.asks) == 5 and book.sequence > 0 and book.snapshot
        assert len((await rest.fetch_book("BTC-USDT", 50)).asks) == 50
        balances = {b.asset: b for b in await rest.fetch_balances()}
        assert balances["USDT"].free == balances["USDT"].total == Decimal(100_000)


# "wire": orders through our own signed request (order_wire.py); "ccxt": through ccxt's request pipeline.
# Both must behave identically.
ORDER_PATHS = pytest.mark.parametrize("orders", ["wire", "ccxt"])


@ORDER_PATHS
@pytest.mark.parametrize("account", ["--classic", "--hf"])
async def test_kucoin_rest_ioc_fill_partial_and_cancel(sim_factory: Callable[..., SimProcess],
                                                       account: str, orders: str) -> None:
    sim = sim_factory(*FROZEN, account, "--fee-discount", "0.25", "--balance", "USDT=10000000")
    async with rest_client(sim, orders=orders) as rest:
        await rest.load_markets()
        (p0, s0), (p1, s1) = (await rest.fetch_book("BTC-USDT", 5)).asks[:2]
        filled = await rest.place_order(buy("fill-1", dec(p0), dec(s0)))  # exactly the top level
        assert filled.status is OrderStatus.FILLED and filled.filled_size == dec(s0)
        (fill,) = filled.fills
        assert fill.price == dec(p0) and fill.fee_asset == "USDT"
        assert fill.fee == dec(p0) * dec(s0) * Decimal("0.00075")
        top = (await rest.fetch_book("BTC-USDT", 5)).asks[0]
        assert top == (p1, s1)  # frozen market: the level we took is gone
        partial = await rest.place_order(buy("part-1", dec(p1), dec(s1) * 2))
        assert partial.status is OrderStatus.PARTIAL and partial.filled_size == dec(s1)
        bid = (await rest.fetch_book("BTC-USDT", 5)).bids[0][0]
        missed = await rest.place_order(buy("miss-1", dec(bid), Decimal("0.001")))
        assert missed.status is OrderStatus.CANCELED and missed.fills == ()
        await rest.cancel_order("BTC-USDT", "miss-1")  # final already: nothing to cancel, no error
        assert (await rest.fetch_order("BTC-USDT", "part-1")) == partial
        with pytest.raises(KucoinOrderNotFound):
            await rest.cancel_order("BTC-USDT", "never-sent")
        with pytest.raises(KucoinOrderNotFound):
            await rest.fetch_order("BTC-USDT", "never-sent")


async def test_kucoin_rest_client_oid_is_idempotent(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*FROZEN)
    async with rest_client(sim) as rest:
        ask = (await rest.fetch_book("BTC-USDT", 5)).asks[0][0]
        order = buy("idem-1", dec(ask), Decimal("0.001"))
        first, twin = await asyncio.gather(rest.place_order(order), rest.place_order(order))
        assert first.status is OrderStatus.FILLED and twin is first  # concurrent calls share one placement
        assert await rest.place_order(order) is first
        count = (await sim.stats())["orders"]
    async with rest_client(sim) as other:  # a restarted process retrying the same client_oid
        again = await other.place_order(order)
        assert again.status is first.status and again.filled_size == first.filled_size
        assert again.fills[0].price == first.fills[0].price
    assert (await sim.stats())["orders"] == count
    orders = await sim.admin("GET", "/_sim/orders")
    assert [o["clientOid"] for o in orders].count("idem-1") == 1


@ORDER_PATHS
async def test_kucoin_rest_429_is_retryable_and_never_doubles_an_order(
        sim_factory: Callable[..., SimProcess], orders: str) -> None:
    sim = sim_factory(*FROZEN)
    async with rest_client(sim, orders=orders) as rest:
        ask = (await rest.fetch_book("BTC-USDT", 5)).asks[0][0]
        await sim.faults(http_429_burst=1)
        with pytest.raises(KucoinRateLimited) as info:
            await rest.fetch_balances()
        assert info.value.retryable and info.value.code == "429000" and isinstance(info.value, VenueError)
        order = buy("rl-1", dec(ask), Decimal("0.001"))
        await sim.faults(http_429_burst=1)
        with pytest.raises(KucoinRateLimited):
            await rest.place_order(order)
        result = await rest.place_order(order)  # the retry: looked up first, then sent once
        assert result.status is OrderStatus.FILLED
    orders = await sim.admin("GET", "/_sim/orders")
    assert [o["clientOid"] for o in orders].count("rl-1") == 1


@ORDER_PATHS
async def test_kucoin_rest_rejections_and_safe_errors(sim_factory: Callable[..., SimProcess], orders: str) -> None:
    sim = sim_factory(*FROZEN)
    async with rest_client(sim, orders=orders) as rest:
        ask = dec((await rest.fetch_book("BTC-USDT", 5)).asks[0][0])
        tiny = await rest.place_order(buy("tiny-1", ask, Decimal("0.000001")))
        assert tiny.status is OrderStatus.REJECTED
        assert tiny.reason == "400100: Order size below the minimum requirement."
        off_tick = await rest.place_order(buy("tick-1", ask + Decimal("0.05"), Decimal("0.001")))
        assert off_tick.status is OrderStatus.REJECTED and "increment" in off_tick.reason
        broke = await rest.place_order(buy("broke-1", ask, Decimal("5")))  # ~475k USDT
        assert broke.status is OrderStatus.REJECTED and broke.reason.startswith("200004")
        await sim.faults(reject_orders=True)
        refused = await rest.place_order(buy("ref-1", ask, Decimal("0.001")))
        assert refused.status is OrderStatus.REJECTED
        assert refused.reason == "400200: Forbidden to place an order"
    bad = Credentials("sim-key", "not-the-secret", "not-the-passphrase")
    async with rest_client(sim, bad, orders=orders) as rest:
        with pytest.raises(KucoinAuthError) as info:
            await rest.load_markets()
        assert not info.value.retryable and info.value.code == "400005"
        assert "not-the-secret" not in str(info.value) and "not-the-passphrase" not in str(info.value)
        with pytest.raises(KucoinAuthError) as info:  # the order itself is signed and refused the same way
            await rest.place_order(buy("bad-sig-1", ask, Decimal("0.001")))
        assert info.value.code == "400005" and "not-the-secret" not in str(info.value)
    assert "bad-sig-1" not in [o["clientOid"] for o in await sim.admin("GET", "/_sim/orders")]
