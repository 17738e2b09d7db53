"""Paper execution: fills simulated honestly on the books as they stand when the orders would land.

Each leg is a limit IOC order at the plan's price. The engine submits an opportunity when it is
detected; its first orders land at ``detected_at + latency`` on the venue's clock (:meth:`PaperExecutor.poll`),
so the books may have moved: legs fill partly or not at all, exactly as live. Sequential mode (the
default): each leg spends what the previous leg actually delivered, and is sent when that leg's answer is
back, so it lands one venue latency (``paper.latency_ms``) after it, on the books as they stand then;
inventory mode: every leg at its planned size at once. Recovery orders (unwinds, hedges) follow the
answers they react to the same way. Venue rules (minimum size and funds, lot) are enforced as the venue would. Fees
are charged in the currency the market charges them in. Our fills are removed from the local book and,
on a simulated venue, from its liquidity (:class:`~cryptoarb.venues.base.LiquidityConsumer`), so two
bots cannot both take it. On a real venue's feed, which never learns of a paper fill, what was taken stays
out of later fills at its price for ``paper.taken_liquidity_s`` (:mod:`cryptoarb.execution.taken_liquidity`),
or the next push would offer it again.

Latency: ``latency = venue latency (paper.latency_ms) + internal latency``. The internal latency of each
opportunity (update received -> decision) is *measured* and reported with it, but by default the
schedule uses a *configured* internal latency (``paper.internal_latency_ms``, 0): the measured one
depends on the machine and its load, and putting it into the virtual clock would make the same seed
fill differently on different machines. ``paper.add_measured_latency`` schedules with the measured
value instead (research runs; not reproducible).

Checks before the orders: the kill switch (the engine's gate) when the orders would land; in inventory
mode also the live preflight of every leg (balance on its venue, rules, fresh books), since each leg
spends inventory. Sequential mode needs no more: sizing already capped the first leg at the balance, and
later legs spend what the previous delivered.

When a leg fails or fills partly, the asset it leaves stranded is handled by the failed-leg policy
(:mod:`cryptoarb.execution.policy`): ``unwind``, ``hedge`` or ``hold``. Recovery orders are booked
against the opportunity (client order ids ``<opportunity>-U<n>`` / ``-H<n>``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cryptoarb.core.books import BookStore, Freshness
from cryptoarb.execution.executor import (
    UNLIMITED,
    UNWIND_LEG_BASE,
    ZERO,
    Completion,
    CycleContext,
    CycleOutcome,
    CycleRun,
    Gate,
    LegMode,
    OnComplete,
    Policy,
    client_oid,
    drive_cycle,
    run_sync,
)
from cryptoarb.execution.preflight import preflight
from cryptoarb.execution.taken_liquidity import TakenLiquidity
from cryptoarb.model import (
    Fill,
    Market,
    MarketKey,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    RejectReason,
    Side,
)
from cryptoarb.venues.base import LiquidityConsumer, Venue

__all__ = ["UNLIMITED", "UNWIND_LEG_BASE", "PaperExecutor", "client_oid"]

CLOCK_EPSILON_S = 1e-9
"""Due times are sums of floats (0.85 + 0.05 = 0.9000000000000001): an order due "at" a clock tick lands on
that tick, not on the next one."""


@dataclass(slots=True)
class _Landing:
    """An opportunity whose next orders reach the venue at their due time: its first ones (``run`` None) or
    the next batch of a cycle already under way."""

    opportunity: Opportunity
    internal_s: float
    venue_s: float
    run: CycleRun | None = None
    orders: list[Order] = field(default_factory=list)
    now: float = 0.0
    """The venue's clock as the cycle sees it: when its current batch lands."""
    first_at: float = 0.0


