"""KuCoin private pushes over a bullet-private websocket: our orders and our balances.

The token comes from ``POST /api/v1/bullet-private``, signed like every private REST call (``KC-API-*``
headers: HMAC-SHA256 of timestamp + method + path + body, passphrase signed too, key version 2; see
:mod:`cryptoarb.venues.kucoin.signing`). The socket then goes through KuCoin's protocol (reference §A.2):
welcome, a ping every ``pingInterval`` answered by a pong, and one acked subscribe with
``privateChannel: true`` for each of ``/spotMarket/tradeOrdersV2`` and ``/account/balance``.

``orderChange`` pushes become :class:`~cryptoarb.venues.base.OrderUpdate` s, handed to every iterator of
:meth:`KucoinPrivateStream.order_updates` (the :class:`~cryptoarb.venues.base.OrderUpdateSource` protocol
that ``LiveExecutor.follow`` consumes); ``account.balance`` pushes become :class:`BalanceUpdate` s for the
``on_balance`` callback.

Any failure (socket closed, missed pong, ``token is expired``, a refused subscribe) ends the session; the
stream reconnects on a fresh token after a jittered exponential backoff. KuCoin does not replay pushes
missed while disconnected: the executor's REST lookups by client order id cover them (the
``OrderUpdateSource`` contract). A refused signature is not retried: the stream stops with
:class:`~cryptoarb.venues.kucoin.rest.KucoinAuthError`, raised from :meth:`run`, :meth:`wait_live` and
every ``order_updates()`` iterator, with KuCoin's code and message and never a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from cryptoarb.model import Balance, Fill, Market, Notice, Order, OrderStatus, Side
from cryptoarb.venues.base import OrderUpdate
from cryptoarb.venues.kucoin.codec import VENUE, encode
from cryptoarb.venues.kucoin.limits import Backoff
from cryptoarb.venues.kucoin.rest import KucoinAuthError, KucoinRateLimited, KucoinRestError
from cryptoarb.venues.kucoin.signing import Credentials, signed_headers

log = logging.getLogger(__name__)

BULLET_PRIVATE = "/api/v1/bullet-private"
ORDERS_V2 = "/spotMarket/tradeOrdersV2"
ORDERS_V1 = "/spotMarket/tradeOrders"
BALANCE = "/account/balance"
ZERO = Decimal(0)
# Refusals that retrying cannot cure: header missing, unknown key, bad passphrase, bad signature, IP not
# allowed, no permission. 400002 (timestamp) is retried: a clock that was off may be corrected.
AUTH_CODES = frozenset({"400001", "400003", "400004", "400005", "400006", "400007"})
_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)

FeeRate = Callable[[str, str], Decimal]
"""``fee_rate(symbol, liquidity)``: this account's fee rate on ``symbol`` as ``"taker"`` or ``"maker"``."""
OrderLookup = Callable[[str], Order | None]
"""``order_lookup(client_oid)``: the order we sent, for the opportunity and leg its fills belong to."""


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """One ``/account/balance`` push: the new balance of ``asset`` and what changed it."""

    venue: str
    asset: str
    total: Decimal
    available: Decimal
    hold: Decimal
    available_change: Decimal
    hold_change: Decimal
    event: str  # KuCoin's relationEvent, e.g. "trade.hold", "trade.setted"
    symbol: str
    order_id: str
    ts_ms: int
    at: float

    @property
    def balance(self) -> Balance:
        return Balance(venue=self.venue, asset=self.asset, free=self.available, total=self.total)


@dataclass(frozen=True, slots=True)
class PrivateWsOptions:
    topics: tuple[str, ...] = (ORDERS_V2, BALANCE)
    key_version: str = "2"
    welcome_timeout_s: float = 10.0
    ack_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.5
    ping_interval_s: float | None = None  # None: the server's pingInterval
    ping_timeout_s: float | None = None  # None: the server's pingTimeout
    token_refresh_s: float = 23 * 3600.0  # tokens last 24 h: reconnect on a fresh one before


