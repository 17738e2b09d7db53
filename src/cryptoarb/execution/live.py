"""Live execution through the :class:`~cryptoarb.venues.base.Venue` protocol.

An opportunity handed to :meth:`LiveExecutor.submit` runs as one asyncio task:

1. **Gate and preflight** (:mod:`cryptoarb.execution.preflight`): the kill switch, then every leg is
   checked (market enabled, book fresh, tick, lot, minimum size and funds, balance less what other
   in-flight opportunities have reserved). Any problem refuses the whole plan before an order is sent.
2. **Orders**, decided by the shared cycle driver (:func:`~cryptoarb.execution.executor.drive_cycle`):
   limit IOC at the plan's prices, never market orders. *Inventory mode* sends every leg at once (each
   input is already held on its venue); *sequential mode* sends one leg at a time, each sized on what the
   previous leg actually delivered after partial fills and fees.
3. Before a batch of orders is sent, their rows are **written durably** (``write_intent``, e.g.
   :meth:`StoreWriter.write_intent`), so a crash can never lose a sent order. A failed intent write
   sends nothing.
4. **Sending** an order: client order ids come from the opportunity and leg. A retryable failure
   (:func:`~cryptoarb.venues.base.is_retryable`: 429, timeout, 5xx) first looks the order up by client order
   id (the request may have been processed). A rate limit says the venue did not process it; any other
   failure leaves its fate unknown, and the order is looked up every ``poll_interval_s`` for
   ``resolve_timeout_s`` in case the request still lands. Only then is it sent again, with the same id,
   after a doubling backoff (or the venue's ``retry_after_s``): a second order can only follow a first the
   venue never saw, whether or not it deduplicates client order ids. Other errors fail the leg. Every
   failed request counts towards the risk gate's error rate.
5. **Order state**: IOC orders are normally final in the venue's answer. One that is still open waits
   for a pushed update (:meth:`LiveExecutor.on_order_update`, fed from a private websocket by
   :meth:`LiveExecutor.follow`) with REST lookups (``fetch_order`` by client order id) every
   ``poll_interval_s`` as the fallback; still open after ``resolve_timeout_s``, it is canceled and looked
   up once more.
6. A leg that fails or fills partly triggers the **failed-leg policy** (unwind, hedge or hold); recovery
   orders go through the same path and are booked against the opportunity.

The completion (every result, alerts, request counts and stage latencies) goes to the engine's callback
from the task; the engine books it synchronously (ledger, risk, events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cryptoarb.core.books import BookStore, Freshness
from cryptoarb.core.rules import rule_violation
from cryptoarb.eager import deadline_after_first_step, eager_task
from cryptoarb.execution.executor import (
    Completion,
    CycleContext,
    CycleOutcome,
    Gate,
    LegMode,
    OnComplete,
    Policy,
    drive_cycle,
)
from cryptoarb.execution.preflight import needs, preflight
from cryptoarb.model import Fill, Market, MarketKey, Opportunity, Order, OrderResult, OrderStatus, Side
from cryptoarb.venues.base import OrderUpdate, OrderUpdateSource, Venue, is_retryable, surely_unprocessed

if TYPE_CHECKING:
    from cryptoarb.config import Settings
    from cryptoarb.engine import Engine

log = logging.getLogger("cryptoarb.execution")
ZERO = Decimal(0)
NOT_SENT = " (not sent)"
INTENT_FAILED = "intent_failed"
UNRESOLVED = "unresolved"

IntentWriter = Callable[..., Awaitable[None]]
"""``await write_intent(*orders)``: returns once the orders' rows are durable; raises otherwise."""


