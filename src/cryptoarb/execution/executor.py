"""What every executor shares: the interface the engine talks to, the leg arithmetic, and the cycle
driver that decides which orders to send.

The engine hands an opportunity to :meth:`Executor.submit` and gets a :class:`Completion` back through
the callback it bound (:meth:`Executor.bind`): at once for a refusal, after the simulated latency for
paper (run from :meth:`Executor.poll`, on the venue's clock), when the venue has answered for live.

The cycle driver (:func:`drive_cycle`) is sans-IO: a generator that yields the orders to send next and
receives their results, so the paper executor (synchronous, fills on the books) and the live executor
(async, a real venue) run the very same decisions: leg sizes from what the previous leg delivered,
concurrent legs in inventory mode, and the failed-leg policy (:mod:`cryptoarb.execution.policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Literal, Protocol, runtime_checkable

from cryptoarb.model import (
    Market,
    MarketKey,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    PlannedLeg,
    RejectReason,
    Side,
)

ZERO = Decimal(0)
UNLIMITED = Decimal("Infinity")
UNWIND_LEG_BASE = 100
HEDGE_LEG_BASE = 200

LegMode = Literal["sequential", "inventory"]
Policy = Literal["unwind", "hold", "hedge"]


def client_oid(opportunity_id: str, leg_index: int) -> str:
    """Deterministic per opportunity and leg, so a retried request can never double an order."""
    return f"{opportunity_id}-L{leg_index}"


def unwind_oid(opportunity_id: str, n: int) -> str:
    return f"{opportunity_id}-U{n}"


def hedge_oid(opportunity_id: str, n: int) -> str:
    return f"{opportunity_id}-H{n}"


# ---------------------------------------------------------------------------------------------------
# the interface


@dataclass(frozen=True, slots=True)
class Completion:
    """How an opportunity handed to an executor ended.

    ``refused`` is set when no order was sent (preflight, kill switch): ``(reason, detail)`` where the
    reason is a :class:`RejectReason` or a string code. ``latency_ms`` holds the executor's stages:
    ``send`` (decision to first order on the wire), ``ack`` (first order's answer) and ``fill`` (decision
    to the last order's final state); paper reports the simulated latency as ``send``.
    """

    opportunity: Opportunity
    results: tuple[OrderResult, ...]
    at: float
    mode: str
    refused: tuple[RejectReason | str, str] | None = None
    alerts: tuple[str, ...] = ()
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    requests_ok: int = 0
    requests_failed: int = 0


OnComplete = Callable[[Completion], None]
Gate = Callable[[Opportunity], tuple[RejectReason | str, str] | None]
"""Asked right before an opportunity's first order: None to go ahead, else why not (kill switch)."""


@runtime_checkable
class Executor(Protocol):
    mode: str
    latency_s: float
    """When the engine's clock may expect an opportunity's orders to land (paper); 0 for live."""

    def bind(self, on_complete: OnComplete, gate: Gate | None = None) -> None:
        """Where completions go, and the last check before an opportunity's first order."""
        ...

    def submit(self, opportunity: Opportunity, now: float, internal_s: float = 0.0,
               record: Callable[[], None] | None = None) -> None:
        """Take ``opportunity`` (detected at ``now``); never blocks, never raises for venue trouble.

        ``internal_s`` is the measured internal latency (update received -> this call, wall seconds).
        ``record`` is the engine's bookkeeping of the opportunity (ledger, events): call it once, before
        the completion, as early as it costs the orders nothing (paper: at once; live: once the first
        order is with the venue)."""
        ...

    def poll(self, now: float) -> None:
        """Let time pass to ``now`` (paper: execute what is due). Cheap when nothing is due."""
        ...

    @property
    def pending(self) -> int:
        """Opportunities submitted and not completed."""
        ...


# ---------------------------------------------------------------------------------------------------
# leg arithmetic (the contract of docs/architecture.md, "Leg semantics")


def floor_to(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_DOWN) * increment


def order_size(leg: PlannedLeg, market: Market, available: Decimal) -> Decimal:
    """The size leg ``leg`` can trade with ``available`` of its input, capped at the plan's size.

    A BUY holds its size at the limit price (with the fee when charged in quote): the plan's size when
    that fits (sizing plans every BUY so it does, given what the leg before delivers as planned), else
    the largest size on the grid whose hold fits."""
    if leg.side is Side.SELL:
        return min(leg.size, floor_to(available, market.size_increment))
    per_unit = leg.limit_price * (1 + market.taker_fee) if market.fee_currency == "quote" else leg.limit_price
    if leg.size * per_unit <= available:
        return leg.size
    size = floor_to(available / per_unit, market.size_increment)
    if size * per_unit > available:  # the division rounded up onto the grid
        size -= market.size_increment
    return min(leg.size, max(size, ZERO))


def spent(leg: PlannedLeg, result: OrderResult) -> Decimal:
    """How much of its input asset ``result`` used (fees in the input asset included)."""
    if leg.side is Side.SELL:
        return result.filled_size
    return sum((f.price * f.size + (f.fee if f.fee_asset == leg.asset_in else ZERO) for f in result.fills), ZERO)


def delivered(leg: PlannedLeg, result: OrderResult) -> Decimal:
    """How much of its output asset ``result`` delivered, after fees charged in it."""
    got = ZERO
    for fill in result.fills:
        got += fill.size if leg.side is Side.BUY else fill.price * fill.size
        if fill.fee_asset == leg.asset_out:
            got -= fill.fee
    return got


def is_done(result: OrderResult) -> bool:
    """Whether the leg filled its whole order."""
    return result.status is OrderStatus.FILLED


# ---------------------------------------------------------------------------------------------------
# the cycle driver


BestPrice = Callable[[MarketKey, Side], float | None]
"""The best price an order of that side would take now: BUY the best ask, SELL the best bid."""


@dataclass(slots=True)
class CycleContext:
    markets: Mapping[MarketKey, Market]
    best: BestPrice
    clock: Callable[[], float]
    mode: LegMode = "sequential"
    policy: Policy = "unwind"
    cap: Decimal = Decimal("0.005")
    """Worst price a recovery (unwind, hedge) order accepts, as a fraction away from the best price."""


@dataclass(slots=True)
class CycleOutcome:
    results: list[OrderResult] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)


