"""KuCoin public market data over native websockets, sharded past the exchange's limits.

One :class:`KucoinMarketData` runs several *slots*, each a logical connection with a set of wanted
topics: one slot carries ``/market/ticker:all`` alone (the hottest stream gets its own socket and
reader), depth slots carry up to ``topics_per_connection`` symbols each. A slot owns at most one live
websocket *session*; two briefly while a token refresh makes the new session before breaking the old.
Each session reads, pings, reconciles its subscriptions against the slot's wanted set and watches for
silence; any failure ends the session and the slot reconnects with a fresh token after a jittered,
exponential backoff, then resubscribes what it holds.

Decoded updates go synchronously to ``on_updates`` from the reader task (the engine's hot path).
``/market/level2`` increments are synchronised per symbol against REST snapshots, gaps are reported
through ``on_gap`` and healed by a new snapshot; only continuous deltas ever reach ``on_updates``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import msgspec
from yarl import URL

from cryptoarb.model import BookUpdate, Notice
from cryptoarb.venues.kucoin.codec import (
    FAST_SCAN,
    VENUE,
    Ack,
    CodecError,
    ErrorFrame,
    KucoinCodec,
    OtherMessage,
    Pong,
    Welcome,
    encode,
)
from cryptoarb.venues.kucoin.limits import (
    CLIENT_MESSAGES_PER_WINDOW,
    MESSAGE_WINDOW_S,
    TOPICS_PER_CONNECTION,
    TOPICS_PER_MESSAGE,
    Backoff,
    Pacer,
    assign,
    chunks,
)

log = logging.getLogger(__name__)

DepthMode = Literal["level2Depth5", "level2Depth50", "level2"]
SnapshotFetcher = Callable[[str], Awaitable[BookUpdate]]
TICKER_ALL = "/market/ticker:all"
_DEPTH_PREFIX = {"level2Depth5": "/spotMarket/level2Depth5", "level2Depth50": "/spotMarket/level2Depth50",
                 "level2": "/market/level2"}
_WS_KW: dict[str, Any] = (
    {"decode_text": False}  # bytes straight into msgspec: no UTF-8 decode and re-encode per frame
    if "decode_text" in inspect.signature(aiohttp.ClientSession.ws_connect).parameters else {})
_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


@dataclass(frozen=True, slots=True)
class WsOptions:
    topics_per_connection: int = TOPICS_PER_CONNECTION
    topics_per_message: int = TOPICS_PER_MESSAGE
    max_client_messages: int = CLIENT_MESSAGES_PER_WINDOW - 10  # headroom under the server's 100
    message_window_s: float = MESSAGE_WINDOW_S
    ping_reserve: int = 5  # of max_client_messages, kept for pings
    depth_mode: DepthMode = "level2Depth50"
    stale_after_s: float | None = 60.0  # a session with subscriptions but no data this long is recycled
    book_stale_after_s: float = 2.0  # only for the stale-book count in stats()
    welcome_timeout_s: float = 10.0
    ack_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.5
    token_refresh_s: float = 23 * 3600.0  # tokens last 24 h
    ping_interval_s: float | None = None  # None: the server's pingInterval
    ping_timeout_s: float | None = None  # None: the server's pingTimeout
    max_connects_per_minute: int = 25  # KuCoin allows 30 new connections per minute
    level2_buffer: int = 5000  # deltas held per symbol while its snapshot is fetched
    snapshot_retry_s: float = 0.5
    snapshot_concurrency: int = 8  # REST snapshots in flight at once (KuCoin's public REST pool is shared)
    depth_lag_s: float = 1.0
    """A depth-streamed market that ticker:all shows ahead of its depth stream for this long is handed back to
    ticker:all, which keeps it current at one level, until its depth stream pushes again. level2Depth5/50: a top
    of book the depth stream has not shown, with no depth push since; ``/market/level2``: a ticker ``sequence``
    past the book's (the two share the book's sequence), with no delta since; the book is then gapped and
    resynced from a REST snapshot once deltas flow again. A subscription can stall on a connection that still
    answers pings and carries other topics; without this, such a book would look current for as long as the
    venue's other streams flow (a quiet level2 book on a live stream is current). 0: off."""


class _SessionDead(Exception):
    """Why a session ended; the slot reconnects."""


_EXPECTED = (aiohttp.ClientError, OSError, TimeoutError, CodecError, _SessionDead)


@dataclass(slots=True)
class _ConnectInfo:
    token: str
    url: URL
    ping_interval_s: float
    ping_timeout_s: float


