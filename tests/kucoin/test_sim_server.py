"""The KuCoin simulator (separate process) with raw aiohttp clients: REST shapes, signatures, rate limits,
the websocket protocol with its limits and error frames, level2 sequencing, private pushes, every fault
switch, and the ticker:all push rate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from kucoin_sim_process import CREDS, SimProcess

from cryptoarb.venues.kucoin.signing import Credentials, signed_headers, verify
from cryptoarb.venues.kucoin.sim_frames import MALFORMED

TICKER_ALL = "/market/ticker:all"
SMALL = ("--pairs", "60")  # a quick universe for servers a test owns
Frame = dict[str, Any]


# -- signing ---------------------------------------------------------------------------------------------
def _b64_hmac(key: str, msg: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), msg.encode(), hashlib.sha256).digest()).decode()


def test_signed_headers_follow_kucoins_formula() -> None:
    h = signed_headers(CREDS, "GET", "/api/v1/accounts?type=trade", "", 1_729_100_692_873)
    assert h["KC-API-SIGN"] == _b64_hmac("sim-secret", "1729100692873GET/api/v1/accounts?type=trade")
    assert h["KC-API-PASSPHRASE"] == _b64_hmac("sim-secret", "sim-passphrase")
    assert h["KC-API-KEY"] == "sim-key" and h["KC-API-KEY-VERSION"] == "2"
    assert verify(h, "GET", "/api/v1/accounts?type=trade", "", CREDS, 1_729_100_692_873) is None
    v1 = signed_headers(CREDS, "POST", "/api/v1/orders", '{"a":1}', 5, key_version="1")
    assert v1["KC-API-PASSPHRASE"] == "sim-passphrase"
    assert verify(v1, "POST", "/api/v1/orders", '{"a":1}', CREDS, 5) is None


@pytest.mark.parametrize(("tamper", "code"), [
    (lambda h: h.pop("KC-API-SIGN"), "400001"),
    (lambda h: h.update({"KC-API-TIMESTAMP": "1000"}), "400002"),
    (lambda h: h.update({"KC-API-KEY": "other"}), "400003"),
    (lambda h: h.update({"KC-API-PASSPHRASE": "x"}), "400004"),
    (lambda h: h.update({"KC-API-SIGN": _b64_hmac("wrong", "x")}), "400005"),
])
def test_verify_reports_kucoins_error_codes(tamper: Callable[[dict[str, str]], Any], code: str) -> None:
    now = 1_729_100_692_873
    h = signed_headers(CREDS, "GET", "/api/v1/accounts", "", now)
    tamper(h)
    failure = verify(h, "GET", "/api/v1/accounts", "", CREDS, now)
    assert failure is not None and failure.code == code


# -- helpers -----------------------------------------------------------------------------------------------
@asynccontextmanager
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def get(http: aiohttp.ClientSession, sim: SimProcess, path: str) -> tuple[int, Any, Any]:
    async with http.get(sim.url + path) as resp:
        return resp.status, await resp.json(), resp.headers


async def bullet(http: aiohttp.ClientSession, sim: SimProcess, *, private: bool = False) -> dict[str, Any]:
    if private:
        status, body, _ = await sim.signed(http, "POST", "/api/v1/bullet-private")
    else:
        async with http.post(sim.url + "/api/v1/bullet-public") as resp:
            status, body = resp.status, await resp.json()
    assert status == 200 and body["code"] == "200000", body
    return body["data"]


async def connect(http: aiohttp.ClientSession, sim: SimProcess, *, private: bool = False,
                  connect_id: str = "cid-1", token: str | None = None) -> aiohttp.ClientWebSocketResponse:
    """A socket past KuCoin's welcome frame."""
    data = await bullet(http, sim, private=private)
    endpoint = data["instanceServers"][0]["endpoint"]
    ws = await http.ws_connect(endpoint, params={"token": token or data["token"], "connectId": connect_id})
    welcome = orjson.loads((await ws.receive(timeout=5)).data)
    assert welcome == {"id": connect_id, "type": "welcome"}
    return ws


