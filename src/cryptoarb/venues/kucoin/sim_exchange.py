"""The simulated KuCoin exchange behind the loopback server: market, published books, account, orders.

Synchronous and free of IO; the server's tasks and handlers call it on one event loop. Listeners hear
every published book change (with its level2 delta while the symbol is streamed), order change and
balance change, which the websocket side pushes.

Orders match against ``SimMarket`` as takers. A limit order's unfilled rest either ends (IOC, FOK,
post-only that would cross) or rests, invisible to the book, and fills when the market later crosses
its price (at the crossing levels, charged the maker fee). Market orders walk the published book.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any

from cryptoarb.config import SimSettings
from cryptoarb.model import BookUpdate, Level, Market, Side
from cryptoarb.venues.kucoin.sim_accounts import ZERO, Accounts, Context, dstr, hex_id
from cryptoarb.venues.kucoin.sim_book import Delta, Fmt, PublishedBook
from cryptoarb.venues.kucoin.sim_orders import (
    ApiError,
    OrderRequest,
    SimOrder,
    bad_param,
    balance_insufficient,
    not_cancelable,
    order_event,
    order_forbidden,
)
from cryptoarb.venues.sim.market import SimMarket
from cryptoarb.venues.sim.universe import Universe, build_universe


class SimExchange:
    def __init__(self, settings: SimSettings, *, balances: Mapping[str, Decimal], hf: bool, user_id: str,
                 clock_ms: Callable[[], int], fee_discount: Decimal = ZERO) -> None:
        self.universe: Universe = build_universe(settings)
        self.market = SimMarket(self.universe, settings)
        self.hf = hf
        self.user_id = user_id
        self.clock_ms = clock_ms
        self.fee_discount = fee_discount
        self.level2_gap_every = 0  # the level2 gap fault: every Nth delta of a symbol skips a sequence
        self.reject_orders = False  # the order rejection fault
        self.fmt = {p.symbol: Fmt(p) for p in self.universe.pairs}
        now = clock_ms()
        self.books = {s: PublishedBook(self.market.book(s), now) for s in self.universe.symbols}
        self.accounts = Accounts(balances, account_type="trade_hf" if hf else "trade", user_id=user_id,
                                 clock_ms=clock_ms)
        self.orders: dict[str, SimOrder] = {}
        self.by_client_oid: dict[str, SimOrder] = {}
        self.last_trade: dict[str, tuple[Decimal, Decimal]] = {}
        self.book_listeners: list[Callable[[str, Delta | None], None]] = []
        """Told of every published change: (symbol, the level2 delta when ``streams_level2(symbol)``)."""
        self.streams_level2: Callable[[str], bool] = lambda symbol: False
        self.order_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._resting: dict[str, SimOrder] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"{now // 1000:08x}"

    # -- market ---------------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance the market one step and publish every book that changed."""
        for snap in self.market.step():
            self._publish(snap)
        if self._resting:
            self._work_resting()

    def sync(self, symbol: str) -> PublishedBook:
        """The published book of ``symbol``, first publishing what orders consumed since the last step."""
        snap = self.market.book(symbol)
        book = self.books[symbol]
        if snap is not book.snap:
            self._publish(snap)
        return book

    def prime(self, symbol: str) -> None:
        """Publish a no-op delta (advances the sequence only) so a fresh level2 client fills its cache."""
        delta = self.books[symbol].noop(self.clock_ms())
        for listener in self.book_listeners:
            listener(symbol, delta)

    def market_of(self, symbol: str) -> Market:
        pair = self.universe.by_symbol.get(symbol)
        if pair is None:
            raise ApiError(400, "400100", "Unsupported trading pair.")
        return pair.market

    def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(taker, maker) this account pays on ``symbol``: the pair's rates less the account discount."""
        m = self.market_of(symbol)
        keep = 1 - self.fee_discount
        return m.taker_fee * keep, m.maker_fee * keep

    def _publish(self, snap: BookUpdate) -> None:
        sym = snap.symbol
        book = self.books[sym]
        every = self.level2_gap_every
        skip = 1 if every > 0 and (book.deltas + 1) % every == 0 else 0
        changed, delta = book.apply(snap, self.clock_ms(), exact=self.streams_level2(sym), skip=skip)
        if changed:
            for listener in self.book_listeners:
                listener(sym, delta)

    # -- orders ---------------------------------------------------------------------------------------
    def place(self, req: OrderRequest) -> SimOrder:
        """Accept, match and settle one order; a known ``clientOid`` returns that order unchanged."""
        if (known := self.by_client_oid.get(req.client_oid)) is not None:
            return known
        if self.reject_orders:
            raise order_forbidden()
        m = self.market_of(req.symbol)
        _check_rules(req, m)
        taker, _ = self.fee_rates(req.symbol)
        book = self.sync(req.symbol)
        now = self.clock_ms()
        order = SimOrder(id=f"{self._id_prefix}{next(self._ids):016x}", req=req, created_ms=now,
                         fee_currency=m.quote)
        plan = None if req.type == "limit" else self._walk(req, m, book.snap)
        hold_currency, hold = self._hold_needed(req, m, taker, plan)
        if self.accounts.free(hold_currency) < hold:
            raise balance_insufficient()
        self.orders[order.id] = order
        self.by_client_oid[req.client_oid] = order
        order.hold_currency, order.hold_left = hold_currency, hold
        self.accounts.hold_funds(hold_currency, hold, self._ctx(order, "hold"))
        self._emit(order, "received")
        for price, size in self._take(order, m, book.snap, plan):
            self._settle(order, m, price, size, taker, "taker")
        rests = (req.type == "limit" and req.time_in_force in ("GTC", "GTT") and order.remaining > 0
                 and not (req.post_only and _crosses(req, book.snap, self.fmt[req.symbol])))
        if rests:
            self._resting[order.id] = order
            self._emit(order, "open")
        else:
            self._finish(order)
        self.sync(req.symbol)
        return order

    def cancel(self, order: SimOrder) -> SimOrder:
        if not order.active:
            raise not_cancelable()
        self._resting.pop(order.id, None)
        self._finish(order)
        return order

    def find(self, *, order_id: str | None = None, client_oid: str | None = None,
             symbol: str | None = None) -> SimOrder | None:
        order = self.orders.get(order_id or "") if order_id else self.by_client_oid.get(client_oid or "")
        if order is None or (symbol and order.req.symbol != symbol):
            return None
        return order

    def _walk(self, req: OrderRequest, m: Market, snap: BookUpdate) -> tuple[Decimal, Decimal, Decimal]:
        """A market order's (size, worst price, cost) walking the published book."""
        fmt = self.fmt[req.symbol]
        levels = snap.asks if req.side == "buy" else snap.bids
        return _walk(levels, fmt, m.size_increment, req.size, req.funds)

    def _hold_needed(self, req: OrderRequest, m: Market, taker: Decimal,
                     plan: tuple[Decimal, Decimal, Decimal] | None) -> tuple[str, Decimal]:
        if req.side == "sell":
            return m.base, req.size if plan is None else plan[0]
        cost = req.price * req.size if plan is None else plan[2]
        return m.quote, cost * (1 + taker)

    def _take(self, order: SimOrder, m: Market, snap: BookUpdate,
              plan: tuple[Decimal, Decimal, Decimal] | None) -> list[tuple[Decimal, Decimal]]:
        req = order.req
        side = Side.BUY if req.side == "buy" else Side.SELL
        fmt = self.fmt[req.symbol]
        if plan is not None:
            size, limit, _ = plan  # the worst level walked bounds the take to exactly the walk
            if size <= 0:
                return []
        else:
            if req.post_only and _crosses(req, snap, fmt):
                return []
            if req.time_in_force == "FOK":
                levels = snap.asks if side is Side.BUY else snap.bids
                reachable = [(p, s) for p, s in levels
                             if (p <= req.price if side is Side.BUY else p >= req.price)]
                if _walk(tuple(reachable), fmt, m.size_increment, req.size, ZERO)[0] < req.size:
                    return []
            size, limit = req.size, req.price
        fills = self.market.consume(req.symbol, side, limit, size)
        return [(fmt.dprice(p), fmt.dsize(s)) for p, s in fills]

    def _settle(self, order: SimOrder, m: Market, price: Decimal, size: Decimal, rate: Decimal,
                liquidity: str) -> None:
        cost = price * size
        fee = cost * rate
        trade_id = hex_id(order.id, len(order.trades))
        ctx = self._ctx(order, "setted", trade_id)
        if order.req.side == "buy":
            self.accounts.spend_held(m.quote, cost + fee, ctx)
            order.hold_left -= cost + fee
            self.accounts.credit(m.base, size, ctx)
        else:
            self.accounts.spend_held(m.base, size, ctx)
            order.hold_left -= size
            self.accounts.credit(m.quote, cost - fee, ctx)
        order.deal_size += size
        order.deal_funds += cost
        order.fee += fee
        order.updated_ms = self.clock_ms()
        order.trades.append({"tradeId": trade_id, "price": price, "size": size, "funds": cost, "fee": fee,
                             "liquidity": liquidity, "time": order.updated_ms})
        self.last_trade[m.symbol] = (price, size)
        self._emit(order, "match", {"matchPrice": dstr(price), "matchSize": dstr(size), "tradeId": trade_id,
                                    "liquidity": liquidity})

    def _finish(self, order: SimOrder) -> None:
        """End ``order``: cancel what is left of it and give back the hold it no longer needs."""
        order.cancelled_size = order.remaining if order.req.size else ZERO
        order.active = False
        filled = order.deal_size > 0 and not order.cancelled_size
        order.cancel_exist = not filled
        order.updated_ms = self.clock_ms()
        if order.hold_left:
            self.accounts.release(order.hold_currency, order.hold_left, self._ctx(order, "hold"))
            order.hold_left = ZERO
        self._emit(order, "filled" if filled else "canceled")

    def _work_resting(self) -> None:
        now = self.clock_ms()
        for order in list(self._resting.values()):
            req = order.req
            expires = order.created_ms + req.cancel_after_s * 1000
            if req.time_in_force == "GTT" and req.cancel_after_s and now >= expires:
                self.cancel(order)
                continue
            side = Side.BUY if req.side == "buy" else Side.SELL
            fills = self.market.consume(req.symbol, side, req.price, order.remaining)
            if not fills:
                continue
            m = self.market_of(req.symbol)
            fmt = self.fmt[req.symbol]
            _, maker = self.fee_rates(req.symbol)
            for p, s in fills:
                self._settle(order, m, fmt.dprice(p), fmt.dsize(s), maker, "maker")
            if order.remaining <= 0:
                del self._resting[order.id]
                self._finish(order)
            self.sync(req.symbol)

    def _ctx(self, order: SimOrder, what: str, trade_id: str = "") -> Context:
        return Context(f"{'trade_hf' if self.hf else 'trade'}.{what}", order.req.symbol, order.id, trade_id)

    def _emit(self, order: SimOrder, kind: str, match: dict[str, Any] | None = None) -> None:
        if self.order_listeners:
            event = order_event(order, kind, self.clock_ms(), match)
            for listener in self.order_listeners:
                listener(event)