class PaperExecutor:
    mode = "paper"

    def __init__(self, books: BookStore, markets: Mapping[MarketKey, Market], venues: Mapping[str, Venue],
                 *, failed_leg_policy: Policy = "unwind", unwind_slippage_bps: float = 50.0,
                 latency_s: float = 0.05, internal_latency_s: float = 0.0, add_measured_latency: bool = False,
                 leg_mode: LegMode = "sequential", balance: Callable[[str, str], Decimal] | None = None,
                 freshness: Freshness | None = None, taken_liquidity_s: float = 5.0) -> None:
        """``taken_liquidity_s``: how long what paper fills took from a real venue's book stays out of later
        fills there (:mod:`cryptoarb.execution.taken_liquidity`; 0: only until the venue's next update).

        ``balance`` (the engine's ledger): in inventory mode every plan is checked as live checks it
        (:mod:`cryptoarb.execution.preflight`) when it lands, so a leg whose input is not held on its venue
        is refused instead of driving the paper balance negative."""
        self._books = books
        self._markets = markets
        self._venues = venues
        self._policy = failed_leg_policy
        self._unwind_slippage = Decimal(repr(unwind_slippage_bps)) / 10_000
        self.venue_latency_s = latency_s
        self.internal_latency_s = internal_latency_s
        self.add_measured_latency = add_measured_latency
        self.leg_mode: LegMode = leg_mode
        self._balance = balance
        self._freshness = freshness or Freshness()
        self._taken = TakenLiquidity(taken_liquidity_s)
        self._due: list[tuple[float, int, _Landing]] = []
        self._seq = 0
        self._on_complete: OnComplete | None = None
        self._gate: Gate | None = None

    # -- the executor interface ------------------------------------------------------------------------
    @property
    def latency_s(self) -> float:
        """The schedule's delay between detection and the orders landing (without measured latency)."""
        return self.venue_latency_s + self.internal_latency_s

    @property
    def taken(self) -> TakenLiquidity:
        """What paper fills took from real venues' books; the engine nets its books with it."""
        return self._taken

    def bind(self, on_complete: OnComplete, gate: Gate | None = None) -> None:
        self._on_complete = on_complete
        self._gate = gate

    def submit(self, opportunity: Opportunity, now: float, internal_s: float = 0.0,
               record: Callable[[], None] | None = None) -> None:
        if record is not None:
            record()
        internal = internal_s if self.add_measured_latency else self.internal_latency_s
        self._schedule(now + internal + self.venue_latency_s, _Landing(opportunity, internal, self.venue_latency_s))

    def _schedule(self, at: float, landing: _Landing) -> None:
        self._seq += 1
        heapq.heappush(self._due, (at, self._seq, landing))

    def poll(self, now: float) -> None:
        """Land every order that would have reached the venue by ``now``, each at its own due time."""
        while self._due and self._due[0][0] <= now + CLOCK_EPSILON_S:
            at, _, landing = heapq.heappop(self._due)
            if landing.run is None:
                self._start(landing, at)
            else:
                self._land(landing, at)

    def _start(self, landing: _Landing, at: float) -> None:
        opportunity = landing.opportunity
        refusal = self._gate(opportunity) if self._gate is not None else None
        if refusal is None and self.leg_mode == "inventory" and self._balance is not None:
            problem = preflight(opportunity, self._markets, self._books, at, self._freshness, self._balance,
                                "inventory")
            if problem is not None:
                refusal = (problem.reason, problem.detail)
        if refusal is not None:
            self._complete(landing, at, CycleOutcome(), refusal)
            return
        landing.now = landing.first_at = at  # the first orders are created as they land (their created_at)
        landing.run = drive_cycle(opportunity, self._context(lambda: landing.now))
        try:
            landing.orders = next(landing.run)
        except StopIteration as stop:
            self._complete(landing, at, stop.value)
            return
        self._land(landing, at)

    def _land(self, landing: _Landing, at: float) -> None:
        """This batch reaches the venue at ``at``; the next one (what the cycle sends on its answers) a venue
        latency later."""
        assert landing.run is not None
        landing.now = at
        results = [self._send(order, at) for order in landing.orders]
        try:
            landing.orders = landing.run.send(results)
        except StopIteration as stop:
            self._complete(landing, at, stop.value)
            return
        self._schedule(at + landing.venue_s, landing)

    def _complete(self, landing: _Landing, at: float, outcome: CycleOutcome,
                  refused: tuple[RejectReason | str, str] | None = None) -> None:
        latency = {"send": landing.internal_s * 1000.0, "ack": landing.venue_s * 1000.0,
                   "fill": (at - landing.first_at) * 1000.0 if landing.run is not None else 0.0}
        completion = Completion(landing.opportunity, tuple(outcome.results), at, self.mode, refused=refused,
                                alerts=tuple(outcome.alerts), latency_ms=latency)
        if self._on_complete is not None:
            self._on_complete(completion)

    @property
    def pending(self) -> int:
        return len(self._due)

    # -- execution -----------------------------------------------------------------------------------
    def execute(self, opportunity: Opportunity, now: float) -> tuple[OrderResult, ...]:
        """Every order's result, legs first then recovery orders, all executed on the books at ``now`` (the
        leg semantics on one fixed book; :meth:`poll` lands each batch at its own time)."""
        return tuple(self.run(opportunity, now).results)

    def run(self, opportunity: Opportunity, now: float) -> CycleOutcome:
        """The whole cycle on the books at ``now``, every batch at once (see :meth:`execute`)."""
        return run_sync(drive_cycle(opportunity, self._context(lambda: now)), lambda order: self._send(order, now))

    def _context(self, clock: Callable[[], float]) -> CycleContext:
        return CycleContext(self._markets, self._best, clock, self.leg_mode, self._policy, self._unwind_slippage)

    def _best(self, key: MarketKey, side: Side) -> float | None:
        book = self._books.get(key)
        if book is None:
            return None
        levels = book.asks if side is Side.BUY else book.bids
        return levels[0][0] if levels else None

    def _send(self, order: Order, now: float) -> OrderResult:
        """What the venue would do with ``order``: its rules, then a taker walk of the book to the limit."""
        market = self._markets[(order.venue, order.symbol)]
        size = order.size
        if not market.enabled:
            return OrderResult(order, OrderStatus.REJECTED, reason="market disabled")
        if size < market.min_size or size <= 0:
            return OrderResult(order, OrderStatus.REJECTED, reason=f"size {size} below minimum {market.min_size}")
        if size * order.price < market.min_funds:
            return OrderResult(order, OrderStatus.REJECTED,
                               reason=f"funds {size * order.price} below minimum {market.min_funds}")
        book = self._books.get((order.venue, order.symbol))
        if book is None:
            return OrderResult(order, OrderStatus.CANCELED, reason="no book")
        buy = order.side is Side.BUY
        fee_rate = market.taker_fee
        venue = self._venues.get(order.venue)
        consumer = isinstance(venue, LiquidityConsumer)
        taken = self._taken.take(book, buy, float(order.price), size, now, market.size_increment,
                                 remember=not consumer)
        fills: list[Fill] = []
        filled = ZERO
        for price, qty in taken:
            qty_d = min(qty, size - filled)
            if qty_d <= 0:
                continue
            price_d = Decimal(repr(price))
            notional = price_d * qty_d
            if buy and market.fee_currency == "received":
                fee, fee_asset = qty_d * fee_rate, market.base
            else:
                fee, fee_asset = notional * fee_rate, market.quote
            fills.append(Fill(order.client_oid, order.opportunity_id, order.leg_index, order.venue, order.symbol,
                              order.side, price_d, qty_d, fee, fee_asset, now))
            filled += qty_d
        if fills and consumer:
            venue.consume(order.symbol, order.side, order.price, filled)
        if filled == 0:
            return OrderResult(order, OrderStatus.CANCELED, reason="no liquidity at the limit price")
        status = OrderStatus.FILLED if filled >= size else OrderStatus.PARTIAL
        return OrderResult(order, status, tuple(fills))