async def next_frame(ws: aiohttp.ClientWebSocketResponse, want: Callable[[Frame], bool],
                     timeout: float = 5.0) -> Frame:
    """The first frame ``want`` accepts (others are skipped); fails on close or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - loop.time()))
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), f"socket ended: {msg}"
        frame = orjson.loads(msg.data)
        if want(frame):
            return frame


def typed(kind: str, rid: str | None = None) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == kind and (rid is None or f.get("id") == rid)


def control(f: Frame) -> bool:
    return f.get("type") != "message"


async def subscribe(ws: aiohttp.ClientWebSocketResponse, rid: str, topic: str, **extra: Any) -> Frame:
    """Subscribe with ``response: true``; the ack or error frame answering it."""
    await ws.send_str(orjson.dumps({"id": rid, "type": "subscribe", "topic": topic, "response": True,
                                    **extra}).decode())
    return await next_frame(ws, lambda f: control(f) and f.get("id") == rid)


async def symbols(http: aiohttp.ClientSession, sim: SimProcess) -> list[str]:
    _, body, _ = await get(http, sim, "/api/v2/symbols")
    return [s["symbol"] for s in body["data"]]


# -- REST --------------------------------------------------------------------------------------------------
async def test_public_rest_answers_in_kucoins_shapes(sim: SimProcess) -> None:
    async with session() as http:
        status, ts, headers = await get(http, sim, "/api/v1/timestamp")
        assert status == 200 and ts["code"] == "200000" and abs(ts["data"] - time.time() * 1000) < 5000
        assert {"gw-ratelimit-limit", "gw-ratelimit-remaining", "gw-ratelimit-reset"} <= set(headers)
        _, syms, _ = await get(http, sim, "/api/v2/symbols")
        assert len(syms["data"]) == 1250
        btc = next(s for s in syms["data"] if s["symbol"] == "BTC-USDT")
        assert btc["baseIncrement"] == "0.00000001" and btc["priceIncrement"] == "0.1"
        assert btc["baseMinSize"] == "0.00001" and btc["minFunds"] == "0.1" and btc["enableTrading"] is True
        _, cur, _ = await get(http, sim, "/api/v3/currencies")
        assert {"USDT", "BTC", "ETH", "KCS"} <= {c["currency"] for c in cur["data"]}
        _, tickers, _ = await get(http, sim, "/api/v1/market/allTickers")
        rows = tickers["data"]["ticker"]
        assert len(rows) == 1250 and all(float(r["buy"]) < float(r["sell"]) for r in rows)
        assert {"takerFeeRate", "makerFeeRate", "takerCoefficient", "bestBidSize", "vol", "last"} <= set(
            rows[0])
        _, book, _ = await get(http, sim, "/api/v1/market/orderbook/level2_20?symbol=ETH-USDT")
        bids = [float(p) for p, _ in book["data"]["bids"]]
        asks = [float(p) for p, _ in book["data"]["asks"]]
        assert len(bids) == len(asks) == 20 and bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0] < asks[0] and book["data"]["sequence"].isdigit()
        status, missing, _ = await get(http, sim, "/api/v1/market/orderbook/level2_20?symbol=NOPE-USDT")
        assert status == 400 and missing["code"] == "400100"


async def test_private_requests_need_kucoins_signature(sim: SimProcess) -> None:
    async with session() as http:
        async with http.get(sim.url + "/api/v1/accounts") as resp:
            assert resp.status == 401 and (await resp.json())["code"] == "400001"
        for creds, code in ((Credentials("sim-key", "wrong-secret", "sim-passphrase"), "400005"),
                            (Credentials("sim-key", "sim-secret", "wrong-pass"), "400004"),
                            (Credentials("nobody", "sim-secret", "sim-passphrase"), "400003")):
            status, body, _ = await sim.signed(http, "GET", "/api/v1/accounts", creds=creds)
            assert (status, body["code"]) == (401, code)
        # right passphrase, wrong signature: KuCoin's signature error
        headers = signed_headers(CREDS, "GET", "/api/v1/accounts?type=main", "", int(time.time() * 1000))
        async with http.get(sim.url + "/api/v1/accounts?type=trade", headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 401 and body == {"code": "400005", "msg": "Invalid KC-API-SIGN"}
        stale = signed_headers(CREDS, "GET", "/api/v1/accounts", "", int(time.time() * 1000) - 60_000)
        async with http.get(sim.url + "/api/v1/accounts", headers=stale) as resp:
            assert (await resp.json())["code"] == "400002"
        status, body, _ = await sim.signed(http, "GET", "/api/v1/accounts?type=trade")
        assert status == 200 and {"USDT", "BTC"} <= {a["currency"] for a in body["data"]}
        assert all(a["type"] == "trade" for a in body["data"])
        status, body, _ = await sim.signed(http, "GET", "/api/v1/accounts?type=trade_hf")
        assert body["data"] == []  # ccxt keeps only rows of the type it asked for
        status, body, _ = await sim.signed(http, "GET", "/api/v1/hf/accounts/opened")
        assert body["data"] is False


async def test_hf_account_mode(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL, "--hf")
    async with session() as http:
        _, opened, _ = await sim.signed(http, "GET", "/api/v1/hf/accounts/opened")
        assert opened["data"] is True
        _, hf, _ = await sim.signed(http, "GET", "/api/v1/accounts?type=trade_hf")
        assert hf["data"] and all(a["type"] == "trade_hf" for a in hf["data"])
        body = orjson.dumps({"clientOid": "hf-1", "side": "buy", "symbol": "BTC-USDT", "type": "market",
                             "funds": "100"}).decode()
        status, placed, _ = await sim.signed(http, "POST", "/api/v1/hf/orders/sync", body)
        assert status == 200 and placed["data"]["status"] == "done" and float(placed["data"]["dealSize"]) > 0
        _, detail, _ = await sim.signed(http, "GET", "/api/v1/hf/orders/client-order/hf-1?symbol=BTC-USDT")
        assert detail["data"]["active"] is False and float(detail["data"]["dealFunds"]) <= 100


async def test_rate_limit_pools_answer_429000(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL, "--quota-public", "12", "--quota-window", "2")
    async with session() as http:
        remaining = []
        for _ in range(4):  # /api/v1/timestamp weighs 3
            status, _, headers = await get(http, sim, "/api/v1/timestamp")
            assert status == 200 and headers["gw-ratelimit-limit"] == "12"
            remaining.append(int(headers["gw-ratelimit-remaining"]))
        assert remaining == [9, 6, 3, 0]
        status, body, headers = await get(http, sim, "/api/v1/timestamp")
        assert status == 429 and body["code"] == "429000" and 0 <= int(headers["gw-ratelimit-reset"]) <= 2000
        # the pool resets when its window ends
        deadline = time.monotonic() + 5
        while (await get(http, sim, "/api/v1/timestamp"))[0] == 429:
            assert time.monotonic() < deadline, "the pool never reset"
            await asyncio.sleep(0.1)


# -- websocket protocol ------------------------------------------------------------------------------------
async def test_bullet_welcome_ping_pong_and_ack(sim: SimProcess) -> None:
    async with session() as http:
        data = await bullet(http, sim)
        server = data["instanceServers"][0]
        assert server["endpoint"] == f"ws://127.0.0.1:{sim.port}/"
        assert (server["pingInterval"], server["pingTimeout"]) == (18000, 10000) and len(data["token"]) > 64
        ws = await connect(http, sim, connect_id="hQvf8jkno")
        await ws.send_str('{"id":"1545910590801","type":"ping"}')
        assert await next_frame(ws, control) == {"id": "1545910590801", "type": "pong"}
        assert await subscribe(ws, "7", TICKER_ALL) == {"id": "7", "type": "ack"}
        await ws.send_str(orjson.dumps({"id": 8, "type": "unsubscribe", "topic": TICKER_ALL,
                                        "response": True}).decode())
        assert await next_frame(ws, control) == {"id": "8", "type": "ack"}
        await ws.send_str('{"id":"9","type":"openTunnel"}')
        assert await next_frame(ws, control) == {"id": "9", "type": "error", "code": 415,
                                                 "data": "type is not supported"}
        await ws.close()


async def test_ticker_all_pushes_kucoin_frames(sim: SimProcess) -> None:
    async with session() as http:
        ws = await connect(http, sim)
        await subscribe(ws, "1", TICKER_ALL)
        msg = await ws.receive(timeout=5)
        assert msg.data.startswith('{"topic":"/market/ticker:all","type":"message","subject":"')
        frame = orjson.loads(msg.data)
        assert set(frame["data"]) == {"bestAsk", "bestAskSize", "bestBid", "bestBidSize", "price", "sequence",
                                      "size", "time"}
        assert float(frame["data"]["bestBid"]) < float(frame["data"]["bestAsk"])
        await ws.close()


async def test_subscription_limits_answer_kucoins_509_frames(sim: SimProcess) -> None:
    async with session() as http:
        names = await symbols(http, sim)
        ws = await connect(http, sim)
        err = await subscribe(ws, "a", "/market/ticker:" + ",".join(names[:101]))
        assert err == {"id": "a", "type": "error", "code": 509,
                       "data": "exceed max subscription count limitation of 100 per time"}
        for i in range(3):
            ack = await subscribe(ws, f"b{i}", "/spotMarket/level1:" + ",".join(names[100 * i:100 * (i + 1)]))
            assert ack == {"id": f"b{i}", "type": "ack"}
        err = await subscribe(ws, "c", f"/market/ticker:{names[300]}")
        assert err == {"id": "c", "type": "error", "code": 509,
                       "data": "exceed max subscription count limitation of 300 per session"}
        err = await subscribe(ws, "d", "/market/nope:BTC-USDT")
        assert err["code"] == 404 and err["data"] == "topic /market/nope:BTC-USDT is not found"
        await ws.close()


async def test_client_message_rate_limit(sim: SimProcess) -> None:
    async with session() as http:
        ws = await connect(http, sim)
        for i in range(101):
            await ws.send_str(f'{{"id":"p{i}","type":"ping"}}')
        answers = [await next_frame(ws, control) for _ in range(101)]
        assert [a["type"] for a in answers[:100]] == ["pong"] * 100
        assert answers[100] == {"id": "p100", "type": "error", "code": 509,
                                "data": "exceed max permits per 10 seconds"}
        await ws.close()


async def test_private_topic_needs_a_private_token(sim: SimProcess) -> None:
    async with session() as http:
        ws = await connect(http, sim)
        err = await subscribe(ws, "1", "/spotMarket/tradeOrdersV2", privateChannel=True)
        assert err["type"] == "error" and err["code"] == 401
        await ws.close()


async def test_level2_sequence_is_shared_with_the_rest_snapshot(sim: SimProcess) -> None:
    sym = "BTC-USDT"
    async with session() as http:
        ws = await connect(http, sim)
        assert (await subscribe(ws, "1", f"/market/level2:{sym}"))["type"] == "ack"
        l2 = lambda f: f.get("subject") == "trade.l2update"  # noqa: E731
        cached = [(await next_frame(ws, l2))["data"] for _ in range(6)]  # >= 6 arrive at once (priming)
        for prev, cur in itertools.pairwise(cached):
            assert cur["sequenceStart"] == prev["sequenceEnd"] + 1
        _, snap, _ = await get(http, sim, f"/api/v1/market/orderbook/level2_100?symbol={sym}")
        seq = int(snap["data"]["sequence"])
        book = {side: dict(snap["data"][side]) for side in ("bids", "asks")}

        def apply(delta: dict[str, Any]) -> None:
            nonlocal seq
            if delta["sequenceEnd"] <= seq:
                return
            assert delta["sequenceStart"] <= seq + 1, "gap after the snapshot"
            for side in ("bids", "asks"):
                for price, size, _ in delta["changes"][side]:
                    if price == "0":
                        continue
                    if size == "0":
                        book[side].pop(price, None)
                    else:
                        book[side][price] = size
            seq = delta["sequenceEnd"]

        for delta in cached:
            apply(delta)
        for _ in range(10):  # live deltas keep the rebuilt book in step
            apply((await next_frame(ws, l2, timeout=10))["data"])
        _, snap2, _ = await get(http, sim, f"/api/v1/market/orderbook/level2_100?symbol={sym}")
        target = int(snap2["data"]["sequence"])
        while seq < target:
            apply((await next_frame(ws, l2, timeout=10))["data"])
        assert seq == target
        assert book["bids"] == dict(snap2["data"]["bids"])
        assert book["asks"] == dict(snap2["data"]["asks"])
        await ws.close()


async def test_depth_level1_and_symbol_ticker_topics(sim: SimProcess) -> None:
    async with session() as http:
        ws = await connect(http, sim)
        for rid, topic in (("1", "/spotMarket/level2Depth5:BTC-USDT"),
                           ("2", "/spotMarket/level2Depth50:BTC-USDT"),
                           ("3", "/spotMarket/level1:BTC-USDT"), ("4", "/market/ticker:BTC-USDT,ETH-USDT")):
            assert (await subscribe(ws, rid, topic))["type"] == "ack"
        d5 = await next_frame(ws, lambda f: f.get("topic") == "/spotMarket/level2Depth5:BTC-USDT", 10)
        assert d5["subject"] == "level2" and len(d5["data"]["bids"]) == len(d5["data"]["asks"]) == 5
        d50 = await next_frame(ws, lambda f: f.get("topic") == "/spotMarket/level2Depth50:BTC-USDT", 10)
        assert len(d50["data"]["asks"]) == 50 and "timestamp" in d50["data"]
        l1 = await next_frame(ws, lambda f: f.get("subject") == "level1", 10)
        assert l1["topic"] == "/spotMarket/level1:BTC-USDT" and len(l1["data"]["bids"]) == 2
        tk = await next_frame(ws, lambda f: f.get("subject") == "trade.ticker", 10)
        assert tk["topic"] in ("/market/ticker:BTC-USDT", "/market/ticker:ETH-USDT")
        await ws.close()


async def test_private_order_and_balance_pushes(sim: SimProcess) -> None:
    async with session() as http:
        ws = await connect(http, sim, private=True, connect_id="private")
        for rid, topic in (("1", "/spotMarket/tradeOrdersV2"), ("2", "/spotMarket/tradeOrders"),
                           ("3", "/account/balance")):
            assert (await subscribe(ws, rid, topic, privateChannel=True))["type"] == "ack"
        body = orjson.dumps({"clientOid": "push-1", "side": "buy", "symbol": "BTC-USDT", "type": "market",
                             "size": "0.001"}).decode()
        status, placed, _ = await sim.signed(http, "POST", "/api/v1/orders", body)
        assert status == 200
        order_id = placed["data"]["orderId"]
        v2: list[str] = []
        v1: list[str] = []
        balances: set[str] = set()
        while "filled" not in v2 or "filled" not in v1 or len(balances) < 2:
            f = await next_frame(ws, lambda f: f.get("type") == "message")
            if f["topic"] == "/spotMarket/tradeOrdersV2":
                assert f["subject"] == "orderChange" and f["channelType"] == "private"
                assert f["data"]["orderId"] == order_id and f["data"]["clientOid"] == "push-1"
                v2.append(f["data"]["type"])
            elif f["topic"] == "/spotMarket/tradeOrders":
                v1.append(f["data"]["type"])
            else:
                assert f["subject"] == "account.balance"
                assert f["data"]["relationContext"]["orderId"] == order_id
                balances.add(f["data"]["currency"])
        assert v2[0] == "received" and "match" in v2 and v2[-1] == "filled"
        assert "received" not in v1 and v1[-1] == "filled"
        assert balances == {"USDT", "BTC"}
        await ws.close()


# -- faults ------------------------------------------------------------------------------------------------
async def test_cli_fault_flags_reach_the_server(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL, "--fault-drop-every", "30", "--fault-ignore-pings", "--fault-stall-depth",
                      "--fault-expire-tokens-every", "40", "--fault-level2-gap-every", "3",
                      "--fault-malformed-every", "50", "--fault-429-burst", "2", "--fault-reject-orders")
    assert await sim.admin("GET", "/_sim/faults") == {
        "drop_every_s": 30.0, "ignore_pings": True, "stall_depth": True, "expire_tokens_every_s": 40.0,
        "level2_gap_every": 3, "malformed_every_s": 50.0, "http_429_burst": 2, "reject_orders": True}


async def test_fault_drop_connections(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL)
    async with session() as http:
        ws = await connect(http, sim)
        await sim.faults(drop_every_s=0.2)
        msg = await ws.receive(timeout=5)
        while msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
        assert (await sim.stats())["fault_drops"] >= 1


async def test_fault_ignore_pings(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL)
    async with session() as http:
        ws = await connect(http, sim)
        await sim.faults(ignore_pings=True)
        await ws.send_str('{"id":"p1","type":"ping"}')
        # frames are answered in order: a pong would come before this ack
        assert await subscribe(ws, "s1", TICKER_ALL) == {"id": "s1", "type": "ack"}
        await sim.faults(ignore_pings=False)
        await ws.send_str('{"id":"p2","type":"ping"}')
        assert await next_frame(ws, control) == {"id": "p2", "type": "pong"}
        await ws.close()


async def test_fault_expire_tokens(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL)
    async with session() as http:
        data = await bullet(http, sim)
        ws = await connect(http, sim, token=data["token"])
        await sim.faults(expire_tokens_now=True)
        err = await next_frame(ws, control)
        assert err["type"] == "error" and err["code"] == 401 and err["data"] == "token is expired"
        assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        endpoint = data["instanceServers"][0]["endpoint"]
        again = await http.ws_connect(endpoint, params={"token": data["token"], "connectId": "x"})
        refused = orjson.loads((await again.receive(timeout=5)).data)
        assert refused == {"id": "x", "type": "error", "code": 401, "data": "token is expired"}
        fresh = await connect(http, sim)  # a new bullet works
        await fresh.close()
        await again.close()
        await sim.faults(expire_tokens_every_s=0.3)
        data = await bullet(http, sim)
        ws = await http.ws_connect(data["instanceServers"][0]["endpoint"], params={"token": data["token"]})
        err = await next_frame(ws, typed("error"))  # a welcome comes first unless the token died already
        assert err["data"] == "token is expired"


async def test_fault_level2_sequence_gaps(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL, "--speed", "4", "--level2-prime", "0")
    async with session() as http:
        await sim.faults(level2_gap_every=2)
        ws = await connect(http, sim)
        await subscribe(ws, "1", "/market/level2:BTC-USDT")
        l2 = lambda f: f.get("subject") == "trade.l2update"  # noqa: E731
        prev = (await next_frame(ws, l2, 10))["data"]
        gaps = 0
        while gaps == 0:
            cur = (await next_frame(ws, l2, 10))["data"]
            gaps += cur["sequenceStart"] > prev["sequenceEnd"] + 1
            prev = cur
        await ws.close()


async def test_fault_malformed_frames(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL)
    async with session() as http:
        ws = await connect(http, sim)
        await sim.faults(malformed_every_s=0.2)
        while True:
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.TEXT
            try:
                orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                assert msg.data.encode() == MALFORMED
                break
        await ws.close()


async def test_fault_429_burst(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL)
    async with session() as http:
        await sim.faults(http_429_burst=2)
        for _ in range(2):
            status, body, _ = await get(http, sim, "/api/v1/market/allTickers")
            assert (status, body["code"]) == (429, "429000")
        status, body, _ = await get(http, sim, "/api/v1/market/allTickers")
        assert status == 200


async def test_fault_reject_orders(sim_factory: Callable[..., SimProcess]) -> None:
    sim = sim_factory(*SMALL)
    order = orjson.dumps({"clientOid": "r-1", "side": "buy", "symbol": "BTC-USDT", "type": "market",
                          "funds": "10"}).decode()
    async with session() as http:
        await sim.faults(reject_orders=True)
        status, body, _ = await sim.signed(http, "POST", "/api/v1/orders", order)
        assert (status, body) == (400, {"code": "400200", "msg": "Forbidden to place an order"})
        await sim.faults(reject_orders=False)
        status, body, _ = await sim.signed(http, "POST", "/api/v1/orders", order)
        assert status == 200 and body["data"]["orderId"]


async def test_admin_rejects_unknown_faults(sim: SimProcess) -> None:
    async with session() as http, http.post(sim.url + "/_sim/faults", json={"explode": True}) as resp:
        assert resp.status == 400 and "unknown fault" in (await resp.json())["error"]


# -- throughput --------------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_ticker_all_with_ticker_always_pushes_every_symbol(sim_factory: Callable[..., SimProcess]) -> None:
    """Every pair is pushed on ticker:all. Throughput (10k+ msg/s) is measured in benchmarks/ws_loopback.py."""
    sim = sim_factory("--ticker-always", "--ticker-hz", "10")
    async with session() as http:
        ws = await connect(http, sim)
        await subscribe(ws, "1", TICKER_ALL)
        await ws.receive(timeout=5)
        subjects: set[str] = set()
        while len(subjects) < 1250:
            frame = orjson.loads((await ws.receive(timeout=5)).data)
            assert frame["topic"] == TICKER_ALL and frame["type"] == "message"
            subjects.add(frame["subject"])
        await ws.close()
    assert len(subjects) == 1250