def _check_rules(req: OrderRequest, m: Market) -> None:
    if not m.enabled:
        raise order_forbidden()
    if req.size:
        if req.size % m.size_increment:
            raise bad_param("Order size increment invalid.")
        if req.size < m.min_size:
            raise bad_param("Order size below the minimum requirement.")
    if req.type == "limit":
        if req.price % m.price_tick:
            raise bad_param("Order price increment invalid.")
        if req.price * req.size < m.min_funds:
            raise bad_param("Order funds below the minimum requirement.")
    elif req.funds and req.funds < m.min_funds:
        raise bad_param("Order funds below the minimum requirement.")


def _crosses(req: OrderRequest, snap: BookUpdate, fmt: Fmt) -> bool:
    if req.side == "buy":
        return bool(snap.asks) and fmt.dprice(snap.asks[0][0]) <= req.price
    return bool(snap.bids) and fmt.dprice(snap.bids[0][0]) >= req.price


def _walk(levels: tuple[Level, ...], fmt: Fmt, increment: Decimal, size: Decimal,
          funds: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Take ``size`` base (or spend/raise ``funds`` quote) from ``levels``: (size, worst price, cost)."""
    got, cost, worst = ZERO, ZERO, ZERO
    for p, s in levels:
        price, avail = fmt.dprice(p), fmt.dsize(s)
        if size:
            take = min(avail, size - got)
        else:
            take = min(avail, ((funds - cost) / price).quantize(increment, rounding=ROUND_DOWN))
        if take <= 0:
            break
        got += take
        cost += take * price
        worst = price
        if take < avail:
            break
    return got, worst, cost
