"""Coinbase Exchange public market data over its websocket feed, with sequence checks and resync.

One :class:`CoinbaseMarketData` keeps one websocket per ``products_per_connection`` products. Each
subscribes ``level2_batch`` (a snapshot, then batched changes), ``heartbeat`` and ``ticker`` for its
products within Coinbase's 5 s subscribe deadline, and reads until it fails. A socket that stays silent
longer than ``stale_after_s`` (heartbeats arrive every second per product) is treated as dead. After
any failure the connection reconnects with a jittered exponential backoff, resubscribes, and every book
it carried is reported through ``on_gap`` until its new snapshot arrives.

Sequence checks (``l2update`` has no sequence, so continuity is checked on the product's trades, as the
docs advise): a ``ticker`` whose ``trade_id`` skips one, or a ``heartbeat`` whose ``last_trade_id`` is
ahead of the last ticker seen, means messages were dropped: the product's book is reported through
``on_gap`` and resynchronised (``level2_batch`` unsubscribed and subscribed again for it, which brings a
fresh snapshot); its deltas are ignored meanwhile. A ticker or heartbeat whose ``sequence`` is behind
one already seen is out of order and ignored.

Updates go synchronously to ``on_updates`` as ``BookUpdate`` batches: a snapshot is a full book, an
``l2update`` a delta carrying the client's own per-product sequence (contiguous while the book is in
sync). An empty batch means only that the stream proved alive (a heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp

from cryptoarb.model import BookUpdate, Notice
from cryptoarb.venues.coinbase.codec import (
    FEED_URL,
    VENUE,
    CodecError,
    Error,
    Heartbeat,
    L2Update,
    Snapshot,
    Subscriptions,
    Ticker,
    decode,
    encode,
    l2update_update,
    snapshot_update,
    subscribe_message,
)
from cryptoarb.venues.kucoin.limits import Backoff, Pacer, chunks
from cryptoarb.venues.streaming import BookFeed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CoinbaseWsOptions:
    channels: tuple[str, ...] = ("level2_batch", "heartbeat", "ticker")
    products_per_connection: int = 50
    stale_after_s: float = 5.0
    connect_timeout_s: float = 10.0
    client_messages_per_s: int = 50  # Coinbase allows 100 a second
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.5


class _SessionDead(Exception):
    pass


_EXPECTED = (aiohttp.ClientError, OSError, TimeoutError, CodecError, _SessionDead)


class _Product:
    __slots__ = ("name", "seq", "synced", "ticker_seq", "trade_id")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0  # our per-product book sequence, continued across resyncs
        self.synced = False
        self.trade_id: int | None = None
        self.ticker_seq: int | None = None

    def reset_checks(self) -> None:
        self.trade_id = None
        self.ticker_seq = None


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, pacer: Pacer) -> None:
        self.ws = ws
        self.pacer = pacer
        self.resync: set[str] = set()
        self.wake = asyncio.Event()


class CoinbaseMarketData(BookFeed):
    """Coinbase Exchange books for the engine. See the module docstring for the protocol handling.

    ``clock`` stamps ``received_at`` (the engine's clock); ``on_updates`` receives every batch and must be
    fast; ``on_gap(product)`` says a book can't be trusted until its next snapshot; ``on_notice`` gets
    error frames and connection trouble worth showing a person.
    """

    expected = _EXPECTED
    stream_name = "coinbase-md"

    def __init__(self, session: aiohttp.ClientSession, *,
                 on_updates: Callable[[list[BookUpdate]], None] | None = None, url: str = FEED_URL,
                 clock: Callable[[], float] = time.monotonic, on_gap: Callable[[str], None] | None = None,
                 on_notice: Callable[[Notice], None] | None = None, options: CoinbaseWsOptions | None = None,
                 venue: str = VENUE, backoff_factory: Callable[[], Backoff] | None = None) -> None:
        self.options = options or CoinbaseWsOptions()
        super().__init__(session, self.options, url=url, venue=venue, clock=clock, on_updates=on_updates,
                         on_gap=on_gap, on_notice=on_notice, backoff_factory=backoff_factory)
        self.products: dict[str, _Product] = {}
        self.counters = {"messages": 0, "snapshots": 0, "deltas": 0, "tickers": 0, "heartbeats": 0, "gaps": 0,
                         "stale": 0, "ignored_deltas": 0, "errors": 0, "connects": 0, "disconnects": 0, "resyncs": 0}

    # -- running ---------------------------------------------------------------------------------------
    async def run(self, products: Sequence[str]) -> None:
        """Stream ``products`` until :meth:`close` (or cancellation); reconnects on every failure."""
        if self._running:
            raise RuntimeError("already running")
        if not products:
            raise ValueError("no products")
        self._running = True
        for p in products:
            self.products.setdefault(p, _Product(p))
        try:
            async with asyncio.TaskGroup() as group:
                for i, shard in enumerate(chunks(sorted(set(products)), self.options.products_per_connection)):
                    group.create_task(self._connection(shard), name=f"coinbase-ws-{i}")
        finally:
            self._running = False

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "synced": sum(1 for p in self.products.values() if p.synced),
                "products": len(self.products), "last_error": self.last_error}

    # -- one connection --------------------------------------------------------------------------------
    async def _connection(self, shard: list[str]) -> None:
        await self._reconnecting(partial(self._session, shard), partial(self._lost, shard))

    async def _session(self, shard: list[str], backoff: Backoff) -> None:
        opts = self.options
        timeout = aiohttp.ClientWSTimeout(ws_close=2.0)
        ws = await asyncio.wait_for(self._http.ws_connect(self.url, autoping=True, heartbeat=None, timeout=timeout,
                                                          max_msg_size=0), opts.connect_timeout_s)
        self.counters["connects"] += 1
        session = _Session(ws, Pacer(opts.client_messages_per_s, 1.0))
        sender = asyncio.create_task(self._resyncer(session), name="coinbase-resync")
        try:
            await session.pacer.acquire()
            await ws.send_str(encode(subscribe_message(shard, list(opts.channels))).decode())
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(opts.stale_after_s) as deadline:
                while not self._closed:
                    msg = await ws.receive()
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                        aiohttp.WSMsgType.ERROR):
                            raise _SessionDead(f"websocket {msg.type.name.lower()}")
                        continue
                    deadline.reschedule(loop.time() + opts.stale_after_s)
                    if self._frame(session, msg.data):
                        backoff.reset()
                    if sender.done():
                        sender.result()
        except TimeoutError:
            raise _SessionDead(f"no message for {opts.stale_after_s:g} s") from None
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            with contextlib.suppress(Exception):
                await ws.close()

    def _frame(self, session: _Session, raw: bytes | str) -> bool:
        """Handle one frame; True when it shows the subscription works (the backoff may reset)."""
        self.counters["messages"] += 1
        frame = decode(raw)
        now = self._clock()
        if isinstance(frame, L2Update):
            p = self.products.get(frame.product_id)
            if p is None or not p.synced:
                self.counters["ignored_deltas"] += 1
                return False
            p.seq += 1
            self.counters["deltas"] += 1
            self._emit([l2update_update(frame, p.seq, now, self.venue)])
        elif isinstance(frame, Ticker):
            self.counters["tickers"] += 1
            self._ticker(session, frame)
        elif isinstance(frame, Heartbeat):
            self.counters["heartbeats"] += 1
            self._heartbeat(session, frame)
            self._emit([])
        elif isinstance(frame, Snapshot):
            p = self.products.get(frame.product_id)
            if p is None:
                return False
            p.seq += 1
            p.synced = True
            self.counters["snapshots"] += 1
            self._emit([snapshot_update(frame, p.seq, now, self.venue)])
            return True
        elif isinstance(frame, Subscriptions):
            return True
        elif isinstance(frame, Error):
            self.counters["errors"] += 1
            self.last_error = f"{frame.message}: {frame.reason}"
            self._notice("error", f"coinbase: {frame.message}: {frame.reason}")
        return False

    def _ticker(self, session: _Session, t: Ticker) -> None:
        p = self.products.get(t.product_id)
        if p is None:
            return
        if p.ticker_seq is not None and t.sequence <= p.ticker_seq:
            self.counters["stale"] += 1  # out of order: older than what we have
            return
        p.ticker_seq = t.sequence
        if t.trade_id is None:
            return
        if p.trade_id is not None and t.trade_id > p.trade_id + 1:
            self._gap(session, p, f"trade {p.trade_id + 1}..{t.trade_id - 1} missed")
            p.ticker_seq = t.sequence
        p.trade_id = t.trade_id if p.trade_id is None else max(p.trade_id, t.trade_id)

    def _heartbeat(self, session: _Session, hb: Heartbeat) -> None:
        p = self.products.get(hb.product_id)
        if p is None:
            return
        if p.ticker_seq is not None and hb.sequence < p.ticker_seq:
            self.counters["stale"] += 1
            return
        if "ticker" in self.options.channels and p.trade_id is not None and hb.last_trade_id > p.trade_id:
            self._gap(session, p, f"heartbeat last trade {hb.last_trade_id}, ticker at {p.trade_id}")
        if p.trade_id is None or hb.last_trade_id > p.trade_id:
            p.trade_id = hb.last_trade_id

    def _gap(self, session: _Session, p: _Product, why: str) -> None:
        self.counters["gaps"] += 1
        log.info("coinbase %s: sequence gap (%s); resyncing", p.name, why)
        p.reset_checks()
        if not p.synced:
            return  # its snapshot is on the way already
        p.synced = False
        if self._on_gap is not None:
            self._on_gap(p.name)
        if "level2_batch" in self.options.channels:
            session.resync.add(p.name)
            session.wake.set()

    async def _resyncer(self, session: _Session) -> None:
        """Resubscribe ``level2_batch`` for gapped products: unsubscribe, subscribe, a fresh snapshot."""
        while True:
            await session.wake.wait()
            session.wake.clear()
            products = sorted(session.resync)
            session.resync.clear()
            if not products:
                continue
            self.counters["resyncs"] += 1
            for unsubscribe in (True, False):
                await session.pacer.acquire()
                message = subscribe_message(products, ["level2_batch"], unsubscribe=unsubscribe)
                await session.ws.send_str(encode(message).decode())

    def _lost(self, shard: Iterable[str], reason: str) -> None:
        gapped = []
        for name in shard:
            p = self.products[name]
            p.reset_checks()
            if p.synced:
                p.synced = False
                gapped.append(name)
        if self._on_gap is not None:
            for name in gapped:
                self._on_gap(name)
        if not self._closed:
            self._notice("connection", f"coinbase feed lost ({reason}); reconnecting")

    def _emit(self, batch: list[BookUpdate]) -> None:
        if self._on_updates is not None:
            self._on_updates(batch)

    def _notice(self, kind: str, message: str) -> None:
        if self._on_notice is not None:
            self._on_notice(Notice(kind=kind, message=message, at=self._clock()))