# -- decoding ------------------------------------------------------------------------------------------
class _OrderData(msgspec.Struct):
    symbol: str = ""
    side: str = ""
    orderId: str = ""
    clientOid: str = ""
    type: str = ""
    status: str = ""
    filledSize: str | None = None
    matchPrice: str | None = None
    matchSize: str | None = None
    liquidity: str | None = None
    ts: int = 0


class _Relation(msgspec.Struct):
    symbol: str = ""
    orderId: str = ""


class _BalanceData(msgspec.Struct):
    currency: str
    total: str
    available: str
    hold: str = "0"
    availableChange: str = "0"
    holdChange: str = "0"
    relationEvent: str = ""
    relationContext: _Relation | None = None
    time: str | int = 0


class _Frame(msgspec.Struct):
    type: str = ""
    id: str | int | None = None
    topic: str = ""
    subject: str = ""
    code: str | int | None = None
    data: Any = None


_decode_frame = msgspec.json.Decoder(_Frame).decode


def _dec(value: str | None) -> Decimal:
    return Decimal(value) if value else ZERO


def order_update(data: Any, *, venue: str = VENUE, at: float = 0.0, fee_rate: FeeRate | None = None,
                 order_lookup: OrderLookup | None = None) -> OrderUpdate:
    """An ``orderChange`` push's ``data`` (V1 or V2) as an :class:`OrderUpdate`.

    ``received``/``open``/``update`` are NEW (PARTIAL once something filled); ``match`` is PARTIAL and
    carries the fill it reports; ``filled`` and ``canceled`` (status ``done``) are final: FILLED, or
    PARTIAL/CANCELED by what filled. KuCoin's push has no fee: it is ``price * size * fee_rate(symbol,
    liquidity)`` in the quote currency (how KuCoin charges spot fees), 0 without ``fee_rate``; the order's
    REST view has the exact one. Raises ``ValueError`` (or msgspec's) on a malformed ``data``.
    """
    d = msgspec.convert(data, _OrderData)
    filled = _dec(d.filledSize)
    final = d.status == "done" or d.type in ("filled", "canceled")
    if not final:
        status = OrderStatus.PARTIAL if filled > 0 else OrderStatus.NEW
    elif d.type == "filled":
        status = OrderStatus.FILLED
    else:
        status = OrderStatus.PARTIAL if filled > 0 else OrderStatus.CANCELED
    fills: tuple[Fill, ...] = ()
    if d.type == "match" and d.matchSize:
        price, size = _dec(d.matchPrice), _dec(d.matchSize)
        liquidity = d.liquidity or "taker"
        rate = fee_rate(d.symbol, liquidity) if fee_rate is not None else ZERO
        sent = order_lookup(d.clientOid) if order_lookup is not None else None
        fills = (Fill(client_oid=d.clientOid, opportunity_id=sent.opportunity_id if sent else "",
                      leg_index=sent.leg_index if sent else 0, venue=venue, symbol=d.symbol, side=Side(d.side),
                      price=price, size=size, fee=price * size * rate, fee_asset=d.symbol.rpartition("-")[2],
                      at=at),)
    return OrderUpdate(venue=venue, symbol=d.symbol, client_oid=d.clientOid, status=status, filled_size=filled,
                       fills=fills, final=final, at=at)


def balance_update(data: Any, *, venue: str = VENUE, at: float = 0.0) -> BalanceUpdate:
    """An ``account.balance`` push's ``data`` as a :class:`BalanceUpdate`."""
    d = msgspec.convert(data, _BalanceData)
    rel = d.relationContext or _Relation()
    return BalanceUpdate(venue=venue, asset=d.currency, total=_dec(d.total), available=_dec(d.available),
                         hold=_dec(d.hold), available_change=_dec(d.availableChange),
                         hold_change=_dec(d.holdChange), event=d.relationEvent, symbol=rel.symbol,
                         order_id=rel.orderId, ts_ms=int(d.time or 0), at=at)