class _Session:
    """One websocket with its own token, pacer and subscriptions."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, info: _ConnectInfo, opened_at: float,
                 pacer: Pacer) -> None:
        self.ws = ws
        self.info = info
        self.opened_at = opened_at
        self.pacer = pacer
        self.subscribed: set[str] = set()
        self.failed: set[str] = set()  # refused by the server on this session; retried on the next
        self.pending: dict[str, asyncio.Future[Ack | ErrorFrame]] = {}
        self.ping_id = ""
        self.pong = asyncio.Event()
        self.dirty = asyncio.Event()
        self.synced = asyncio.Event()
        self.messages = 0
        self.control_messages = 0
        self.client_messages = 0
        self.last_received_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        self.retiring = False
        self.was_live = False

    async def close(self) -> None:
        self.retiring = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        with contextlib.suppress(Exception):
            await self.ws.close()


class _Slot:
    def __init__(self, slot_id: int, kind: Literal["tickers", "depth"]) -> None:
        self.id = slot_id
        self.kind = kind
        self.want: set[str] = set()
        self.sessions: list[_Session] = []
        self.state = "idle"
        self.reconnects = 0
        self.refreshes = 0
        self.errors = 0
        self.messages = 0
        self.task: asyncio.Task[None] | None = None
        self.last_reason = ""
        self.opened = 0

    @property
    def session(self) -> _Session | None:
        """The serving session: during a token refresh the old one, until the new one takes over."""
        return self.sessions[0] if self.sessions else None


class _L2State:
    __slots__ = ("buffer", "fetch", "seq")

    def __init__(self) -> None:
        self.seq: int | None = None  # last sequence handed to the sink; None while unsynced
        self.buffer: list[BookUpdate] = []
        self.fetch: asyncio.Task[None] | None = None


class KucoinMarketData:
    """Public KuCoin market data for the engine, within the exchange's websocket limits.

    ``clock`` stamps ``received_at`` (the engine's clock, seconds). ``on_updates`` receives every
    decoded batch synchronously and must be fast. ``snapshot_fetcher(symbol)`` returns a REST snapshot
    ``BookUpdate`` whose ``sequence`` is the book's sequence (required for ``depth_mode="level2"``).
    ``on_gap(symbol)`` is told when a symbol's book can no longer be trusted until its next snapshot
    arrives through ``on_updates``: a level2 sequence gap, its depth connection lost, its depth stream
    dropped by :meth:`set_depth_symbols` (ticker:all then keeps its top of book). ``on_notice`` gets
    error frames and connection trouble worth showing a person. An empty batch on ``on_updates`` means
    only that the stream proved alive (a pong).
    """

    def __init__(self, session: aiohttp.ClientSession, *, on_updates: Callable[[list[BookUpdate]], None],
                 rest_url: str = "https://api.kucoin.com", clock: Callable[[], float] = time.monotonic,
                 snapshot_fetcher: SnapshotFetcher | None = None,
                 on_gap: Callable[[str], None] | None = None,
                 on_notice: Callable[[Notice], None] | None = None,
                 options: WsOptions | None = None, venue: str = VENUE,
                 backoff_factory: Callable[[], Backoff] | None = None) -> None:
        self.options = opts = options or WsOptions()
        if opts.depth_mode == "level2" and snapshot_fetcher is None:
            raise ValueError("depth_mode='level2' needs a snapshot_fetcher")
        if not 0 < opts.topics_per_message <= opts.topics_per_connection:
            raise ValueError("need 0 < topics_per_message <= topics_per_connection")
        if not 0 <= opts.ping_reserve < opts.max_client_messages:
            raise ValueError("need 0 <= ping_reserve < max_client_messages")
        self.venue = venue
        self._http = session
        self._rest = rest_url.rstrip("/")
        self._clock = clock
        self._on_updates = on_updates
        self._fetch_snapshot = snapshot_fetcher
        self._on_gap = on_gap
        self._on_notice = on_notice
        self._codec = KucoinCodec(venue)
        self._backoff_factory = backoff_factory or (
            lambda: Backoff(opts.backoff_base_s, opts.backoff_max_s, opts.backoff_jitter))
        self._connect_pacer = Pacer(opts.max_connects_per_minute, 60.0)
        self._snapshots = asyncio.Semaphore(opts.snapshot_concurrency)
        self._ids = itertools.count(int(time.time() * 1000))
        self._slot_ids = itertools.count()
        self._slots: list[_Slot] = []
        self._dropped: set[asyncio.Task[None]] = set()
        self._tickers: _Slot | None = None
        self._owner: dict[str, _Slot] = {}  # depth symbol -> its slot
        self._l2: dict[str, _L2State] = {}
        self._suppressed: set[str] = set()  # depth is live: ticker:all must not overwrite the book
        self._last_seen: dict[str, float] = {}
        self._depth_top: dict[str, Top | None] = {}  # depth-streamed symbol -> the top its depth stream last showed
        self._depth_behind: dict[str, float] = {}  # -> since when ticker:all is ahead of its depth stream
        self._lag_task: asyncio.Task[None] | None = None
        self.depth_lags = 0
        self._running = False
        self._closed = asyncio.Event()
        self._state = asyncio.Event()  # set on every subscription/session change, for wait_live()
        self.decode_errors = 0
        self.sink_errors = 0
        self.gaps = 0
        self.resyncs = 0

    # -- public control -------------------------------------------------------------------------------
    def subscribe_all_tickers(self) -> None:
        """Stream ``/market/ticker:all`` (top of book of every pair) on a connection of its own."""
        if self._tickers is None:
            self._tickers = self._new_slot("tickers")
            self._tickers.want.add(TICKER_ALL)
            self._touch(self._tickers)

    def set_depth_symbols(self, symbols: Iterable[str]) -> None:
        """Stream depth for exactly these symbols: subscribe the new, unsubscribe the removed."""
        wanted = set(symbols)
        touched: set[_Slot] = set()
        for symbol in set(self._owner) - wanted:
            slot = self._owner.pop(symbol)
            slot.want.discard(symbol)
            touched.add(slot)
            self._forget_depth(symbol)
        depth = [s for s in self._slots if s.kind == "depth"]
        placed, extra = assign(wanted - set(self._owner), [len(s.want) for s in depth],
                               self.options.topics_per_connection)
        depth += [self._new_slot("depth") for _ in range(extra)]
        for symbol, i in placed.items():
            depth[i].want.add(symbol)
            self._owner[symbol] = depth[i]
            touched.add(depth[i])
            if self.options.depth_mode == "level2":
                self._l2[symbol] = _L2State()
        for slot in touched:
            if slot.kind == "depth" and not slot.want:
                self._drop_slot(slot)
            else:
                self._touch(slot)

    async def run(self) -> None:
        """Supervise every connection until cancelled or :meth:`close` is called."""
        self._running = True
        if not FAST_SCAN:
            log.warning("kucoin ws: the C frame scanner was not built (no C compiler when cryptoarb was installed):"
                        " msgspec decodes every frame, ~40%% slower on ticker:all and depth")
        for slot in self._slots:
            self._start(slot)
        if self.options.depth_lag_s > 0:
            self._lag_task = asyncio.create_task(self._watch_depth_lag(self.options.depth_lag_s))
        try:
            await self._closed.wait()
        finally:
            await self._shutdown()

    async def close(self) -> None:
        self._closed.set()
        await self._shutdown()

    async def wait_live(self, timeout: float | None = None) -> None:
        """Wait until every connection is up and subscribed to all it should carry."""
        async with asyncio.timeout(timeout):
            while not (self._slots and all(s.session is not None and s.session.synced.is_set()
                                           for s in self._slots)):
                self._state.clear()
                await self._state.wait()

    def tradeable_gate(self, symbol: str) -> bool:
        """Whether the stream behind ``symbol``'s book is healthy (freshness is the engine's rule)."""
        slot = self._owner.get(symbol)
        if slot is not None:
            if not any(symbol in s.subscribed for s in slot.sessions):
                return False
            if self.options.depth_mode == "level2":
                state = self._l2.get(symbol)
                return state is not None and state.seq is not None
            return True
        return self._tickers is not None and any(TICKER_ALL in s.subscribed for s in self._tickers.sessions)

    def gapped_symbols(self) -> set[str]:
        """Level2 symbols waiting for a snapshot (their books must not be traded)."""
        return {s for s, st in self._l2.items() if st.seq is None}

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        conns = []
        for slot in self._slots:
            session = slot.session
            last = session.last_received_at if session else None
            conns.append({
                "id": slot.id, "kind": slot.kind, "state": slot.state, "topics": len(slot.want),
                "subscribed": len(session.subscribed) if session else 0,
                "messages": slot.messages + sum(s.messages for s in slot.sessions),
                "reconnects": slot.reconnects, "refreshes": slot.refreshes, "errors": slot.errors,
                "last_message_age_s": None if last is None else round(now - last, 3),
                "client_messages_in_window": session.pacer.in_window() if session else 0,
                "last_reason": slot.last_reason})
        stale_after = self.options.book_stale_after_s
        totals = {
            "connections": len(conns), "topics": sum(c["topics"] for c in conns),
            "subscribed": sum(c["subscribed"] for c in conns),
            "messages": sum(c["messages"] for c in conns),
            "reconnects": sum(c["reconnects"] for c in conns), "errors": sum(c["errors"] for c in conns),
            "client_messages_in_window": sum(c["client_messages_in_window"] for c in conns),
            "decode_errors": self.decode_errors, "sink_errors": self.sink_errors, "gaps": self.gaps,
            "resyncs": self.resyncs, "gapped": len(self.gapped_symbols()), "depth_lags": self.depth_lags,
            "books_seen": len(self._last_seen),
            "stale_books": sum(1 for t in self._last_seen.values() if now - t > stale_after)}
        return {"connections": conns, "totals": totals}

    # -- slots --------------------------------------------------------------------------------------
    def _new_slot(self, kind: Literal["tickers", "depth"]) -> _Slot:
        slot = _Slot(next(self._slot_ids), kind)
        self._slots.append(slot)
        if self._running:
            self._start(slot)
        return slot

    def _start(self, slot: _Slot) -> None:
        if slot.task is None:
            slot.task = asyncio.create_task(self._slot_main(slot), name=f"kucoin-ws-{slot.id}")

    def _touch(self, slot: _Slot) -> None:
        for session in slot.sessions:
            session.dirty.set()

    def _drop_slot(self, slot: _Slot) -> None:
        self._slots.remove(slot)
        slot.state = "closed"
        self._state.set()
        if slot.task is not None:
            slot.task.cancel()
            self._dropped.add(slot.task)  # its sessions close in its finally; shutdown awaits that
            slot.task.add_done_callback(self._dropped.discard)

    async def _shutdown(self) -> None:
        self._running = False
        tasks = [s.task for s in self._slots if s.task is not None] + list(self._dropped)
        if self._lag_task is not None:
            tasks.append(self._lag_task)
            self._lag_task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for slot in self._slots:
            slot.task = None
            slot.state = "closed"
        fetches = [st.fetch for st in self._l2.values() if st.fetch is not None]
        for task in fetches:
            task.cancel()
        for task in fetches:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _slot_main(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        opts = self.options
        backoff = self._backoff_factory()
        current: _Session | None = None
        try:
            while True:
                if current is None:
                    current = await self._open_with_backoff(slot, backoff)
                    slot.reconnects += slot.opened > 0
                    slot.opened += 1
                refresh_in = current.opened_at + opts.token_refresh_s - loop.time()
                assert current.task is not None
                done, _ = await asyncio.wait([current.task], timeout=max(0.0, refresh_in))
                if done:
                    if current.was_live:
                        backoff.reset()
                    self._lost(slot, current)
                    current = None
                    slot.state = "backoff"
                    await asyncio.sleep(backoff.next_delay())
                    continue
                current = await self._refresh(slot, current)
        finally:
            for session in list(slot.sessions):
                await session.close()
            slot.sessions.clear()

    async def _refresh(self, slot: _Slot, old: _Session) -> _Session:
        """Make before break: a session on a fresh token takes over the slot's topics, then the old one
        goes. If the new one can't be made, the old one carries on and we try again later."""
        opts = self.options
        try:
            fresh = await self._open(slot)
        except Exception as exc:
            if not isinstance(exc, _EXPECTED):
                log.exception("kucoin ws: unexpected failure refreshing connection %d", slot.id)
            self._report(slot, "refresh_failed", f"token refresh failed: {exc}")
            old.opened_at += min(opts.backoff_max_s, max(1.0, opts.token_refresh_s / 10))
            return old
        assert fresh.task is not None
        budget = opts.ack_timeout_s * (1 + len(slot.want) / opts.topics_per_message)
        synced = asyncio.ensure_future(fresh.synced.wait())
        await asyncio.wait([synced, fresh.task], timeout=budget, return_when=asyncio.FIRST_COMPLETED)
        synced.cancel()
        if fresh.task.done():
            self._retire(slot, fresh)
            await fresh.close()
            old.opened_at += min(opts.backoff_max_s, max(1.0, opts.token_refresh_s / 10))
            return old
        slot.refreshes += 1
        self._retire(slot, old)
        await old.close()
        return fresh

    def _retire(self, slot: _Slot, session: _Session) -> None:
        session.retiring = True
        if session in slot.sessions:
            slot.sessions.remove(session)
            slot.messages += session.messages

    def _lost(self, slot: _Slot, session: _Session) -> None:
        assert session.task is not None
        exc = None if session.task.cancelled() else session.task.exception()
        reason = str(exc) if exc is not None else "closed by server"
        slot.last_reason = reason
        self._retire(slot, session)
        self._state.set()
        self._report(slot, "disconnected", f"connection {slot.id} lost: {reason}", level=logging.INFO)
        if slot.sessions:
            return
        if slot.kind == "tickers":
            # books fed by ticker:all alone miss every change until it is back; a venue still alive on
            # other connections must not make them look current
            for symbol in [s for s in self._last_seen if s not in self._suppressed]:
                self._gap(symbol)
            return
        for symbol in slot.want:
            # the book misses whatever changed until the depth stream is back; ticker:all keeps its top
            # fresh meanwhile (a 1-level snapshot that ends the gap, true but shallow)
            was_live = symbol in self._suppressed
            self._suppressed.discard(symbol)
            state = self._l2.get(symbol)
            if state is not None:
                self._unsync(symbol, state)
            elif was_live:
                self._gap(symbol)

    async def _open_with_backoff(self, slot: _Slot, backoff: Backoff) -> _Session:
        while True:
            try:
                return await self._open(slot)
            except Exception as exc:  # whatever it was, the slot must keep trying
                if not isinstance(exc, _EXPECTED):
                    log.exception("kucoin ws: unexpected failure opening connection %d", slot.id)
                slot.last_reason = str(exc) or type(exc).__name__
                self._report(slot, "connect_failed", f"connection {slot.id}: {slot.last_reason}")
                slot.state = "backoff"
                await asyncio.sleep(backoff.next_delay())

    # -- one session --------------------------------------------------------------------------------
    async def _negotiate(self) -> _ConnectInfo:
        async with self._http.post(f"{self._rest}/api/v1/bullet-public") as resp:
            raw = await resp.read()
        opts = self.options
        try:
            body = msgspec.json.decode(raw)
            if body.get("code") != "200000":
                raise _SessionDead(f"bullet-public refused: HTTP {resp.status} {raw[:200]!r}")
            data = body["data"]
            server = data["instanceServers"][0]
            return _ConnectInfo(
                token=data["token"],
                url=URL(server["endpoint"]).update_query(token=data["token"], connectId=uuid.uuid4().hex),
                ping_interval_s=opts.ping_interval_s or float(server.get("pingInterval", 18000)) / 1000,
                ping_timeout_s=opts.ping_timeout_s or float(server.get("pingTimeout", 10000)) / 1000)
        except (msgspec.DecodeError, AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise _SessionDead(f"bad bullet-public answer: HTTP {resp.status} {raw[:200]!r}") from exc

    async def _open(self, slot: _Slot) -> _Session:
        """A fresh token, a connected socket, a welcome; then the session's tasks start."""
        opts = self.options
        slot.state = "connecting"
        await self._connect_pacer.acquire()
        info = await asyncio.wait_for(self._negotiate(), opts.welcome_timeout_s)
        ws = await asyncio.wait_for(self._http.ws_connect(
            info.url, autoping=True, heartbeat=None,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),  # a dead peer won't answer
            **_WS_KW), opts.welcome_timeout_s)
        try:
            msg = await asyncio.wait_for(ws.receive(), opts.welcome_timeout_s)
            if msg.type not in _DATA:
                raise _SessionDead(f"no welcome: {msg.type.name}")
            frame = self._codec.decode(_as_bytes(msg.data), self._clock())
            if not isinstance(frame, Welcome):
                raise _SessionDead(f"expected welcome, got {frame!r}")
        except BaseException:
            await ws.close()
            raise
        pacer = Pacer(opts.max_client_messages, opts.message_window_s, reserve=opts.ping_reserve)
        session = _Session(ws, info, asyncio.get_running_loop().time(), pacer)
        slot.sessions.append(session)
        slot.state = "subscribing"
        session.dirty.set()
        session.task = asyncio.create_task(self._session_main(slot, session),
                                           name=f"kucoin-ws-{slot.id}-session")
        return session

    async def _session_main(self, slot: _Slot, session: _Session) -> None:
        parts = [self._read(slot, session), self._ping(session), self._reconcile(slot, session)]
        if self.options.stale_after_s:
            parts.append(self._watch(session, self.options.stale_after_s))
        tasks = [asyncio.create_task(p) for p in parts]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            raise _SessionDead("closed by server")
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for fut in session.pending.values():
                fut.cancel()
            with contextlib.suppress(Exception):
                await session.ws.close()

    async def _read(self, slot: _Slot, session: _Session) -> None:
        """The hot path: every frame is decoded here and handed to the sink before the next read."""
        receive = session.ws.receive
        decode = self._codec.decode
        clock = self._clock
        sink = self._on_updates
        suppressed = self._suppressed
        last_seen = self._last_seen
        tickers = slot.kind == "tickers"
        level2 = self.options.depth_mode == "level2"
        watch_lag = self.options.depth_lag_s > 0
        depth_top = self._depth_top
        l2 = self._l2
        behind = self._depth_behind
        text, binary = _DATA
        while True:
            msg = await receive()
            kind = msg.type
            if kind is not text and kind is not binary:
                if kind is aiohttp.WSMsgType.ERROR:
                    raise _SessionDead(f"websocket error: {msg.data}")
                if kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    return
                continue
            data = msg.data
            now = clock()
            try:
                frame = decode(data if type(data) is bytes else _as_bytes(data), now)
            except CodecError as exc:
                self.decode_errors += 1
                if self.decode_errors <= 10 or self.decode_errors % 1000 == 0:
                    log.warning("kucoin ws: undecodable frame (%d so far): %s", self.decode_errors, exc)
                continue
            if type(frame) is not BookUpdate:
                session.control_messages += 1
                self._control(slot, session, frame)
                continue
            session.messages += 1
            session.last_received_at = now
            symbol = frame.symbol
            last_seen[symbol] = now
            if tickers:
                if symbol in suppressed:
                    if watch_lag:
                        if level2:
                            state = l2.get(symbol)
                            ahead = state is not None and state.seq is not None and frame.sequence > state.seq
                        else:
                            ahead = _top(frame) != depth_top.get(symbol)
                        if not ahead:
                            behind.pop(symbol, None)
                        elif symbol not in behind:
                            behind[symbol] = now
                    continue
            elif frame.snapshot:
                if symbol not in suppressed and symbol in self._owner:
                    suppressed.add(symbol)
                if watch_lag:
                    depth_top[symbol] = _top(frame)
                    behind.pop(symbol, None)
            elif level2:
                self._l2_delta(frame)
                continue
            try:
                sink([frame])
            except Exception:
                self._sink_failed()

    def _control(self, slot: _Slot, session: _Session, frame: Any) -> None:
        if isinstance(frame, Pong):
            if str(frame.id) == session.ping_id:
                session.pong.set()
            try:
                self._on_updates([])  # an empty batch: the stream proved alive (engine liveness)
            except Exception:
                self._sink_failed()
        elif isinstance(frame, Ack | ErrorFrame):
            fut = session.pending.get(str(frame.id))
            if fut is not None and not fut.done():
                fut.set_result(frame)  # the requester reports it with its context
            elif isinstance(frame, ErrorFrame):
                self._error_frame(slot, frame, "")
        elif isinstance(frame, OtherMessage):
            log.debug("kucoin ws: ignoring %s", frame.topic)

    def _error_frame(self, slot: _Slot, frame: ErrorFrame, context: str) -> None:
        """Report an error frame; raise when it concerns the whole connection, which then reconnects."""
        text = frame.data or ""
        self._report(slot, "error", f"connection {slot.id}: error {frame.code} {text}{context}",
                     fields={"code": str(frame.code), "id": str(frame.id)})
        if _concerns_connection(frame):
            raise _SessionDead(f"error {frame.code}: {text}")

    async def _ping(self, session: _Session) -> None:
        info = session.info
        while True:
            await asyncio.sleep(info.ping_interval_s)
            session.ping_id = str(next(self._ids))
            session.pong.clear()
            await session.pacer.acquire(priority=True)
            await session.ws.send_str(encode({"id": session.ping_id, "type": "ping"}))
            session.client_messages += 1
            try:
                await asyncio.wait_for(session.pong.wait(), info.ping_timeout_s)
            except TimeoutError:
                raise _SessionDead(f"no pong within {info.ping_timeout_s:g}s") from None

    async def _watch(self, session: _Session, stale_after_s: float) -> None:
        """Recycle a session whose subscriptions went quiet (the server may keep answering pings)."""
        step = stale_after_s / 4
        quiet = 0.0
        seen = session.messages
        while True:
            await asyncio.sleep(step)
            if session.messages != seen or not session.subscribed:
                seen = session.messages
                quiet = 0.0
                continue
            quiet += step
            if quiet >= stale_after_s:
                raise _SessionDead(f"no data for {quiet:g}s")

    async def _reconcile(self, slot: _Slot, session: _Session) -> None:
        """Bring the socket's subscriptions to the slot's wanted set, one acked message at a time."""
        prefix = TICKER_ALL if slot.kind == "tickers" else _DEPTH_PREFIX[self.options.depth_mode]
        per_message = self.options.topics_per_message
        while True:
            session.dirty.clear()
            want = slot.want
            remove = sorted(session.subscribed - want)
            add = sorted(want - session.subscribed - session.failed)
            if not remove and not add:
                if not session.retiring:
                    slot.state = "live"
                session.was_live = True
                session.synced.set()
                self._state.set()
                await session.dirty.wait()
                continue
            session.synced.clear()
            self._state.set()
            for chunk in chunks(remove, per_message):
                if await self._request(slot, session, "unsubscribe", prefix, chunk):
                    session.subscribed.difference_update(chunk)
                    for symbol in chunk:
                        self._suppressed.discard(symbol)
            queue = deque(chunks(add, per_message))
            while queue:
                chunk = [u for u in queue.popleft() if u in slot.want]  # may have changed while we waited
                if not chunk:
                    continue
                if await self._request(slot, session, "subscribe", prefix, chunk):
                    session.subscribed.update(chunk)
                    self._start_syncs(chunk)
                elif len(chunk) > 1:  # one unknown symbol refuses its whole message: bisect to find it
                    half = len(chunk) // 2
                    queue.extendleft((chunk[half:], chunk[:half]))
                else:
                    session.failed.update(chunk)

    async def _request(self, slot: _Slot, session: _Session, kind: str, prefix: str,
                       units: list[str]) -> bool:
        topic = prefix if prefix == TICKER_ALL else f"{prefix}:{','.join(units)}"
        rid = str(next(self._ids))
        fut: asyncio.Future[Ack | ErrorFrame] = asyncio.get_running_loop().create_future()
        session.pending[rid] = fut
        try:
            await session.pacer.acquire()
            await session.ws.send_str(encode(
                {"id": rid, "type": kind, "topic": topic, "privateChannel": False, "response": True}))
            session.client_messages += 1
            try:
                reply = await asyncio.wait_for(fut, self.options.ack_timeout_s)
            except TimeoutError:
                raise _SessionDead(f"no ack for {kind} {topic[:80]}") from None
        finally:
            session.pending.pop(rid, None)
        if isinstance(reply, ErrorFrame):
            self._error_frame(slot, reply, f" ({kind} {len(units)} topics: {topic[:80]})")
            return False
        return True

    # -- level2 increments --------------------------------------------------------------------------
    def _l2_delta(self, update: BookUpdate) -> None:
        state = self._l2.get(update.symbol)
        if state is None:  # unsubscribed; frames still in flight
            return
        if self._depth_behind:
            self._depth_behind.pop(update.symbol, None)  # the stream delivers: a ticker ahead of it re-arms the watch
        if state.seq is None:
            if len(state.buffer) >= self.options.level2_buffer:
                del state.buffer[: len(state.buffer) // 2]
            state.buffer.append(update)
            if state.fetch is None:
                state.fetch = asyncio.create_task(self._resync(update.symbol, state))
            return
        if update.sequence <= state.seq:
            return  # duplicate, e.g. both sessions during a token refresh
        start = update.sequence_start if update.sequence_start is not None else update.sequence
        if start > state.seq + 1:
            self.gaps += 1
            log.info("kucoin ws: %s gap: have %d, got %d..%d", update.symbol, state.seq, start,
                     update.sequence)
            self._unsync(update.symbol, state)
            self._l2_delta(update)
            return
        state.seq = update.sequence
        try:
            self._on_updates([update])
        except Exception:
            self._sink_failed()

    def _start_syncs(self, symbols: list[str]) -> None:
        """Fetch snapshots as soon as the deltas are subscribed (buffering them meanwhile), so a quiet book
        is known before its first change."""
        for symbol in symbols:
            state = self._l2.get(symbol)
            if state is not None and state.seq is None and state.fetch is None:
                state.fetch = asyncio.create_task(self._resync(symbol, state))

    def _unsync(self, symbol: str, state: _L2State) -> None:
        was_synced = state.seq is not None
        state.seq = None
        state.buffer = []
        if state.fetch is not None:
            state.fetch.cancel()
            state.fetch = None
        if was_synced:
            self._gap(symbol)

    def _gap(self, symbol: str) -> None:
        if self._on_gap is not None:
            try:
                self._on_gap(symbol)
            except Exception:
                log.exception("kucoin ws: on_gap(%s) failed", symbol)

    async def _resync(self, symbol: str, state: _L2State) -> None:
        """Snapshot, drop the deltas it already contains, require continuity for the rest, emit."""
        assert self._fetch_snapshot is not None
        backoff = Backoff(self.options.snapshot_retry_s, 10.0, 0.5)
        try:
            while self._l2.get(symbol) is state:
                try:
                    async with self._snapshots:
                        snap = await self._fetch_snapshot(symbol)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("kucoin ws: snapshot for %s failed: %s", symbol, exc)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                batch = _splice(snap, state.buffer)
                if batch is None:  # the snapshot predates what we buffered: a newer one will cover it
                    await asyncio.sleep(backoff.next_delay())
                    continue
                state.seq = batch[-1].sequence
                state.buffer = []
                self.resyncs += 1
                self._suppressed.add(symbol)
                self._depth_behind.pop(symbol, None)  # synced to a snapshot: no ticker is ahead of it yet
                try:
                    self._on_updates(batch)
                except Exception:
                    self._sink_failed()
                return
        finally:
            if state.fetch is asyncio.current_task():
                state.fetch = None

    async def _watch_depth_lag(self, lag_s: float) -> None:
        """Hand back to ticker:all every depth-streamed market whose depth stream is ``lag_s`` behind it."""
        while True:
            await asyncio.sleep(lag_s / 4)
            if not self._depth_behind:
                continue
            now = self._clock()
            for symbol in [s for s, since in self._depth_behind.items() if now - since > lag_s]:
                del self._depth_behind[symbol]
                state = self._l2.get(symbol)
                if symbol not in self._suppressed or (state is not None and state.seq is None):
                    continue  # not the depth stream's, or already gapped and waiting for a resync
                self.depth_lags += 1
                if self.depth_lags <= 10 or self.depth_lags % 100 == 0:
                    log.warning("kucoin ws: %s: the depth stream missed a change ticker:all showed %.1f s ago; "
                                "ticker:all keeps the book until depth pushes again (%d so far)",
                                symbol, lag_s, self.depth_lags)
                if state is None:
                    self._forget_depth(symbol)
                else:  # gapped; its next delta starts a resync, which gives the book back to level2
                    self._suppressed.discard(symbol)
                    self._unsync(symbol, state)

    def _forget_depth(self, symbol: str) -> None:
        """The symbol's depth stream is going away: its book stops being maintained, so it is gapped
        (a quiet book on a live venue would otherwise look current) until ticker:all refreshes it."""
        was_live = symbol in self._suppressed
        self._suppressed.discard(symbol)
        self._depth_top.pop(symbol, None)
        self._depth_behind.pop(symbol, None)
        state = self._l2.pop(symbol, None)
        if state is not None:
            self._unsync(symbol, state)
        elif was_live:
            self._gap(symbol)

    # -- reporting ----------------------------------------------------------------------------------
    def _report(self, slot: _Slot, kind: str, message: str, *, fields: dict[str, str] | None = None,
                level: int = logging.WARNING) -> None:
        slot.errors += level >= logging.WARNING
        log.log(level, "kucoin ws: %s", message)
        if self._on_notice is not None:
            notice = Notice(kind=f"kucoin_ws_{kind}", message=message, at=self._clock(),
                            fields={"venue": self.venue, "connection": str(slot.id), **(fields or {})})
            try:
                self._on_notice(notice)
            except Exception:
                log.exception("kucoin ws: on_notice failed")

    def _sink_failed(self) -> None:
        self.sink_errors += 1
        if self.sink_errors <= 10 or self.sink_errors % 1000 == 0:
            log.exception("kucoin ws: on_updates raised (%d so far)", self.sink_errors)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


Top = tuple[float, float, float, float]


def _top(update: BookUpdate) -> Top | None:
    """Best bid, its size, best ask, its size: what ticker:all and a depth push must agree on."""
    bids, asks = update.bids, update.asks
    if not bids or not asks:
        return None
    return bids[0][0], bids[0][1], asks[0][0], asks[0][1]


def _concerns_connection(frame: ErrorFrame) -> bool:
    text = (frame.data or "").lower()
    return str(frame.code) in ("401", "509") or "token" in text or "limit" in text


def _splice(snap: BookUpdate, buffered: list[BookUpdate]) -> list[BookUpdate] | None:
    """``[snap, *deltas after it]`` if the deltas continue the snapshot without a hole, else None."""
    seq = snap.sequence
    out = [snap]
    for delta in buffered:
        if delta.sequence <= seq:
            continue
        start = delta.sequence_start if delta.sequence_start is not None else delta.sequence
        if start > seq + 1:
            return None
        out.append(delta)
        seq = delta.sequence
    return out
