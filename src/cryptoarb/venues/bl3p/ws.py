"""BL3P public order books over its websockets: one socket per market, the channel in the URL.

BL3P sends the whole book on every change and nothing else: no subscribe, no application ping, no
sequence. So :class:`Bl3pMarketData`

- opens ``{url}/1/{MARKET}/orderbook`` for each market and turns every frame into a full-book
  ``BookUpdate`` (its ``sequence`` is our own per-market counter);
- keeps the socket honest with websocket-level pings (``ping_interval_s``; a pong missing for as long
  means a dead connection) and, optionally, a staleness bound (``stale_after_s``: a market that pushes
  nothing this long is reconnected; off by default, since a quiet BL3P book is legitimately silent);
- after any failure reports the market's book through ``on_gap`` (it can't be trusted until a new frame
  arrives) and reconnects with a jittered exponential backoff.

Each frame is a complete book, so a dropped frame never corrupts the book: the next one replaces it.
Optionally ``trades`` streams each market's trades to ``on_trade``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp

from cryptoarb.model import BookUpdate, Notice
from cryptoarb.venues.bl3p.codec import (
    VENUE,
    WS_URL,
    CodecError,
    Trade,
    book_update,
    decode_orderbook,
    decode_trade,
    orderbook_url,
    trades_url,
)
from cryptoarb.venues.kucoin.limits import Backoff
from cryptoarb.venues.streaming import BookFeed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bl3pWsOptions:
    ping_interval_s: float = 15.0
    stale_after_s: float | None = None
    connect_timeout_s: float = 10.0
    trades: bool = False
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.5


class _SessionDead(Exception):
    pass


_EXPECTED = (aiohttp.ClientError, OSError, TimeoutError, CodecError, _SessionDead)
_DEAD = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


class _Market:
    __slots__ = ("frames", "seq", "symbol", "synced")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.seq = 0
        self.synced = False
        self.frames = 0


class Bl3pMarketData(BookFeed):
    """BL3P books for the engine; ``on_updates`` gets each frame as a one-update batch, synchronously."""

    expected = _EXPECTED
    stream_name = "bl3p-md"

    def __init__(self, session: aiohttp.ClientSession, *,
                 on_updates: Callable[[list[BookUpdate]], None] | None = None, url: str = WS_URL,
                 clock: Callable[[], float] = time.monotonic, on_gap: Callable[[str], None] | None = None,
                 on_notice: Callable[[Notice], None] | None = None,
                 on_trade: Callable[[str, Trade], None] | None = None,
                 options: Bl3pWsOptions | None = None, venue: str = VENUE,
                 backoff_factory: Callable[[], Backoff] | None = None) -> None:
        self.options = options or Bl3pWsOptions()
        super().__init__(session, self.options, url=url, venue=venue, clock=clock, on_updates=on_updates,
                         on_gap=on_gap, on_notice=on_notice, backoff_factory=backoff_factory)
        self._on_trade = on_trade
        self.markets: dict[str, _Market] = {}
        self.counters = {"frames": 0, "trades": 0, "connects": 0, "disconnects": 0, "stale": 0}

    async def run(self, symbols: Sequence[str]) -> None:
        """Stream the books of ``symbols`` (``BTC-EUR``, ...) until :meth:`close` or cancellation."""
        if self._running:
            raise RuntimeError("already running")
        if not symbols:
            raise ValueError("no symbols")
        self._running = True
        for s in symbols:
            self.markets.setdefault(s, _Market(s))
        try:
            async with asyncio.TaskGroup() as group:
                for s in sorted(set(symbols)):
                    group.create_task(self._connection(s, trades=False), name=f"bl3p-book-{s}")
                    if self.options.trades:
                        group.create_task(self._connection(s, trades=True), name=f"bl3p-trades-{s}")
        finally:
            self._running = False

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "synced": sum(1 for m in self.markets.values() if m.synced),
                "markets": len(self.markets), "last_error": self.last_error}

    async def _connection(self, symbol: str, *, trades: bool) -> None:
        url = trades_url(self.url, symbol) if trades else orderbook_url(self.url, symbol)
        lost = (lambda reason: None) if trades else partial(self._lost, symbol)  # a trades socket holds no book
        await self._reconnecting(partial(self._session, url, symbol, trades), lost)

    async def _session(self, url: str, symbol: str, trades: bool, backoff: Backoff) -> None:
        opts = self.options
        ws = await asyncio.wait_for(
            self._http.ws_connect(url, autoping=True, heartbeat=opts.ping_interval_s, max_msg_size=0,
                                  timeout=aiohttp.ClientWSTimeout(ws_close=2.0)),
            opts.connect_timeout_s)
        self.counters["connects"] += 1
        market = self.markets[symbol]
        stale = opts.stale_after_s
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(stale) as deadline:
                while not self._closed:
                    msg = await ws.receive()
                    if msg.type in _DEAD:
                        raise _SessionDead(f"websocket {msg.type.name.lower()}")
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        continue
                    if stale is not None:
                        deadline.reschedule(loop.time() + stale)
                    if trades:
                        self.counters["trades"] += 1
                        if self._on_trade is not None:
                            self._on_trade(symbol, decode_trade(msg.data))
                        continue
                    book = decode_orderbook(msg.data)
                    market.seq += 1
                    market.frames += 1
                    market.synced = True
                    self.counters["frames"] += 1
                    backoff.reset()
                    if self._on_updates is not None:
                        self._on_updates([book_update(book, symbol, market.seq, self._clock(), self.venue)])
        except TimeoutError:
            if stale is not None and not self._closed:
                self.counters["stale"] += 1
                raise _SessionDead(f"no frame for {stale:g} s") from None
            raise
        finally:
            with contextlib.suppress(Exception):
                await ws.close()

    def _lost(self, symbol: str, reason: str) -> None:
        market = self.markets[symbol]
        if market.synced:
            market.synced = False
            if self._on_gap is not None:
                self._on_gap(symbol)
        if not self._closed and self._on_notice is not None:
            self._on_notice(Notice(kind="connection", message=f"bl3p {symbol} feed lost ({reason}); reconnecting",
                                   at=self._clock()))