CycleRun = Generator[list[Order], list[OrderResult], CycleOutcome]


def drive_cycle(opportunity: Opportunity, ctx: CycleContext, out: CycleOutcome | None = None) -> CycleRun:
    """Yield batches of orders to send (sent concurrently); receive their results in the same order.

    Returns every result (legs first, then recovery orders, in the order sent) and the alerts to raise,
    collected in ``out`` as they happen (so a caller that stops early still has them).
    """
    from cryptoarb.execution import policy

    out = CycleOutcome() if out is None else out
    if ctx.mode == "inventory":
        yield from _inventory(opportunity, ctx, out, policy)
    else:
        yield from _sequential(opportunity, ctx, out, policy)
    return out


def _order(opportunity: Opportunity, oid: str, index: int, leg: PlannedLeg, size: Decimal, now: float) -> Order:
    return Order(oid, opportunity.id, index, leg.venue, leg.symbol, leg.side, leg.limit_price, size, created_at=now)


def _sequential(opportunity: Opportunity, ctx: CycleContext, out: CycleOutcome, policy) -> Generator[
        list[Order], list[OrderResult], None]:
    results = out.results
    stranded: list[tuple[int, Decimal]] = []  # (index of the leg whose output is stuck, amount)
    available = opportunity.input
    for index, leg in enumerate(opportunity.legs):
        market = ctx.markets[(leg.venue, leg.symbol)]
        # The first leg draws on inventory: its planned size (an IOC at the limit price never costs more
        # than size * limit, which preflight checks against the balance). Later legs spend what the
        # previous one delivered; sized on the limit price, they never overspend it.
        size = leg.size if index == 0 else order_size(leg, market, available)
        order = _order(opportunity, client_oid(opportunity.id, index), index, leg, size, ctx.clock())
        (result,) = yield [order]
        results.append(result)
        got = delivered(leg, result)
        leftover = available - spent(leg, result)
        if index > 0 and leftover > 0 and ctx.policy == "hedge":
            hedge = policy.hedge_order(opportunity, index, leg, market, leftover, len(results), ctx)
            if hedge is not None:
                (hedged,) = yield [hedge]
                results.append(hedged)
                got += delivered(leg, hedged)  # same side and assets as the leg
                leftover -= spent(leg, hedged)
        if index > 0 and leftover > 0:
            stranded.append((index - 1, leftover))
        if got <= 0:
            break
        available = got
    for leg_index, amount in stranded:
        if ctx.policy == "hold":
            out.alerts.append(policy.stranded_alert(opportunity, leg_index, amount, "held"))
            continue
        left = yield from policy.unwind_chain(opportunity, leg_index, amount, ctx, results)
        if left is not None:
            out.alerts.append(left)


def _inventory(opportunity: Opportunity, ctx: CycleContext, out: CycleOutcome, policy) -> Generator[
        list[Order], list[OrderResult], None]:
    results = out.results
    now = ctx.clock()
    orders = [_order(opportunity, client_oid(opportunity.id, i), i, leg, leg.size, now)
              for i, leg in enumerate(opportunity.legs)]
    results.extend((yield orders))
    filled = [r.filled_size for r in results]
    if all(f >= leg.size for f, leg in zip(filled, opportunity.legs, strict=True)):
        return
    if ctx.policy == "hold":
        for i, leg in enumerate(opportunity.legs):
            if filled[i] < leg.size:
                out.alerts.append(f"{opportunity.id}: leg {i} {leg.side.value} {leg.symbol}@{leg.venue} filled "
                                  f"{policy.amount_text(filled[i])} of {policy.amount_text(leg.size)}; inventory "
                                  "held as it is")
        return
    if ctx.policy == "hedge":
        hedges = policy.inventory_hedges(opportunity, filled, ctx, len(results))
        if hedges:
            answers = yield [order for _, order in hedges]
            results.extend(answers)
            for (i, _), answer in zip(hedges, answers, strict=True):
                filled[i] += answer.filled_size
    reverse = policy.trim_orders(opportunity, filled, ctx, len(results))
    if reverse:
        answers = yield reverse
        results.extend(answers)
        for order, answer in zip(reverse, answers, strict=True):
            if not policy.is_dust(order.size - answer.filled_size, order.price,
                                  ctx.markets[(order.venue, order.symbol)]):
                out.alerts.append(f"{opportunity.id}: unwind {order.side.value} {order.symbol}@{order.venue} "
                                  f"filled {policy.amount_text(answer.filled_size)} of "
                                  f"{policy.amount_text(order.size)} ({answer.status.value}"
                                  f"{': ' + answer.reason if answer.reason else ''})")


def run_sync(run: CycleRun, send: Callable[[Order], OrderResult]) -> CycleOutcome:
    """Drive ``run`` with a synchronous ``send`` (paper)."""
    try:
        orders = next(run)
        while True:
            orders = run.send([send(order) for order in orders])
    except StopIteration as stop:
        return stop.value