def fee_rates(markets: Iterable[Market]) -> FeeRate:
    """A ``fee_rate`` from this account's markets (``KucoinRest.load_markets()``)."""
    table = {m.symbol: (m.taker_fee, m.maker_fee) for m in markets}

    def rate(symbol: str, liquidity: str) -> Decimal:
        taker, maker = table.get(symbol, (ZERO, ZERO))
        return maker if liquidity == "maker" else taker

    return rate


# -- the stream ----------------------------------------------------------------------------------------
class _SessionDead(Exception):
    """Why a session ended; the stream reconnects."""


@dataclass(slots=True)
class _ConnectInfo:
    url: URL
    ping_interval_s: float
    ping_timeout_s: float


class _End:
    """Queued to the iterators when the stream stops; ``error`` is raised from them if set."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class KucoinPrivateStream:
    """This account's order and balance pushes, an ``OrderUpdateSource`` for ``LiveExecutor.follow``.

    ``clock`` stamps updates (the engine's clock, seconds); ``time_ms`` is the wall clock the signature's
    timestamp is taken from. ``on_balance`` receives every :class:`BalanceUpdate` synchronously;
    ``on_notice`` gets connection trouble and error frames worth showing a person; ``on_live(live)`` is
    called whenever the stream goes live (both topics subscribed) or stops being live, the moment from
    which pushes may be missed. ``fee_rate`` and ``order_lookup`` complete the fills of ``match`` pushes
    (fee; opportunity and leg), see :func:`order_update`.

    :meth:`order_updates` (or :meth:`start`) starts the connection if :meth:`run` is not driving it already;
    :meth:`close` stops it and ends every iterator.
    """

    def __init__(self, session: aiohttp.ClientSession, credentials: Credentials,
                 rest_url: str = "https://api.kucoin.com", clock: Callable[[], float] = time.monotonic, *,
                 venue: str = VENUE, on_balance: Callable[[BalanceUpdate], None] | None = None,
                 on_notice: Callable[[Notice], None] | None = None, fee_rate: FeeRate | None = None,
                 order_lookup: OrderLookup | None = None, options: PrivateWsOptions | None = None,
                 time_ms: Callable[[], int] | None = None,
                 backoff_factory: Callable[[], Backoff] | None = None,
                 on_live: Callable[[bool], None] | None = None) -> None:
        self.options = opts = options or PrivateWsOptions()
        self.venue = venue
        self._http = session
        self._creds = credentials
        self._rest = rest_url.rstrip("/")
        self._clock = clock
        self._time_ms = time_ms or (lambda: time.time_ns() // 1_000_000)
        self._on_balance = on_balance
        self._on_notice = on_notice
        self._on_live = on_live
        self._fee_rate = fee_rate
        self._order_lookup = order_lookup
        self._backoff_factory = backoff_factory or (
            lambda: Backoff(opts.backoff_base_s, opts.backoff_max_s, opts.backoff_jitter))
        self._secrets = tuple(s for s in (credentials.secret, credentials.passphrase) if len(s) >= 4)
        self._ids = itertools.count(int(time.time() * 1000))
        self._subscribers: list[asyncio.Queue[OrderUpdate | _End]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failure: BaseException | None = None
        self._live = False
        self._state = asyncio.Event()  # set on every change of live/failure/closed, for wait_live()
        self._ping_id = ""
        self._pong = asyncio.Event()
        self._pending: dict[str, asyncio.Future[_Frame]] = {}
        self.connects = 0
        self.messages = 0
        self.order_update_count = 0
        self.balance_update_count = 0
        self.decode_errors = 0
        self.errors = 0
        self.last_reason = ""
        self.last_received_at: float | None = None

    # -- public ---------------------------------------------------------------------------------------
    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """Every order update pushed from now on, in the order KuCoin sent them, until the stream stops
        (raising its error if it stopped on one). Starts the stream if it is not running."""
        queue: asyncio.Queue[OrderUpdate | _End] = asyncio.Queue()
        if self._closed or (self._task is not None and self._task.done()):
            queue.put_nowait(_End(self._failure))
        else:
            self._subscribers.append(queue)
            self.start()
        return self._iterate(queue)

    def start(self) -> asyncio.Task[None]:
        """Start connecting (idempotent); the task ends with the stream."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name="kucoin-private-ws")
            self._task.add_done_callback(_retrieve)
        return self._task

    async def run(self) -> None:
        """Stay connected until :meth:`close` or cancellation; raises ``KucoinAuthError`` if refused."""
        task = self.start()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and self._closed:  # close() ended it: a normal end
                return
            await self.close()  # run() itself was cancelled: so is the stream
            raise

    async def close(self) -> None:
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._finish(self._failure)

    async def wait_live(self, timeout: float | None = None) -> None:
        """Wait until the socket is up and both topics are subscribed; raises the error that stopped it."""
        async with asyncio.timeout(timeout):
            while not self._live:
                if self._failure is not None:
                    raise self._failure
                if self._closed:
                    raise RuntimeError("kucoin private stream is closed")
                self._state.clear()
                await self._state.wait()

    @property
    def live(self) -> bool:
        return self._live

    @property
    def state(self) -> str:
        """idle (not started), connecting, live, reconnecting, failed (refused credentials), closed."""
        if self._failure is not None:
            return "failed"
        if self._closed or (self._task is not None and self._task.done()):
            return "closed"
        if self._task is None:
            return "idle"
        if self._live:
            return "live"
        return "reconnecting" if self.connects else "connecting"

    def stats(self) -> dict[str, Any]:
        last = self.last_received_at
        return {"state": self.state, "live": self._live, "connects": self.connects,
                "reconnects": max(0, self.connects - 1), "messages": self.messages,
                "order_updates": self.order_update_count,
                "balance_updates": self.balance_update_count, "decode_errors": self.decode_errors,
                "errors": self.errors, "last_reason": self.last_reason,
                "last_message_age_s": None if last is None else round(self._clock() - last, 3)}

    # -- iterators ------------------------------------------------------------------------------------
    async def _iterate(self, queue: asyncio.Queue[OrderUpdate | _End]) -> AsyncIterator[OrderUpdate]:
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(queue)

    def _publish(self, update: OrderUpdate) -> None:
        self.order_update_count += 1
        for queue in self._subscribers:
            queue.put_nowait(update)

    def _finish(self, error: BaseException | None) -> None:
        self._live = False
        subscribers, self._subscribers = self._subscribers, []
        for queue in subscribers:
            queue.put_nowait(_End(error))
        self._state.set()

    # -- connection -----------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = self._backoff_factory()
        try:
            if self._closed:  # started after close(): nothing to do
                return
            while True:
                try:
                    refresh = await self._session(backoff)
                except (KucoinAuthError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from exc  # a cancel that raced the failure wins
                    refresh = False
                    if not isinstance(exc, _SessionDead | aiohttp.ClientError | OSError | TimeoutError
                                      | KucoinRestError):
                        log.exception("kucoin private ws: unexpected failure")
                    self.last_reason = self._safe(str(exc) or type(exc).__name__)
                self._set_live(False)
                if refresh:
                    continue  # a fresh token: reconnect at once
                self._report("disconnected", f"private connection lost: {self.last_reason}", logging.INFO)
                await asyncio.sleep(backoff.next_delay())
        except KucoinAuthError as exc:
            self._failure = exc
            self.last_reason = str(exc)
            self._report("auth_failed", str(exc), logging.ERROR)
            raise
        finally:
            self._finish(self._failure)

    async def _session(self, backoff: Backoff) -> bool:
        """One socket, from the bullet to its end; True when it ended for a token refresh."""
        opts = self.options
        async with asyncio.timeout(opts.welcome_timeout_s):
            info = await self._negotiate()
            ws = await self._http.ws_connect(info.url, autoping=True, heartbeat=None,
                                             timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0))
        self.connects += 1
        try:
            async with asyncio.timeout(opts.welcome_timeout_s):
                msg = await ws.receive()
            if msg.type not in _DATA:
                raise _SessionDead(f"no welcome: {msg.type.name}")
            frame = _decode_frame(msg.data)
            if frame.type != "welcome":
                raise _SessionDead(f"expected welcome, got {frame.type} {frame.code or ''} {frame.data!r}"[:200])
            reader = asyncio.create_task(self._read(ws))
            pinger = asyncio.create_task(self._ping(ws, info))
            try:
                for topic in opts.topics:
                    await self._subscribe(ws, topic, reader)
                self._set_live(True)
                backoff.reset()
                done, _ = await asyncio.wait([reader, pinger], timeout=opts.token_refresh_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    self.last_reason = "token refresh"
                    return True
                for task in done:
                    task.result()
                raise _SessionDead("closed by server")
            finally:
                for task in (reader, pinger):
                    task.cancel()
                for task in (reader, pinger):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                for fut in self._pending.values():
                    fut.cancel()
                self._pending.clear()
        finally:
            self._set_live(False)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _negotiate(self) -> _ConnectInfo:
        opts = self.options
        headers = signed_headers(self._creds, "POST", BULLET_PRIVATE, "", self._time_ms(), opts.key_version)
        async with self._http.post(self._rest + BULLET_PRIVATE, headers=headers) as resp:
            status, raw = resp.status, await resp.read()
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            body = None
        if isinstance(body, dict) and body.get("code") == "200000":
            try:
                data = body["data"]
                server = data["instanceServers"][0]
                return _ConnectInfo(
                    url=URL(server["endpoint"]).update_query(token=data["token"], connectId=uuid.uuid4().hex),
                    ping_interval_s=opts.ping_interval_s or float(server.get("pingInterval", 18000)) / 1000,
                    ping_timeout_s=opts.ping_timeout_s or float(server.get("pingTimeout", 10000)) / 1000)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise _SessionDead(f"bad bullet-private answer: {raw[:200]!r}") from exc
        code = str(body.get("code")) if isinstance(body, dict) and "code" in body else None
        msg = str(body.get("msg") or "") if isinstance(body, dict) else raw[:200].decode(errors="replace")
        text = self._safe(f"kucoin bullet-private refused: HTTP {status}" + (f" {code}" if code else "")
                          + (f": {msg}" if msg else ""))
        if code in AUTH_CODES or (code is None and status in (401, 403)):
            raise KucoinAuthError(text, code=code)
        if status == 429 or code == "429000":
            raise KucoinRateLimited(text, code=code)
        raise _SessionDead(text)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse, topic: str, reader: asyncio.Task[None]) -> None:
        rid = str(next(self._ids))
        fut: asyncio.Future[_Frame] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send_str(encode({"id": rid, "type": "subscribe", "topic": topic, "privateChannel": True,
                                      "response": True}))
            await asyncio.wait([fut, reader], timeout=self.options.ack_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pending.pop(rid, None)
        if not fut.done():
            if reader.done():
                reader.result()  # the reason the socket ended
                raise _SessionDead(f"closed before the {topic} ack")
            raise _SessionDead(f"no ack for subscribe {topic}")
        reply = fut.result()
        if reply.type == "error":
            self._error_frame(reply, f" (subscribe {topic})")
            raise _SessionDead(f"subscribe {topic} refused: {reply.code} {reply.data}")

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse, info: _ConnectInfo) -> None:
        while True:
            await asyncio.sleep(info.ping_interval_s)  # the protocol's cadence
            self._ping_id = str(next(self._ids))
            self._pong.clear()
            await ws.send_str(encode({"id": self._ping_id, "type": "ping"}))
            try:
                await asyncio.wait_for(self._pong.wait(), info.ping_timeout_s)
            except TimeoutError:
                raise _SessionDead(f"no pong within {info.ping_timeout_s:g}s") from None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type not in _DATA:
                if msg.type is aiohttp.WSMsgType.ERROR:
                    raise _SessionDead(f"websocket error: {msg.data}")
                if msg.type in _CLOSING:
                    return
                continue
            now = self._clock()
            self.messages += 1
            self.last_received_at = now
            try:
                frame = _decode_frame(msg.data)
            except msgspec.DecodeError as exc:
                self._undecodable(exc, msg.data)
                continue
            self._dispatch(frame, now)

    def _dispatch(self, frame: _Frame, now: float) -> None:
        kind = frame.type
        if kind == "message":
            try:
                if frame.subject == "orderChange" and frame.topic in (ORDERS_V2, ORDERS_V1):
                    update = order_update(frame.data, venue=self.venue, at=now, fee_rate=self._fee_rate,
                                          order_lookup=self._order_lookup)
                elif frame.topic == BALANCE:
                    balance = balance_update(frame.data, venue=self.venue, at=now)
                    self.balance_update_count += 1
                    if self._on_balance is not None:
                        try:
                            self._on_balance(balance)
                        except Exception:
                            log.exception("kucoin private ws: on_balance failed")
                    return
                else:
                    return
            except (msgspec.ValidationError, ValueError, InvalidOperation, TypeError) as exc:
                self._undecodable(exc, frame.data)
                return
            self._publish(update)
        elif kind == "pong":
            if str(frame.id) == self._ping_id:
                self._pong.set()
        elif kind in ("ack", "error"):
            fut = self._pending.get(str(frame.id))
            if fut is not None and not fut.done():
                fut.set_result(frame)  # the subscriber reports it with its context
            elif kind == "error":
                self._error_frame(frame, "")
                text = str(frame.data or "").lower()
                if str(frame.code) in ("401", "509") or "token" in text or "limit" in text:
                    raise _SessionDead(f"error {frame.code}: {frame.data}")

    # -- reporting ------------------------------------------------------------------------------------
    def _set_live(self, live: bool) -> None:
        if self._live != live:
            self._live = live
            self._state.set()
            if self._on_live is not None:
                try:
                    self._on_live(live)
                except Exception:
                    log.exception("kucoin private ws: on_live failed")

    def _undecodable(self, exc: Exception, data: Any) -> None:
        self.decode_errors += 1
        if self.decode_errors <= 10 or self.decode_errors % 1000 == 0:
            log.warning("kucoin private ws: undecodable frame (%d so far): %s: %r", self.decode_errors, exc,
                        str(data)[:200])

    def _error_frame(self, frame: _Frame, context: str) -> None:
        self.errors += 1
        self._report("error", f"private connection: error {frame.code} {frame.data}{context}", logging.WARNING,
                      {"code": str(frame.code), "id": str(frame.id)})

    def _report(self, kind: str, message: str, level: int, fields: dict[str, str] | None = None) -> None:
        message = self._safe(message)
        log.log(level, "kucoin private ws: %s", message)
        if self._on_notice is not None:
            notice = Notice(kind=f"kucoin_private_ws_{kind}", message=message, at=self._clock(),
                            fields={"venue": self.venue, **(fields or {})})
            try:
                self._on_notice(notice)
            except Exception:
                log.exception("kucoin private ws: on_notice failed")

    def _safe(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:500]


def _retrieve(task: asyncio.Task[None]) -> None:
    """The stream's error reaches its iterators and wait_live(); don't also log it as never retrieved."""
    if not task.cancelled():
        task.exception()
