"""KuCoin spot REST through ccxt: the REST half of the ``Venue`` protocol.

Markets come from ccxt's market precision and limits, per-pair fees from this account's
``/api/v1/trade-fees``. Orders carry our ``client_oid`` as KuCoin's ``clientOid``; a retry of the same
``client_oid`` first looks the order up, so it is never placed twice. Errors leave as ``VenueError``
subclasses whose messages hold KuCoin's code and message, never credentials; ``retryable`` says whether
trying again later can help (rate limits, timeouts, outages).

Every REST URL can be pointed elsewhere (``base_url``), e.g. at ``cryptoarb sim-server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors
from pydantic import SecretStr

from cryptoarb.eager import eager_task
from cryptoarb.model import Balance, BookUpdate, Fill, Market, Order, OrderResult, OrderStatus, Side, Ticker
from cryptoarb.venues.base import VenueError
from cryptoarb.venues.kucoin.order_wire import OrderWire

URL_KEYS = ("public", "private", "futuresPublic", "futuresPrivate", "uta", "utaV2", "utaPrivate", "earn",
            "broker", "webExchange")
FEE_BATCH = 10  # KuCoin's trade-fees takes at most 10 symbols per request
_JSON_BODY = re.compile(r"\{.*\}", re.S)


class KucoinRestError(VenueError):
    """A KuCoin REST failure. ``code`` is KuCoin's error code when it sent one."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class KucoinRateLimited(KucoinRestError):
    """HTTP 429 / code 429000: the request was not processed; retry after the pool resets (<= 30 s)."""

    retryable = True
    unprocessed = True


class KucoinUnavailable(KucoinRestError):
    """Timeout, connection failure or outage: retry later (an order's fate is looked up first)."""

    retryable = True


class KucoinAuthError(KucoinRestError):
    """Bad or missing credentials, signature or permissions."""


class KucoinOrderNotFound(KucoinRestError):
    pass


Secret = str | SecretStr | None