@dataclass(slots=True)
class _Run:
    """Bookkeeping of one opportunity's task."""

    started: float
    first_send: float | None = None
    first_ack: float | None = None
    ok: int = 0
    failed: int = 0
    record: Callable[[], None] | None = None
    record_error: str | None = None

    def sent(self) -> None:
        if self.first_send is None:
            self.first_send = time.perf_counter()

    def acked(self) -> None:
        if self.first_ack is None:
            self.first_ack = time.perf_counter()
        self.recorded()

    def recorded(self) -> None:
        """The engine's bookkeeping of the opportunity: once the first order is with the venue (it then
        costs no order any time), or before the completion if none was sent."""
        record, self.record = self.record, None
        if record is not None:
            try:
                record()
            except Exception as exc:  # it runs right after an order was accepted: that order is still booked
                self.record_error = f"{type(exc).__name__}: {exc}"

    def latency_ms(self) -> dict[str, float]:
        end = time.perf_counter()
        send = self.first_send if self.first_send is not None else end
        ack = self.first_ack if self.first_ack is not None else send
        return {"send": (send - self.started) * 1000.0, "ack": (ack - send) * 1000.0, "fill": (end - ack) * 1000.0}


class LiveExecutor:
    mode = "live"
    latency_s = 0.0
    # Where orders the venue answered as still open got their final state: order_state_stats().
    pushed_resolutions = 0
    rest_resolutions = 0
    rest_lookups = 0
    updates_received = 0
    updates_ignored = 0
    interruptions = 0

    def __init__(self, venues: Mapping[str, Venue], markets: Mapping[MarketKey, Market], books: BookStore, *,
                 balance: Callable[[str, str], Decimal], clock: Callable[[], float] = time.time,
                 freshness: Freshness | None = None, write_intent: IntentWriter | None = None,
                 leg_mode: LegMode = "sequential", failed_leg_policy: Policy = "unwind",
                 unwind_slippage_bps: float = 50.0, order_timeout_s: float = 5.0, retry_attempts: int = 4,
                 retry_backoff_s: float = 0.25, resolve_timeout_s: float = 10.0,
                 poll_interval_s: float = 0.5) -> None:
        self.venues = dict(venues)
        self.markets = markets
        self.books = books
        self.balance = balance
        self.clock = clock
        self.freshness = freshness or Freshness()
        self.write_intent = write_intent
        self.leg_mode: LegMode = leg_mode
        self.policy: Policy = failed_leg_policy
        self.cap = Decimal(repr(unwind_slippage_bps)) / 10_000
        self.order_timeout_s = order_timeout_s
        self.retry_attempts = max(1, retry_attempts)
        self.retry_backoff_s = retry_backoff_s
        self.resolve_timeout_s = resolve_timeout_s
        self.poll_interval_s = poll_interval_s
        self.reserved: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_complete: OnComplete | None = None
        self._gate: Gate | None = None
        self._updates: dict[str, list[OrderUpdate]] = {}
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._updates_lost = False  # the update source is down: no order waits for a push before a lookup
        self._open: set[str] = set()

    @classmethod
    def for_engine(cls, engine: Engine, *, clock: Callable[[], float] = time.time,
                   write_intent: IntentWriter | None = None, **overrides: Any) -> LiveExecutor:
        """A live executor over ``engine``'s venues, markets, books and ledger, configured from its
        settings (``execution`` section); pass it to ``Engine(..., executor=...)`` as a factory::

            Engine(settings, venues, markets, publish,
                   executor=lambda e: LiveExecutor.for_engine(e, write_intent=writer.write_intent))
        """
        return cls(engine.venues, engine.markets, engine.books, balance=engine.ledger.free, clock=clock,
                   freshness=engine.freshness, write_intent=write_intent,
                   **{**settings_kwargs(engine.settings), **overrides})

    # -- the executor interface ------------------------------------------------------------------------
    def bind(self, on_complete: OnComplete, gate: Gate | None = None) -> None:
        self._on_complete = on_complete
        self._gate = gate

    def submit(self, opportunity: Opportunity, now: float, internal_s: float = 0.0,
               record: Callable[[], None] | None = None) -> None:
        # Eager: the gate, preflight and the first order run now, up to the order's bytes on the socket,
        # instead of a loop turn later behind whatever else is ready (market data, mostly).
        task = eager_task(self._run(opportunity, time.perf_counter(), record), name=f"execute-{opportunity.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def poll(self, now: float) -> None:
        """Nothing to do: completions are delivered from their tasks as the venues answer."""

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for every opportunity in flight to complete; False if ``timeout_s`` passed first."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    def available(self, venue: str, asset: str) -> Decimal:
        """Balance not reserved by opportunities in flight."""
        return self.balance(venue, asset) - self.reserved.get((venue, asset), ZERO)

    # -- pushed order state ---------------------------------------------------------------------------
    def on_order_update(self, update: OrderUpdate) -> None:
        """A pushed update of one of our orders (private websocket). Updates of orders this executor is
        not waiting for are ignored."""
        oid = update.client_oid
        self.updates_received += 1
        if oid not in self._open:
            self.updates_ignored += 1
            return
        self._updates.setdefault(oid, []).append(update)
        waiter = self._waiting.get(oid)
        if update.final and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def follow(self, source: OrderUpdateSource) -> None:
        """Feed every update ``source`` pushes to :meth:`on_order_update` (run as a task)."""
        async for update in source.order_updates():
            self.on_order_update(update)

    def order_updates_lost(self) -> None:
        """The update source lost its connection, and the venue does not replay what it pushed meanwhile:
        every order waiting for a push is looked up over REST now rather than at its next poll."""
        self.interruptions += 1
        self._updates_lost = True
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_result(None)

    def order_updates_resumed(self) -> None:
        """The update source is live again: orders answered as open from now on wait for their push."""
        self._updates_lost = False

    def order_state_stats(self) -> dict[str, int]:
        """Orders whose final state came pushed or from a REST lookup; lookups made; updates received and
        ignored (not one of ours in flight); times the update source was lost."""
        return {"pushed_resolutions": self.pushed_resolutions, "rest_resolutions": self.rest_resolutions,
                "rest_lookups": self.rest_lookups, "updates_received": self.updates_received,
                "updates_ignored": self.updates_ignored, "interruptions": self.interruptions}

    # -- one opportunity ------------------------------------------------------------------------------
    async def _run(self, opportunity: Opportunity, started: float, record: Callable[[], None] | None = None) -> None:
        run = _Run(started, record=record)
        outcome = CycleOutcome()
        refused = None
        reserved: dict[tuple[str, str], Decimal] = {}
        try:
            refused = self._gate(opportunity) if self._gate is not None else None
            if refused is None:
                problem = preflight(opportunity, self.markets, self.books, self.clock(), self.freshness,
                                    self.available, self.leg_mode)
                if problem is not None:
                    refused = (problem.reason, problem.detail)
            if refused is None:
                reserved = needs(opportunity, self.markets, self.leg_mode)
                for key, amount in reserved.items():
                    self.reserved[key] += amount
                refused = await self._drive(opportunity, outcome, run)
        except Exception as exc:  # never lose a completion: what was sent is booked, the rest alerted
            outcome.alerts.append(f"{opportunity.id}: execution failed: {type(exc).__name__}: {exc}")
        finally:
            for key, amount in reserved.items():
                self.reserved[key] -= amount
                if self.reserved[key] <= 0:
                    del self.reserved[key]
        run.recorded()
        if run.record_error is not None:
            outcome.alerts.append(f"{opportunity.id}: recording the opportunity failed: {run.record_error}")
        completion = Completion(
            opportunity, tuple(outcome.results), self.clock(), self.mode, refused=refused,
            alerts=tuple(outcome.alerts), latency_ms=run.latency_ms(), requests_ok=run.ok,
            requests_failed=run.failed)
        if self._on_complete is not None:
            try:
                self._on_complete(completion)
            except Exception:  # the task ends here: say so loudly rather than in a never-retrieved exception
                log.exception("booking %s failed: %d order results not booked", opportunity.id,
                              len(completion.results))

    async def _drive(self, opportunity: Opportunity, outcome: CycleOutcome, run: _Run) -> tuple[str, str] | None:
        ctx = CycleContext(self.markets, self._best, self.clock, self.leg_mode, self.policy, self.cap)
        cycle = drive_cycle(opportunity, ctx, outcome)
        first = True
        try:
            orders = next(cycle)
            while True:
                if self.write_intent is not None:
                    try:
                        await self.write_intent(*orders)
                    except Exception as exc:
                        detail = f"the order rows could not be written before sending: {type(exc).__name__}: {exc}"
                        run.failed += 1
                        if first:
                            return INTENT_FAILED, detail
                        outcome.alerts.append(f"{opportunity.id}: {detail}; nothing more sent")
                        cycle.close()
                        outcome.results.extend(OrderResult(o, OrderStatus.REJECTED,
                                                           reason=f"{INTENT_FAILED}: {detail}{NOT_SENT}")
                                               for o in orders)
                        return None
                first = False
                if len(orders) == 1:  # sequential legs: no task per order, one loop turn sooner on the wire
                    answers = [await self._send(orders[0], run)]
                else:
                    answers = list(await asyncio.gather(*(self._send(order, run) for order in orders)))
                for order, answer in zip(orders, answers, strict=True):
                    if answer.status is OrderStatus.NEW:
                        outcome.alerts.append(f"{opportunity.id}: order {order.client_oid} state unknown "
                                              f"({answer.reason}); check it on {order.venue}")
                orders = cycle.send(answers)
        except StopIteration:
            pass  # ``outcome`` holds every result and alert
        return None

    def _best(self, key: MarketKey, side: Side) -> float | None:
        book = self.books.get(key)
        if book is None:
            return None
        levels = book.asks if side is Side.BUY else book.bids
        return levels[0][0] if levels else None

    # -- one order -------------------------------------------------------------------------------------
    async def _send(self, order: Order, run: _Run) -> OrderResult:
        """Place ``order`` and return its final state. Never raises (errors become results)."""
        market = self.markets.get((order.venue, order.symbol))
        if market is not None and (problem := rule_violation(order, market)):
            return OrderResult(order, OrderStatus.REJECTED, reason=problem + NOT_SENT)
        venue = self.venues.get(order.venue)
        if venue is None:
            return OrderResult(order, OrderStatus.REJECTED, reason=f"unknown_venue: {order.venue}{NOT_SENT}")
        self._open.add(order.client_oid)
        try:
            result = await self._place(venue, order, run)
            if result.status is OrderStatus.NEW:
                result = await self._resolve(venue, order, result, run)
            return result
        finally:
            self._open.discard(order.client_oid)
            self._updates.pop(order.client_oid, None)
            self._waiting.pop(order.client_oid, None)

    async def _place(self, venue: Venue, order: Order, run: _Run) -> OrderResult:
        delay = self.retry_backoff_s
        last = ""
        for attempt in range(self.retry_attempts):
            run.sent()
            try:
                # the timer is set once the venue has written the order (see eager.py for why)
                result = await deadline_after_first_step(venue.place_order(order), self.order_timeout_s)
            except Exception as exc:
                run.failed += 1
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if not is_retryable(exc):
                    run.acked()
                    return OrderResult(order, OrderStatus.REJECTED, reason=f"venue_error: {last}")
                # The request may have been processed: the venue knows the client order id then.
                found = await self._lookup(venue, order, run)
                if found is None and not surely_unprocessed(exc):
                    found = await self._await_landing(venue, order, run)
                if found is not None:
                    run.acked()
                    return found
                if attempt + 1 < self.retry_attempts:
                    retry_after = getattr(exc, "retry_after_s", None)
                    await asyncio.sleep(retry_after if retry_after is not None else delay)
                    delay *= 2
                continue
            run.ok += 1
            run.acked()
            return result
        run.acked()
        return OrderResult(order, OrderStatus.NEW,
                           reason=f"{UNRESOLVED}: {self.retry_attempts} attempts failed, last {last}")

    async def _await_landing(self, venue: Venue, order: Order, run: _Run) -> OrderResult | None:
        """A request whose fate is unknown (a timeout, a 5xx, a dropped connection) may still land: look the
        order up every ``poll_interval_s`` for ``resolve_timeout_s`` before it may be sent again, so that a
        second order can only follow a first the venue never saw, whether or not it deduplicates client
        order ids. A landed order's final state pushed on the private stream ends the wait at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resolve_timeout_s
        while (left := deadline - loop.time()) > 0:
            await self._wait_for_push(order.client_oid, min(self.poll_interval_s, left))
            pushed = self._pushed_final(order)
            if pushed is not None:
                return pushed
            found = await self._lookup(venue, order, run)
            if found is not None:
                return found
        return None

    async def _wait_for_push(self, oid: str, timeout_s: float) -> None:
        """Until a final state of order ``oid`` is pushed (:meth:`on_order_update`), the update source is
        lost, or ``timeout_s`` passes."""
        waiter = self._waiting.get(oid)
        if waiter is None or waiter.done():
            waiter = self._waiting[oid] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    async def _lookup(self, venue: Venue, order: Order, run: _Run) -> OrderResult | None:
        """The order as the venue knows it (REST, by client order id); None if unknown or unreachable."""
        self.rest_lookups += 1
        try:
            async with asyncio.timeout(self.order_timeout_s):
                found = await venue.fetch_order(order.symbol, order.client_oid)
        except Exception as exc:
            if is_retryable(exc):
                run.failed += 1
            return None
        run.ok += 1
        if found.order.client_oid != order.client_oid:
            return None
        if found.status is not OrderStatus.NEW:
            self.rest_resolutions += 1
        return OrderResult(order, found.status, owned_fills(order, found.fills), found.reason)

    async def _resolve(self, venue: Venue, order: Order, result: OrderResult, run: _Run) -> OrderResult:
        """An order the venue answered as still open: wait for a pushed final state, looking it up by
        REST every ``poll_interval_s``; past ``resolve_timeout_s`` cancel it and look once more."""
        oid = order.client_oid
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resolve_timeout_s
        # the source was lost while the order was on its way (its loss woke no waiter for it): look it up now
        wait = not self._updates_lost
        while True:
            pushed = self._pushed_final(order)
            if pushed is not None:
                return pushed
            left = deadline - loop.time()
            if left <= 0:
                break
            if wait:
                await self._wait_for_push(oid, min(self.poll_interval_s, left))
            wait = True
            pushed = self._pushed_final(order)
            if pushed is not None:
                return pushed
            found = await self._lookup(venue, order, run)
            if found is not None and found.status is not OrderStatus.NEW:
                return found
            if found is not None:
                result = found
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.order_timeout_s):
                await venue.cancel_order(order.symbol, oid)
        found = await self._lookup(venue, order, run)
        if found is not None and found.status is not OrderStatus.NEW:
            return found
        run.failed += 1
        return OrderResult(order, OrderStatus.NEW, result.fills,
                           reason=f"{UNRESOLVED}: still open after {self.resolve_timeout_s:g} s and a cancel")

    def _pushed_final(self, order: Order) -> OrderResult | None:
        updates = self._updates.get(order.client_oid)
        if not updates or not updates[-1].final:
            return None
        fills = tuple(f for u in updates for f in u.fills)
        final = updates[-1]
        if sum((f.size for f in fills), ZERO) != final.filled_size:
            return None  # a match message missed or delivered twice: the REST lookup has the whole order
        self.pushed_resolutions += 1
        return OrderResult(order, final.status, owned_fills(order, fills), final.reason)


def owned_fills(order: Order, fills: tuple[Fill, ...]) -> tuple[Fill, ...]:
    """``fills`` booked to ``order``'s opportunity and leg. A push, or a REST view of an order the venue
    adapter did not place itself, knows only the client order id: without this such fills land on leg 0
    of no opportunity, and the PnL attribution goes wrong."""
    if all(f.opportunity_id == order.opportunity_id and f.leg_index == order.leg_index for f in fills):
        return fills
    return tuple(replace(f, opportunity_id=order.opportunity_id, leg_index=order.leg_index) for f in fills)


def settings_kwargs(settings: Settings) -> dict[str, Any]:
    """LiveExecutor keyword arguments from the ``execution`` section."""
    ex = settings.execution
    return {"leg_mode": ex.leg_mode, "failed_leg_policy": ex.failed_leg_policy,
            "unwind_slippage_bps": ex.unwind_slippage_bps, "order_timeout_s": ex.order_timeout_s,
            "retry_attempts": ex.retry_attempts, "retry_backoff_s": ex.retry_backoff_s,
            "resolve_timeout_s": ex.resolve_timeout_s, "poll_interval_s": ex.poll_interval_s}
