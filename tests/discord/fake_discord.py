"""A loopback fake of a Discord webhook endpoint, plus event factories and fake controls for the tests.

:class:`FakeDiscord` listens on 127.0.0.1 (a random port), records every POST (JSON or multipart with
``payload_json`` and ``files[n]``) and answers from a script of :class:`Reply` (default ``204``). Like
Discord it sends JSON with exactly ``Content-Type: application/json``. A reply with ``hang=True``
never answers until the fake closes: a server that accepts connections and then goes silent.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from cryptoarb.commands import (
    OpportunityRow,
    PnlSummary,
    RiskState,
    TradeRow,
    UnknownMarket,
    UnknownVenue,
    period_start,
)
from cryptoarb.config import Settings, masked
from cryptoarb.model import (
    Execution,
    Fill,
    Notice,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    PlannedLeg,
    Rejection,
    RejectReason,
    Side,
)
from cryptoarb.status import BestOpportunity, EngineStatus

WEBHOOK_ID = "123456789012345678"
WEBHOOK_TOKEN = "Tok3n-" + "s3cr3t" * 11
WEBHOOK_PATH = f"/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 204
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    at: float
    payload: dict[str, Any]
    files: dict[str, bytes]
    status: int


def rate_limited(retry_after: float) -> Reply:
    return Reply(429, {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
                 {"Retry-After": str(max(1, round(retry_after))), "X-RateLimit-Scope": "shared"})


class FakeDiscord:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.received: list[Received] = []
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)  # the path is a secret
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}{WEBHOOK_PATH}"
        return self.url

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return [embed for r in self.accepted for embed in r.payload.get("embeds", [])]

    async def wait_for(self, predicate: Callable[[FakeDiscord], bool], timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        payload, files = await _read(request)
        reply = self.script.popleft() if self.script else self.default
        loop = asyncio.get_running_loop()
        async with self._changed:
            self.received.append(Received(loop.time(), payload, files, 0 if reply.hang else reply.status))
            self._changed.notify_all()
        if reply.hang:
            await self._release.wait()
            return web.Response(status=503)
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.Response(status=reply.status, body=json.dumps(reply.body).encode(),
                            headers={**reply.headers, "Content-Type": "application/json"})


async def _read(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    if not request.content_type.startswith("multipart/"):
        return await request.json(), {}
    payload: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    reader = await request.multipart()
    async for part in reader:
        data = await part.read()  # type: ignore[union-attr]
        if part.name == "payload_json":
            payload = json.loads(data)
        elif part.name:
            files[part.name] = bytes(data)
    return payload, files


def refused_url() -> str:
    """A loopback URL where nothing listens: every connection is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


# -- events --------------------------------------------------------------------------------------

PATH = ("USDT", "BTC", "ETH", "USDT")


def planned_legs() -> tuple[PlannedLeg, ...]:
    d = Decimal
    return (
        PlannedLeg("kucoin", "BTC-USDT", Side.BUY, d("65000"), d("0.0015"), d("97.5"), d("0.0015"),
                   d("0.0975"), "USDT", "USDT", "BTC", 12.0),
        PlannedLeg("kucoin", "ETH-BTC", Side.BUY, d("0.05"), d("0.03"), d("0.0015"), d("0.03"), d("0"), "BTC",
                   "BTC", "ETH", 8.0),
        PlannedLeg("kucoin", "ETH-USDT", Side.SELL, d("3300"), d("0.03"), d("0.03"), d("99.0"), d("0.099"),
                   "USDT", "ETH", "USDT", 5.0),
    )


def opportunity(i: int = 1, bps: float = 15.0, profit_usd: float = 0.5) -> Opportunity:
    return Opportunity(f"op{i:07d}-c3", 3, "triangular", PATH, planned_legs(), Decimal("97.5"),
                       Decimal("98.0"), Decimal("0.5"), profit_usd, bps, 100.0 + i)


def execution(i: int = 1, *, fail_last: bool = False, realized_usd: float = 0.42) -> Execution:
    opp = opportunity(i)
    results = []
    for index, leg in enumerate(opp.legs):
        order = Order(f"{opp.id}-{index}", opp.id, index, leg.venue, leg.symbol, leg.side, leg.limit_price,
                      leg.size, 100.0)
        if fail_last and index == len(opp.legs) - 1:
            results.append(OrderResult(order, OrderStatus.REJECTED, reason="insufficient liquidity"))
            continue
        fill = Fill(order.client_oid, opp.id, index, leg.venue, leg.symbol, leg.side, leg.limit_price,
                    leg.size, leg.fee, leg.fee_asset, 100.05)
        results.append(OrderResult(order, OrderStatus.FILLED, (fill,)))
    return Execution(opp, tuple(results), Decimal("0.42"), realized_usd, 0.2, at=100.1)