def _reveal(value: Secret) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class KucoinRest:
    """The REST half of a KuCoin ``Venue`` (``stream_books`` lives in ``venues.kucoin.ws``).

    Without credentials only public data works (fees then come from allTickers' base rates).
    ``enable_rate_limit`` keeps ccxt's own request pacing (orders excepted); ``clock`` stamps ``received_at``;
    ``native_orders=False`` sends orders through ccxt's generic request pipeline instead of :class:`OrderWire`.
    """

    def __init__(self, *, api_key: Secret = None, api_secret: Secret = None, api_passphrase: Secret = None,
                 base_url: str | None = None, name: str = "kucoin",
                 clock: Callable[[], float] = time.monotonic, timeout_s: float = 10.0,
                 enable_rate_limit: bool = True, fee_concurrency: int = 4, native_orders: bool = True) -> None:
        self.name = name
        self._clock = clock
        self._fee_concurrency = fee_concurrency
        key, secret, passphrase = _reveal(api_key), _reveal(api_secret), _reveal(api_passphrase)
        # scrubbed from error texts; a credential too short to scrub safely is not worth mangling them
        self._secrets = tuple(s for s in (key, secret, passphrase) if s and len(s) >= 4)
        self._authenticated = bool(key and secret and passphrase)
        self._ex = ccxt_async.kucoin({
            "apiKey": key, "secret": secret, "password": passphrase, "enableRateLimit": enable_rate_limit,
            "timeout": int(timeout_s * 1000),
            "options": {"uta": False, "fetchMarkets": {"types": ["spot"]}},
        })
        if base_url:
            for k in URL_KEYS:
                self._ex.urls["api"][k] = base_url.rstrip("/")
        self._by_id: dict[str, str] = {}  # market id -> ccxt symbol
        self._orders: dict[str, Order] = {}  # client_oid -> what we sent
        self._final: dict[str, OrderResult] = {}
        self._inflight: dict[str, asyncio.Future[OrderResult]] = {}
        self._markets_lock = asyncio.Lock()
        # orders go out through our own signed request on ccxt's session (see order_wire.py for why)
        self._wire = OrderWire(self._ex, timeout_s) if native_orders else None

    # -- markets and market data ----------------------------------------------------------------------
    async def load_markets(self) -> list[Market]:
        async with self._errors("load_markets"):
            await self._ex.load_markets(reload=True)
        raw = [m for m in self._ex.markets.values() if m.get("spot")]
        self._by_id = {m["id"]: m["symbol"] for m in raw}
        fees = await self._trade_fees([m["id"] for m in raw]) if self._authenticated else {}
        if self._authenticated and self._wire is not None:
            with contextlib.suppress(OSError):  # the first order opens one otherwise
                await self._wire.warm()
        return [self._market(m, fees.get(m["id"])) for m in raw]

    async def fetch_tickers(self) -> list[Ticker]:
        async with self._errors("fetch_tickers"):
            response = await self._ex.publicGetMarketAllTickers()
        data = response.get("data") or {}
        ts = int(data.get("time") or 0)
        return [Ticker(venue=self.name, symbol=row["symbol"], bid=_f(row.get("buy")),
                       bid_size=_f(row.get("bestBidSize")), ask=_f(row.get("sell")),
                       ask_size=_f(row.get("bestAskSize")), ts_ms=ts)
                for row in data.get("ticker") or ()]

    async def fetch_book(self, symbol: str, depth: int = 20) -> BookUpdate:
        limit = 20 if depth <= 20 else 100 if depth <= 100 or not self._authenticated else None
        sym = await self._symbol(symbol)
        async with self._errors("fetch_book"):
            ob = await self._ex.fetch_order_book(sym, limit)
        return BookUpdate(
            venue=self.name, symbol=symbol,
            bids=tuple((float(r[0]), float(r[1])) for r in ob["bids"][:depth]),
            asks=tuple((float(r[0]), float(r[1])) for r in ob["asks"][:depth]),
            sequence=int(ob.get("nonce") or 0), exchange_ts_ms=int(ob.get("timestamp") or 0),
            received_at=self._clock(), snapshot=True)

    async def fetch_balances(self) -> list[Balance]:
        async with self._errors("fetch_balances"):
            response = await self._ex.fetch_balance()
        totals: dict[str, tuple[Decimal, Decimal]] = {}
        for row in (response.get("info") or {}).get("data") or ():
            free, total = totals.get(row["currency"], (Decimal(0), Decimal(0)))
            totals[row["currency"]] = (free + Decimal(row["available"]), total + Decimal(row["balance"]))
        return [Balance(venue=self.name, asset=c, free=f, total=t) for c, (f, t) in sorted(totals.items())]

    # -- orders ---------------------------------------------------------------------------------------
    async def place_order(self, order: Order) -> OrderResult:
        """Send ``order`` (limit with its time in force, or market by size) and return its final state.

        Prices and sizes go out as the exact Decimal strings of ``order`` (ccxt's unified
        ``create_order`` would round them through floats). Rule and balance refusals come back as a
        REJECTED result; a failure that leaves the order's fate unknown is resolved by looking the order
        up by ``client_oid``, and so is any retry, so one ``client_oid`` never makes two orders.
        """
        return await self._send(order, lookup=True)

    async def acknowledge_order(self, order: Order) -> OrderResult:
        """Send ``order`` and answer as soon as KuCoin has accepted it (status NEW), without the lookup
        :meth:`place_order` follows it with: for callers that learn the final state from the private
        stream (or :meth:`fetch_order`). Refusals, errors and retries are as in :meth:`place_order`: a
        ``client_oid`` already sent is looked up, never sent twice."""
        return await self._send(order, lookup=False)

    async def _send(self, order: Order, *, lookup: bool) -> OrderResult:
        oid = order.client_oid
        if (done := self._final.get(oid)) is not None:
            return done
        task = self._inflight.get(oid)
        if task is None:  # concurrent calls for one client_oid share one placement
            task = eager_task(self._place(order, lookup), name=f"place-{oid}")  # on the wire before this returns
            self._inflight[oid] = task
            task.add_done_callback(lambda _: self._inflight.pop(oid, None))
        # a cancelled caller must not abandon a request in flight: its outcome is still recorded
        return await asyncio.shield(task)

    async def _place(self, order: Order, lookup: bool) -> OrderResult:
        oid = order.client_oid
        await self._symbol(order.symbol)
        if oid in self._orders and (known := await self._lookup(order.symbol, oid)) is not None:
            return self._remember(self._result(known, order))
        refused = await self._submit(order)
        if refused is not None:
            return refused
        if not lookup:
            return OrderResult(order, OrderStatus.NEW)
        known = await self._lookup(order.symbol, oid)
        if known is None:
            raise KucoinUnavailable(f"kucoin place_order: order {oid} accepted but not found")
        return self._remember(self._result(known, order))

    async def _submit(self, order: Order) -> OrderResult | None:
        """POST ``order``: None once KuCoin accepted it; a REJECTED result for a rule or balance refusal
        (or the order's state, when a request whose fate was lost turns out to have been processed);
        raises a :class:`KucoinRestError` otherwise (retryable ones when it was not processed)."""
        oid = order.client_oid
        self._orders[oid] = order
        body = {"clientOid": oid, "side": order.side.value, "symbol": order.symbol, "type": order.type,
                "size": _s(order.size)}
        if order.type == "limit":
            body |= {"price": _s(order.price), "timeInForce": order.time_in_force}
        try:
            if self._wire is not None:
                await self._wire.place(body, hf=self._hf)
            elif self._hf:
                await self._ex.privatePostHfOrders(body)
            else:
                await self._ex.privatePostOrders(body)
        except (ccxt_errors.RateLimitExceeded, ccxt_errors.DDoSProtection, ccxt_errors.InvalidNonce,
                ccxt_errors.AuthenticationError) as exc:
            raise self._mapped("place_order", exc) from None  # refused before it was processed
        except ccxt_errors.NetworkError as exc:
            try:  # the request may have been processed: KuCoin knows the client order id then
                known = await self._lookup(order.symbol, oid)
            except KucoinRestError:
                known = None  # unreachable too: the original failure is the one to report
            if known is not None:
                return self._remember(self._result(known, order))
            raise self._mapped("place_order", exc) from None
        except (ccxt_errors.InvalidOrder, ccxt_errors.InsufficientFunds, ccxt_errors.BadRequest) as exc:
            code, msg = _kucoin_error(str(exc))
            rejected = OrderResult(order=order, status=OrderStatus.REJECTED,
                                   reason=self._safe(f"{code or type(exc).__name__}: {msg}"))
            return self._remember(rejected)
        except ccxt_errors.BaseError as exc:
            raise self._mapped("place_order", exc) from None
        return None

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        """Cancel by ``client_oid``; an order that is already final has nothing left to cancel."""
        await self._symbol(symbol)
        try:
            if self._hf:
                await self._ex.privateDeleteHfOrdersClientOrderClientOid(
                    {"clientOid": client_oid, "symbol": symbol})
            else:
                await self._ex.privateDeleteOrderClientOrderClientOid({"clientOid": client_oid})
        except ccxt_errors.OrderNotFound:
            if await self._lookup(symbol, client_oid) is None:
                raise KucoinOrderNotFound(f"kucoin cancel_order: order {client_oid} not found") from None
        except ccxt_errors.BaseError as exc:
            raise self._mapped("cancel_order", exc) from None

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        """The order's state; an order already seen final is answered from memory (it cannot change)."""
        if (done := self._final.get(client_oid)) is not None:
            return done
        info = await self._lookup(symbol, client_oid)
        if info is None:
            raise KucoinOrderNotFound(f"kucoin fetch_order: order {client_oid} not found")
        result = self._result(info, self._orders.get(client_oid))
        return self._remember(result) if client_oid in self._orders else result

    async def keep_order_connections_alive(self, interval_s: float = 20.0) -> None:
        """Run as a task in live trading: keeps the order connections open and warm (:meth:`OrderWire.keep_alive`);
        returns at once when orders go through ccxt."""
        if self._wire is not None:
            await self._wire.keep_alive(interval_s)

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.close()
        await self._ex.close()

    # -- helpers --------------------------------------------------------------------------------------
    async def _symbol(self, market_id: str) -> str:
        if not self._by_id:
            async with self._markets_lock:
                if not self._by_id:
                    async with self._errors("load_markets"):
                        await self._ex.load_markets()
                    self._by_id = {m["id"]: m["symbol"] for m in self._ex.markets.values() if m.get("spot")}
        try:
            return self._by_id[market_id]
        except KeyError:
            raise KucoinRestError(f"kucoin: unknown symbol {market_id!r}") from None

    @property
    def _hf(self) -> bool:
        """Whether the account trades through the high-frequency API (ccxt learns it in load_markets)."""
        return bool(self._ex.options.get("hf"))

    async def _lookup(self, symbol: str, client_oid: str) -> dict[str, Any] | None:
        """The order's KuCoin fields, or None when KuCoin does not know ``client_oid``."""
        await self._symbol(symbol)
        try:
            if self._hf:
                found = await self._ex.privateGetHfOrdersClientOrderClientOid(
                    {"clientOid": client_oid, "symbol": symbol})
            else:
                found = await self._ex.privateGetOrderClientOrderClientOid({"clientOid": client_oid})
        except ccxt_errors.OrderNotFound:
            return None
        except ccxt_errors.BaseError as exc:
            raise self._mapped("fetch_order", exc) from None
        info = found.get("data") or {}
        return info if isinstance(info, dict) and info.get("id") else None

    async def _trade_fees(self, ids: list[str]) -> dict[str, tuple[Decimal, Decimal]]:
        gate = asyncio.Semaphore(self._fee_concurrency)
        out: dict[str, tuple[Decimal, Decimal]] = {}

        async def batch(symbols: list[str]) -> None:
            async with gate, self._errors("trade_fees"):
                response = await self._ex.privateGetTradeFees({"symbols": ",".join(symbols)})
            for row in response.get("data") or ():
                out[row["symbol"]] = (Decimal(row["takerFeeRate"]), Decimal(row["makerFeeRate"]))

        try:
            async with asyncio.TaskGroup() as tg:
                for chunk in _chunks(ids, FEE_BATCH):
                    tg.create_task(batch(chunk))
        except ExceptionGroup as group:
            raise group.exceptions[0] from None
        return out

    def _market(self, m: dict[str, Any], fees: tuple[Decimal, Decimal] | None) -> Market:
        precision, limits, info = m["precision"], m["limits"], m.get("info") or {}
        taker, maker = fees if fees is not None else (_d(m.get("taker")), _d(m.get("maker")))
        min_cost = limits["cost"]["min"]
        return Market(
            venue=self.name, symbol=m["id"], base=m["baseId"], quote=m["quoteId"],
            price_tick=_d(precision["price"]), size_increment=_d(precision["amount"]),
            min_size=_d(limits["amount"]["min"]),
            min_funds=_d(min_cost) if min_cost is not None else _d(info.get("minFunds")),
            taker_fee=taker, maker_fee=maker, fee_currency="quote", enabled=bool(m.get("active", True)))

    def _result(self, info: dict[str, Any], sent: Order | None) -> OrderResult:
        order = sent or self._order_from(info)
        size, filled = order.size, _d(info.get("dealSize"))
        active = info.get("isActive", info.get("active"))
        if active:
            status = OrderStatus.PARTIAL if filled > 0 else OrderStatus.NEW
        else:
            status = (OrderStatus.FILLED if size and filled >= size
                      else OrderStatus.PARTIAL if filled > 0 else OrderStatus.CANCELED)
        fills: tuple[Fill, ...] = ()
        if filled > 0:
            funds = _d(info.get("dealFunds"))
            fills = (Fill(client_oid=order.client_oid, opportunity_id=order.opportunity_id,
                          leg_index=order.leg_index, venue=self.name, symbol=order.symbol, side=order.side,
                          price=funds / filled, size=filled, fee=_d(info.get("fee")),
                          fee_asset=str(info.get("feeCurrency") or ""), at=self._clock()),)
        return OrderResult(order=order, status=status, fills=fills)

    def _order_from(self, info: dict[str, Any]) -> Order:
        return Order(client_oid=str(info.get("clientOid") or ""), opportunity_id="", leg_index=0,
                     venue=self.name, symbol=str(info.get("symbol")), side=Side(info.get("side")),
                     price=_d(info.get("price")), size=_d(info.get("size")), created_at=self._clock(),
                     type=str(info.get("type") or "limit"),
                     time_in_force=str(info.get("timeInForce") or "GTC"))

    def _remember(self, result: OrderResult) -> OrderResult:
        if result.status is not OrderStatus.NEW:
            self._final[result.order.client_oid] = result
        return result

    @asynccontextmanager
    async def _errors(self, op: str) -> AsyncIterator[None]:
        try:
            yield
        except ccxt_errors.BaseError as exc:
            raise self._mapped(op, exc) from None

    def _mapped(self, op: str, exc: Exception) -> KucoinRestError:
        code, msg = _kucoin_error(str(exc))
        text = self._safe(f"kucoin {op}: {type(exc).__name__}: {f'{code} ' if code else ''}{msg}")
        if isinstance(exc, ccxt_errors.RateLimitExceeded | ccxt_errors.DDoSProtection):
            return KucoinRateLimited(text, code=code)
        if isinstance(exc, ccxt_errors.AuthenticationError):
            return KucoinAuthError(text, code=code)
        if isinstance(exc, ccxt_errors.OrderNotFound):
            return KucoinOrderNotFound(text, code=code)
        if isinstance(exc, ccxt_errors.NetworkError):
            return KucoinUnavailable(text, code=code)
        return KucoinRestError(text, code=code)

    def _safe(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:500]


def _kucoin_error(message: str) -> tuple[str | None, str]:
    """KuCoin's (code, msg) from a ccxt exception message, which embeds the response body."""
    match = _JSON_BODY.search(message)
    if match:
        try:
            body = json.loads(match.group(0))
            if isinstance(body, dict) and ("code" in body or "msg" in body):
                code = str(body["code"]) if "code" in body else None
                return code, str(body.get("msg") or body.get("data") or "")
        except ValueError:
            pass
    return None, message.removeprefix("kucoin ").strip()


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    return (items[i:i + n] for i in range(0, len(items), n))


def _d(value: Any) -> Decimal:
    """A ccxt number or KuCoin string as Decimal; floats through their shortest repr (1e-08 -> 1E-8)."""
    if value is None or value == "":
        return Decimal(0)
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _f(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def _s(value: Decimal) -> str:
    return format(value, "f")
