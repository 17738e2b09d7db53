"""The admin API the Coinbase and BL3P simulators share (``/_sim/stats``, ``/_sim/step``, ``/_sim/faults``),
each with its own faults, and their ``/_sim/book``."""

from __future__ import annotations

from typing import Any

import aiohttp


async def call(server: Any, method: str, path: str, body: object = None) -> tuple[int, Any]:
    url = server.url.replace("ws://", "http://") + path
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body) as resp:
        return resp.status, await resp.json()


async def test_stats_and_step(coinbase_server, bl3p_server):
    for server, counters in ((coinbase_server, ["connections", "messages_in", "messages_out", "errors", "rounds",
                                                "skipped", "dropped"]),
                             (bl3p_server, ["connections", "books_out", "trades_out", "rounds", "dropped"])):
        status, stats = await call(server, "GET", "/_sim/stats")
        assert status == 200 and list(stats) == [*counters, "live_connections", "steps"]
        steps = stats["steps"]
        status, stepped = await call(server, "POST", "/_sim/step", {"steps": 3})
        assert status == 200 and stepped["steps"] == steps + 3 == server.world.steps
        assert stepped["time"] == server.world.time > 0
        assert (await call(server, "POST", "/_sim/step"))[1]["steps"] == steps + 4  # one by default


async def test_coinbase_faults(coinbase_server):
    status, out = await call(coinbase_server, "POST", "/_sim/faults", {"drop_connections": True,
                                                                       "skip": {"BTC-USD": 2}})
    assert (status, out) == (200, {"dropped": 0, "skip": {"BTC-USD": 2}})
    assert await call(coinbase_server, "POST", "/_sim/faults", {"skip": {"NOPE-USD": 1}}) == (
        400, {"error": "unknown product NOPE-USD"})
    status, book = await call(coinbase_server, "GET", "/_sim/book/BTC-USD")
    assert status == 200 and book["product_id"] == "BTC-USD" and book["bids"] and book["asks"]
    assert (await call(coinbase_server, "GET", "/_sim/book/NOPE-USD"))[0] == 404


async def test_bl3p_faults(bl3p_server):
    assert await call(bl3p_server, "POST", "/_sim/faults", {"silence": {"BTC-EUR": True}}) == (
        200, {"silent": ["BTCEUR"]})
    assert await call(bl3p_server, "POST", "/_sim/faults", {"drop_connections": True,
                                                            "silence": {"BTC-EUR": False}}) == (
        200, {"dropped": 0, "silent": []})
    assert await call(bl3p_server, "POST", "/_sim/faults", {"silence": {"ETH-EUR": True}}) == (
        400, {"error": "unknown market ETH-EUR"})
    status, book = await call(bl3p_server, "GET", "/_sim/book/btceur")
    assert status == 200 and book["marketplace"] == "BTCEUR" and book["bids"] and book["asks"]
    assert (await call(bl3p_server, "GET", "/_sim/book/ETHEUR"))[0] == 404
