"""A ``Venue`` for any exchange ccxt supports: REST through ccxt, books through ccxt.pro or REST polling.

- **REST** (``ccxt.async_support``): markets with their ticks, lots and minimums (whatever precision
  mode the exchange uses), this account's fees (``fetch_trading_fees`` when it has them and we are
  authenticated, else the market's), balances, and limit IOC orders carrying our ``client_oid`` as
  ``clientOrderId``. A retried ``client_oid`` is looked up before anything is sent again, so an order
  is never placed twice; errors leave as ``VenueError`` (``RetryableVenueError`` for rate limits,
  timeouts and outages) with credentials scrubbed from their messages.
- **Streaming**: with ``streaming="auto"`` ccxt.pro where the exchange has ``watchOrderBook``, REST
  polling otherwise (``"ws"``/``"rest"`` force one). ccxt.pro multiplexes every watch of an instance
  on one socket and does not shard past an exchange's topic limits (KuCoin: 300 per connection), so
  the symbols are split into groups of ``symbols_per_connection``, one ccxt.pro instance (one
  connection) per group. Every watch has a staleness watchdog: ccxt.pro can go silent after an error
  frame (a failed subscribe stalls its receive loop; reference §0.4), so a watch that yields nothing
  for ``watch_timeout_s`` while its whole group is silent too recycles the group's instance (closed,
  recreated, resubscribed, its books reported through ``on_gap``). A quiet book on a live group is
  left alone.
- **REST polling** fetches each book in turn at most every ``poll_interval_s`` (default: as fast as the
  exchange's ``rateLimit`` allows for all symbols), with ccxt's own rate limiter on.

Configured by exchange id (``[ccxt.<id>]`` in the settings) with credentials from the environment
(``CRYPTOARB_SECRETS__CCXT__<ID>__API_KEY`` / ``__SECRET`` / ``__PASSWORD`` / ``__UID``):
:meth:`CcxtVenue.from_settings`. ``api_url`` / ``ws_url`` point every REST / websocket URL elsewhere, e.g.
at ``cryptoarb sim-server``. ``market_data`` replaces the book stream with a native adapter (the
Coinbase feed client, say) while orders stay on ccxt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE

from cryptoarb.model import (
    Balance,
    BookUpdate,
    Fill,
    Market,
    Notice,
    Order,
    OrderResult,
    OrderStatus,
    Side,
    Ticker,
)
from cryptoarb.venues.base import OrderNotFoundError, RetryableVenueError, VenueError
from cryptoarb.venues.kucoin.limits import Backoff, chunks

log = logging.getLogger(__name__)

ZERO = Decimal(0)
MarketData = Callable[[Sequence[str]], AsyncIterator[list[BookUpdate]]]
_RETRYABLE = (ccxt_errors.NetworkError, ccxt_errors.RateLimitExceeded, ccxt_errors.DDoSProtection,
              ccxt_errors.ExchangeNotAvailable, ccxt_errors.RequestTimeout, ccxt_errors.OnMaintenance)
_RATE_LIMITED = (ccxt_errors.RateLimitExceeded, ccxt_errors.DDoSProtection)  # refused, not processed
_REJECTIONS = (ccxt_errors.InvalidOrder, ccxt_errors.InsufficientFunds, ccxt_errors.BadSymbol)
_FINAL = {"closed", "canceled", "cancelled", "expired", "rejected"}


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "get_secret_value", None)
    return reveal() if reveal is not None else str(value)


def _dec(x: Any) -> Decimal:
    return ZERO if x is None else Decimal(repr(x)) if isinstance(x, float) else Decimal(str(x))


class _Stale(Exception):
    """A ccxt.pro group whose every watch went silent: recycle its instance."""


class CcxtVenue:
    def __init__(self, exchange_id: str, *, name: str | None = None, credentials: Any = None,
                 api_url: str | None = None, ws_url: str | None = None, options: Mapping[str, Any] | None = None,
                 streaming: str = "auto", symbols_per_connection: int = 100, watch_timeout_s: float = 30.0,
                 poll_interval_s: float | None = None, depth: int = 20, sandbox: bool = False,
                 enable_rate_limit: bool = True, timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 market_data: MarketData | None = None, on_gap: Callable[[str], None] | None = None,
                 on_notice: Callable[[Notice], None] | None = None) -> None:
        if exchange_id not in ccxt_async.exchanges:
            raise VenueError(f"ccxt does not support exchange {exchange_id!r}")
        if streaming not in ("auto", "ws", "rest"):
            raise ValueError("streaming must be auto, ws or rest")
        self.exchange_id = exchange_id
        self.name = name or exchange_id
        self.streaming = streaming
        self.symbols_per_connection = symbols_per_connection
        self.watch_timeout_s = watch_timeout_s
        self.poll_interval_s = poll_interval_s
        self.depth = depth
        self._clock = clock
        self._market_data = market_data
        self._on_gap = on_gap
        self._on_notice = on_notice
        creds = credentials if isinstance(credentials, Mapping) else (
            credentials.model_dump() if hasattr(credentials, "model_dump") else {})
        self._creds = {k: _secret(creds.get(k)) for k in ("api_key", "secret", "password", "uid")}
        self._secrets = tuple(v for v in self._creds.values() if v)
        self._config = {
            "apiKey": self._creds["api_key"], "secret": self._creds["secret"], "password": self._creds["password"],
            "uid": self._creds["uid"], "enableRateLimit": enable_rate_limit, "timeout": int(timeout_s * 1000),
            "options": dict(options or {}),
        }
        self._api_url = api_url.rstrip("/") if api_url else None
        self._ws_url = ws_url
        self._sandbox = sandbox
        self._ex = self._instance(ccxt_async)
        self._by_symbol: dict[str, dict[str, Any]] = {}  # our symbol -> ccxt market
        self._markets: dict[str, Market] = {}
        self._orders: dict[str, tuple[Order, str | None]] = {}  # client_oid -> (order, exchange id)
        self._final: dict[str, OrderResult] = {}
        self._pro: list[Any] = []
        self._ob_limits: dict[int, int | None] = {}
        self.stats: dict[str, int] = {"recycles": 0, "watch_timeouts": 0, "polls": 0, "books": 0, "errors": 0}

    @classmethod
    def from_settings(cls, settings: Any, exchange_id: str, **overrides: Any) -> CcxtVenue:
        """The venue ``[ccxt.<exchange_id>]`` describes, with credentials from ``secrets.ccxt``."""
        cfg = settings.ccxt.get(exchange_id)
        creds = (settings.secrets.ccxt or {}).get(exchange_id)
        kwargs: dict[str, Any] = {}
        if cfg is not None:
            kwargs = {"api_url": cfg.api_url, "ws_url": cfg.ws_url, "options": cfg.options,
                      "streaming": cfg.streaming, "symbols_per_connection": cfg.symbols_per_connection,
                      "watch_timeout_s": cfg.watch_timeout_s, "poll_interval_s": cfg.poll_interval_s,
                      "depth": cfg.depth, "sandbox": cfg.sandbox}
        return cls(exchange_id, credentials=creds, **{**kwargs, **overrides})

    def _instance(self, module: Any) -> Any:
        ex = getattr(module, self.exchange_id)(dict(self._config, options=dict(self._config["options"])))
        if self._sandbox:
            ex.set_sandbox_mode(True)
        api = ex.urls.get("api")
        if self._api_url or self._ws_url:
            ex.urls["api"] = self._pointed(api)
        return ex

    def _pointed(self, api: Any, key: str = "") -> Any:
        if isinstance(api, dict):
            return {k: self._pointed(v, k if key != "ws" else key) for k, v in api.items()}
        if isinstance(api, str):
            if key == "ws" or api.startswith(("ws://", "wss://")):
                return self._ws_url or api
            return self._api_url or api
        return api

    @property
    def authenticated(self) -> bool:
        return bool(self._creds["api_key"] and self._creds["secret"])

    # -- errors ----------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:500]

    def _error(self, what: str, exc: Exception) -> VenueError:
        message = self._scrub(f"{self.name} {what}: {type(exc).__name__}: {exc}")
        if isinstance(exc, ccxt_errors.OrderNotFound):
            return OrderNotFoundError(message)
        if isinstance(exc, _RETRYABLE):
            return RetryableVenueError(message, unprocessed=isinstance(exc, _RATE_LIMITED))
        return VenueError(message)

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ccxt_errors.BaseError as exc:
            self.stats["errors"] += 1
            raise self._error(what, exc) from None

    # -- markets and market data -------------------------------------------------------------------------
    async def load_markets(self) -> list[Market]:
        raw = await self._call("load_markets", self._ex.load_markets, True)
        spot = [m for m in raw.values() if m.get("spot", True) and m.get("type", "spot") == "spot"]
        fees: dict[str, Any] = {}
        if self.authenticated and self._ex.has.get("fetchTradingFees"):
            with contextlib.suppress(VenueError):
                fees = await self._call("fetch_trading_fees", self._ex.fetch_trading_fees)
        self._by_symbol = {}
        self._markets = {}
        for m in spot:
            market = self._market(m, fees.get(m["symbol"]))
            self._by_symbol[market.symbol] = m
            self._markets[market.symbol] = market
        return list(self._markets.values())

    def _market(self, m: dict[str, Any], fee: Mapping[str, Any] | None) -> Market:
        precision, limits = m.get("precision") or {}, m.get("limits") or {}
        tick = self._increment(precision.get("price"))
        lot = self._increment(precision.get("amount"))
        min_size = _dec((limits.get("amount") or {}).get("min")) or lot
        min_funds = _dec((limits.get("cost") or {}).get("min"))
        taker = _dec((fee or {}).get("taker", m.get("taker")) or 0)
        maker = _dec((fee or {}).get("maker", m.get("maker")) or 0)
        return Market(venue=self.name, symbol=f"{m['base']}-{m['quote']}", base=m["base"], quote=m["quote"],
                      price_tick=tick, size_increment=lot, min_size=max(min_size, lot), min_funds=min_funds,
                      taker_fee=taker, maker_fee=maker,
                      fee_currency="received" if m.get("feeSide") == "get" else "quote",
                      enabled=bool(m.get("active", True) is not False))

    def _increment(self, value: Any) -> Decimal:
        if value is None:
            return Decimal("1e-8")
        mode = getattr(self._ex, "precisionMode", TICK_SIZE)
        if mode == DECIMAL_PLACES or (mode == SIGNIFICANT_DIGITS and float(value) >= 1 and float(value).is_integer()):
            return Decimal(1).scaleb(-int(value))
        return _dec(value)

    def ccxt_symbol(self, symbol: str) -> str:
        try:
            return self._by_symbol[symbol]["symbol"]
        except KeyError:
            raise VenueError(f"{self.name}: unknown symbol {symbol!r} (load_markets first)") from None

    def _ours(self, ccxt_symbol: str) -> str:
        m = self._ex.markets.get(ccxt_symbol) if self._ex.markets else None
        return f"{m['base']}-{m['quote']}" if m else ccxt_symbol.replace("/", "-")

    async def fetch_tickers(self) -> list[Ticker]:
        raw = await self._call("fetch_tickers", self._ex.fetch_tickers)
        out = []
        for t in raw.values():
            symbol = self._ours(t["symbol"])
            if symbol in self._markets:
                out.append(Ticker(venue=self.name, symbol=symbol, bid=float(t.get("bid") or 0.0),
                                  bid_size=float(t.get("bidVolume") or 0.0), ask=float(t.get("ask") or 0.0),
                                  ask_size=float(t.get("askVolume") or 0.0), ts_ms=int(t.get("timestamp") or 0)))
        return out

    async def fetch_book(self, symbol: str, depth: int = 20) -> BookUpdate:
        try:
            ob = await self._order_book(self.ccxt_symbol(symbol), depth)
        except ccxt_errors.BaseError as exc:
            raise self._error("fetch_order_book", exc) from None
        return self._book(symbol, ob, depth, None)

    async def _order_book(self, ccxt_symbol: str, depth: int) -> Any:
        """``fetch_order_book`` with the smallest limit the exchange accepts that covers ``depth`` (many
        take only a few values: KuCoin 20 or 100); the limit that worked is remembered."""
        limit = self._ob_limits.get(depth)
        if limit is not None or depth in self._ob_limits:
            return await self._ex.fetch_order_book(ccxt_symbol, limit)
        candidates = [depth, *(n for n in (5, 10, 20, 25, 50, 100, 200, 500, 1000) if n > depth), None]
        for i, limit in enumerate(candidates):
            try:
                ob = await self._ex.fetch_order_book(ccxt_symbol, limit)
            except (ccxt_errors.BadRequest, ccxt_errors.ExchangeError) as exc:
                if isinstance(exc, _RETRYABLE + _REJECTIONS) or i == len(candidates) - 1:
                    raise
                continue
            self._ob_limits[depth] = limit
            return ob
        raise AssertionError("unreachable")

    def _book(self, symbol: str, ob: Mapping[str, Any], depth: int, sequence: int | None) -> BookUpdate:
        nonce = ob.get("nonce")
        seq = sequence if sequence is not None else int(nonce) if isinstance(nonce, int) else 0
        return BookUpdate(venue=self.name, symbol=symbol,
                          bids=tuple((float(r[0]), float(r[1])) for r in ob["bids"][:depth] if r[1]),
                          asks=tuple((float(r[0]), float(r[1])) for r in ob["asks"][:depth] if r[1]),
                          sequence=seq, exchange_ts_ms=int(ob.get("timestamp") or 0), received_at=self._clock(),
                          snapshot=True)

    def stream_books(self, symbols: Collection[str] | None = None) -> AsyncIterator[list[BookUpdate]]:
        wanted = sorted(symbols if symbols is not None else self._markets)
        if self._market_data is not None:
            return self._market_data(wanted)
        for s in wanted:
            self.ccxt_symbol(s)
        if self.uses_websocket:
            return self._stream_ws(wanted)
        return self._stream_rest(wanted)

    @property
    def uses_websocket(self) -> bool:
        """Whether books stream through ccxt.pro (else REST polling)."""
        if self.streaming == "rest":
            return False
        import ccxt.pro as ccxt_pro

        has = self.exchange_id in ccxt_pro.exchanges and bool(
            getattr(ccxt_pro, self.exchange_id)().has.get("watchOrderBook"))  # no IO until a call
        if self.streaming == "ws" and not has:
            raise VenueError(f"{self.name}: ccxt.pro has no watchOrderBook for {self.exchange_id}")
        return has

    # -- ccxt.pro ----------------------------------------------------------------------------------------
    async def _stream_ws(self, symbols: list[str]) -> AsyncIterator[list[BookUpdate]]:
        queue: asyncio.Queue[list[BookUpdate]] = asyncio.Queue()
        groups = chunks(symbols, self.symbols_per_connection)
        tasks = [asyncio.create_task(self._group(i, g, queue), name=f"{self.name}-pro-{i}")
                 for i, g in enumerate(groups)]
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                for task in done:
                    task.result()  # a group only ends by raising
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _group(self, index: int, symbols: list[str], queue: asyncio.Queue[list[BookUpdate]]) -> None:
        """One ccxt.pro instance (one connection) for ``symbols``, recycled when it stalls or fails."""
        import ccxt.pro as ccxt_pro

        backoff = Backoff(0.5, 30.0, 0.5)
        seq = dict.fromkeys(symbols, 0)
        while True:
            ex = self._instance(ccxt_pro)  # it loads its own markets on its first watch
            self._pro.append(ex)
            state = {"last": self._clock(), "delivered": False}
            reason = ""
            try:
                async with asyncio.TaskGroup() as tg:
                    for s in symbols:
                        tg.create_task(self._watch(ex, s, seq, state, queue, backoff))
            except* _Stale:
                reason = f"silent for {self.watch_timeout_s:g} s"
            except* (ccxt_errors.BaseError, OSError) as group:
                reason = "; ".join(self._scrub(f"{type(e).__name__}: {e}") for e in group.exceptions)[:300]
            finally:
                self._pro.remove(ex)
                with contextlib.suppress(Exception):
                    await ex.close()
            self.stats["recycles"] += 1
            log.warning("%s ccxt.pro group %d recycled: %s", self.name, index, reason)
            if self._on_gap is not None:
                for s in symbols:
                    self._on_gap(s)
            if self._on_notice is not None:
                self._on_notice(Notice(kind="connection", at=self._clock(),
                                       message=f"{self.name}: book stream {index} restarted ({reason})"))
            await asyncio.sleep(backoff.next_delay())

    async def _watch(self, ex: Any, symbol: str, seq: dict[str, int], state: dict[str, Any],
                     queue: asyncio.Queue[list[BookUpdate]], backoff: Backoff) -> None:
        ccxt_symbol = self.ccxt_symbol(symbol)
        limit = self.depth if self.depth in (5, 20, 50, 100) else None
        while True:
            try:
                ob = await asyncio.wait_for(ex.watch_order_book(ccxt_symbol, limit), self.watch_timeout_s)
            except TimeoutError:
                self.stats["watch_timeouts"] += 1
                if self._clock() - state["last"] >= self.watch_timeout_s:
                    raise _Stale(symbol) from None
                continue  # a quiet book on a live connection
            state["last"] = self._clock()
            if not state["delivered"]:
                state["delivered"] = True
                backoff.reset()
            seq[symbol] += 1
            self.stats["books"] += 1
            queue.put_nowait([self._book(symbol, ob, self.depth, seq[symbol])])

    # -- REST polling ------------------------------------------------------------------------------------
    async def _stream_rest(self, symbols: list[str]) -> AsyncIterator[list[BookUpdate]]:
        rate_s = (getattr(self._ex, "rateLimit", 1000) or 1000) / 1000
        period = self.poll_interval_s or max(1.0, rate_s * len(symbols))
        self._ex.enableRateLimit = True  # polling always stays within the exchange's limits
        seq = dict.fromkeys(symbols, 0)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            for symbol in symbols:
                try:
                    ob = await self._order_book(self.ccxt_symbol(symbol), self.depth)
                except _RETRYABLE as exc:
                    self.stats["errors"] += 1
                    log.warning("%s poll %s: %s", self.name, symbol, self._scrub(str(exc)))
                    if self._on_gap is not None:
                        self._on_gap(symbol)
                    continue
                seq[symbol] += 1
                self.stats["polls"] += 1
                self.stats["books"] += 1
                yield [self._book(symbol, ob, self.depth, seq[symbol])]
            await asyncio.sleep(max(0.0, started + period - loop.time()))

    # -- account and orders ------------------------------------------------------------------------------
    async def fetch_balances(self) -> list[Balance]:
        raw = await self._call("fetch_balance", self._ex.fetch_balance)
        free, total = raw.get("free") or {}, raw.get("total") or {}
        return [Balance(venue=self.name, asset=a, free=_dec(free.get(a)), total=_dec(t))
                for a, t in sorted(total.items()) if t]

    async def place_order(self, order: Order) -> OrderResult:
        """A limit IOC; a retried ``client_oid`` is answered from what the venue knows, never sent twice."""
        if (done := self._final.get(order.client_oid)) is not None:
            return done
        if order.client_oid in self._orders:  # an earlier attempt's fate is unknown: ask before sending again
            try:
                return await self.fetch_order(order.symbol, order.client_oid)
            except OrderNotFoundError:
                pass  # it never reached the book
        symbol = self.ccxt_symbol(order.symbol)
        self._orders[order.client_oid] = (order, None)
        params = {"timeInForce": order.time_in_force, "clientOrderId": order.client_oid}
        try:
            placed = await self._ex.create_order(symbol, order.type, order.side.value, float(order.size),
                                                 float(order.price), params)
        except _REJECTIONS as exc:
            result = OrderResult(order, OrderStatus.REJECTED, reason=self._scrub(f"{type(exc).__name__}: {exc}"))
            self._final[order.client_oid] = result
            return result
        except ccxt_errors.BaseError as exc:
            if not isinstance(exc, _RETRYABLE):
                del self._orders[order.client_oid]  # refused outright: nothing was placed
            raise self._error("create_order", exc) from None
        self._orders[order.client_oid] = (order, placed.get("id"))
        return await self._resolve(order, placed)

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        if (done := self._final.get(client_oid)) is not None:
            return done
        known = self._orders.get(client_oid)
        sym = self.ccxt_symbol(symbol)
        try:
            if known is not None and known[1] is not None:
                raw = await self._ex.fetch_order(known[1], sym)
            else:
                raw = await self._ex.fetch_order(None, sym, {"clientOrderId": client_oid})
        except ccxt_errors.BaseError as exc:
            raise self._error("fetch_order", exc) from None
        if not raw or not raw.get("id"):
            raise OrderNotFoundError(f"{self.name}: order {client_oid} not found")
        order = known[0] if known is not None else self._order_from(raw, client_oid, symbol)
        self._orders[client_oid] = (order, raw["id"])
        return await self._resolve(order, raw)

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        if client_oid in self._final:
            return  # final already: nothing left to cancel
        known = self._orders.get(client_oid)
        sym = self.ccxt_symbol(symbol)
        try:
            if known is not None and known[1] is not None:
                await self._ex.cancel_order(known[1], sym)
            else:
                await self._ex.cancel_order(None, sym, {"clientOrderId": client_oid})
        except ccxt_errors.OrderNotFound as exc:
            if known is None:
                raise self._error("cancel_order", exc) from None
        except ccxt_errors.BaseError as exc:
            raise self._error("cancel_order", exc) from None

    async def _resolve(self, order: Order, raw: Mapping[str, Any]) -> OrderResult:
        """Follow the order to a final state (an IOC ends at once) and turn it into an ``OrderResult``."""
        symbol = self.ccxt_symbol(order.symbol)
        for _ in range(5):
            status = raw.get("status")
            if status in _FINAL and raw.get("filled") is not None:
                break
            raw = await self._call("fetch_order", self._ex.fetch_order, raw["id"], symbol)
        result = await self._result(order, raw)
        if result.status is not OrderStatus.NEW:
            self._final[order.client_oid] = result
        return result

    async def _result(self, order: Order, raw: Mapping[str, Any]) -> OrderResult:
        market = self._markets[order.symbol]
        filled = _dec(raw.get("filled"))
        status = raw.get("status")
        if status == "rejected":
            return OrderResult(order, OrderStatus.REJECTED, reason=str(raw.get("info", ""))[:200])
        if status not in _FINAL:
            return OrderResult(order, OrderStatus.NEW)
        fills: list[Fill] = []
        if filled > 0:
            trades = list(raw.get("trades") or ())
            if not trades and self._ex.has.get("fetchOrderTrades"):
                with contextlib.suppress(ccxt_errors.BaseError):
                    trades = await self._ex.fetch_order_trades(raw["id"], self.ccxt_symbol(order.symbol))
            fills = [self._fill(order, market, t, i) for i, t in enumerate(trades)] if trades else [
                self._fill(order, market, {"price": raw.get("average") or raw.get("price"), "amount": filled,
                                           "fee": raw.get("fee")}, 0)]
        if filled >= order.size:
            state = OrderStatus.FILLED
        elif filled > 0:
            state = OrderStatus.PARTIAL
        else:
            state = OrderStatus.CANCELED
        return OrderResult(order, state, tuple(fills))

    def _fill(self, order: Order, market: Market, trade: Mapping[str, Any], i: int) -> Fill:
        price, size = _dec(trade.get("price")), _dec(trade.get("amount"))
        fee = trade.get("fee") or {}
        if fee.get("cost") is not None and fee.get("currency"):
            cost, asset = _dec(fee["cost"]), str(fee["currency"])
        elif order.side is Side.BUY and market.fee_currency == "received":
            cost, asset = size * market.taker_fee, market.base
        else:
            cost, asset = price * size * market.taker_fee, market.quote
        return Fill(client_oid=order.client_oid, opportunity_id=order.opportunity_id, leg_index=order.leg_index,
                    venue=self.name, symbol=order.symbol, side=order.side, price=price, size=size, fee=cost,
                    fee_asset=asset, at=self._clock())

    def _order_from(self, raw: Mapping[str, Any], client_oid: str, symbol: str) -> Order:
        return Order(client_oid=client_oid, opportunity_id="", leg_index=0, venue=self.name, symbol=symbol,
                     side=Side(raw.get("side") or "buy"), price=_dec(raw.get("price")), size=_dec(raw.get("amount")),
                     created_at=self._clock(), type=raw.get("type") or "limit",
                     time_in_force=raw.get("timeInForce") or "IOC")

    async def close(self) -> None:
        for ex in list(self._pro):
            with contextlib.suppress(Exception):
                await ex.close()
        await self._ex.close()