def notice(kind: str = "risk", message: str = "daily loss limit reached", **fields: str) -> Notice:
    return Notice(kind, message, at=100.0, fields=dict(fields))


def rejection(i: int = 1, reason: RejectReason = RejectReason.INSUFFICIENT_DEPTH) -> Rejection:
    return Rejection(i, PATH, reason, "", 3.0, 100.0)


# -- engine controls -----------------------------------------------------------------------------

def status_snapshot(**overrides: Any) -> EngineStatus:
    values: dict[str, Any] = dict(
        mode="paper", venues=("kucoin",), uptime_s=3725.0, updates=120_000, updates_per_s=400.0,
        books_tradeable=1100, books_total=1250, opportunities_detected=42, opportunities_executed=7,
        rejected_by_reason={"stale_book": 10, "below_min_profit": 5}, trades=21, realized_pnl_usd=3.25,
        loop_lag_ms_p50=0.4, loop_lag_ms_p99=2.5, loop_lag_ms_max=9.0, db_path="data/x.sqlite",
        best=(BestOpportunity(("USDT", "BTC", "USDT"), "kucoin", 12.5, 0.3),),
        balances={"kucoin": {"USDT": 10_000.0, "BTC": 0.15}})
    values.update(overrides)
    return EngineStatus(**values)


class FakeControls:
    """A small real EngineControls: state in plain attributes, changes recorded."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.markets = ["kucoin:BTC-USDT", "kucoin:ETH-USDT", "kucoin:ETH-BTC"]
        self.paused: set[str] = set()
        self.killed: str | None = None
        self.actors: list[str] = []
        self.settings = settings or Settings()
        self.extra_config: dict[str, Any] = {}

    async def status(self) -> EngineStatus:
        return status_snapshot()

    async def pnl(self, period: str) -> PnlSummary:
        return PnlSummary(period, period_start(period, 200_000.0),
                          {"today": 1.5, "24h": 2.0, "7d": -4.0, "all": 10.0}[period], 3, 0.25, "fake")

    async def pnl_points(self, period: str) -> list[tuple[float, float]]:
        return [(100.0, 1.0), (200.0, -0.5), (300.0, 1.0)]

    async def balances(self, venue: str | None) -> dict[str, dict[str, float]]:
        data = {"kucoin": {"USDT": 10_000.0, "BTC": 0.15}, "coinbase": {"USDC": 500.0}}
        if venue is None:
            return data
        if venue not in data:
            raise UnknownVenue(f"unknown venue {venue!r}")
        return {venue: data[venue]}

    async def opportunities(self, n: int) -> list[OpportunityRow]:
        path = ("USDT", "BTC", "USDT")
        return [OpportunityRow(path, "kucoin", 10.0 + i, 0.1 * i, f"op{i}") for i in range(n)]

    async def trades(self, n: int) -> list[TradeRow]:
        return [TradeRow(f"op{i}", ("USDT", "BTC", "USDT"), 0.5, 0.1, "paper", 100.0 + i) for i in range(n)]

    async def watchlist(self) -> list[str]:
        return ["BTC-USDT", "ETH-USDT"]

    async def risk(self) -> RiskState:
        return RiskState(self.killed, tuple(sorted(self.paused)), {"kucoin:ETH-BTC": 3.0}, 1,
                         {"max_notional_usd": 2000.0})

    def _resolve(self, market: str) -> list[str]:
        found = [m for m in self.markets if m.endswith(":" + market.upper()) or m == market]
        if not found:
            raise UnknownMarket(f"unknown market {market!r}")
        return found

    async def pause(self, market: str | None, actor: str) -> list[str]:
        keys = self._resolve(market) if market else list(self.markets)
        self.paused.update(keys)
        self.actors.append(actor)
        return keys

    async def resume(self, market: str | None, actor: str) -> list[str]:
        keys = [k for k in self._resolve(market) if k in self.paused] if market else sorted(self.paused)
        self.paused.difference_update(keys)
        self.actors.append(actor)
        return keys

    async def kill(self, reason: str) -> str:
        self.killed = self.killed or reason
        return self.killed

    async def config(self) -> dict[str, Any]:
        return {**masked(self.settings), **self.extra_config}
