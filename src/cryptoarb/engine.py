"""The engine: books -> detector -> sizing -> risk -> executor -> ledger, synchronous on each batch.

Nothing here awaits. The asyncio edges (venue streams, storage, notifiers) call :meth:`Engine.on_batch`
and :meth:`Engine.run_due`; every decision reads time from the value passed in, so a simulated or
replayed venue drives the engine deterministically.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from cryptoarb.config import Settings
from cryptoarb.core.books import BookStore, Freshness, tradeable
from cryptoarb.core.detector import Detector
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.core.ledger import Ledger
from cryptoarb.core.risk import RiskGate, RiskLimits
from cryptoarb.core.sizing import size_cycle
from cryptoarb.core.valuation import UsdPricer
from cryptoarb.execution.paper import PaperExecutor
from cryptoarb.model import (
    BookUpdate,
    Cycle,
    Event,
    Execution,
    Market,
    MarketKey,
    Opportunity,
    Rejection,
    RejectReason,
)
from cryptoarb.status import BestOpportunity
from cryptoarb.venues.base import Venue

GONE_BEFORE_FILL = "gone_before_fill"
BEST_WINDOW_S = 2.0


@dataclass(slots=True)
class Counters:
    updates: int = 0
    detected: int = 0
    executed: int = 0
    rejected: Counter[str] | None = None

    def __post_init__(self) -> None:
        self.rejected = Counter()


class Engine:
    def __init__(self, settings: Settings, venues: Mapping[str, Venue], markets: Iterable[Market],
                 publish: Callable[[Event], None]) -> None:
        self.settings = settings
        self.venues = dict(venues)
        self.markets: dict[MarketKey, Market] = {m.key: m for m in markets}
        self.publish = publish
        self.books = BookStore()
        inventory = _inventory(settings.balances)
        start_assets = settings.detector.start_assets or None
        self.cycles: list[Cycle] = enumerate_cycles(
            list(self.markets.values()), settings.detector.max_legs, start_assets, inventory)
        self.detector = Detector(self.cycles, settings.detector.min_return_bps)
        self.freshness = Freshness(settings.risk.max_book_age_s)
        self.risk = RiskGate(RiskLimits(
            min_profit_usd=settings.risk.min_profit_usd, max_notional_usd=settings.risk.max_notional_usd,
            max_concurrent=settings.risk.max_concurrent, cooldown_s=settings.risk.cooldown_s,
            daily_loss_limit_usd=settings.risk.daily_loss_limit_usd))
        self.ledger = Ledger(settings.balances)
        self.pricer = UsdPricer(self.books, set(self.markets))
        self.executor = PaperExecutor(self.books, self.markets, self.venues,
                                      failed_leg_policy=settings.execution.failed_leg_policy,
                                      unwind_slippage_bps=settings.execution.unwind_slippage_bps)
        self.latency_s = settings.paper.latency_ms / 1000.0
        self.counters = Counters()
        self._due: list[tuple[float, int, Opportunity]] = []
        self._seq = 0
        self._busy_cycles: set[int] = set()
        self._last_outcome: dict[int, tuple] = {}
        self._best: dict[int, tuple[float, BestOpportunity]] = {}
        self.hot_path_ns: list[int] = []
        self.accepting = True

    # -- hot path ------------------------------------------------------------------------------
    def on_batch(self, batch: Iterable[BookUpdate], now: float, venue: str | None = None) -> None:
        """Apply a batch from one venue's stream; a batch, even empty, proves that stream alive at ``now``."""
        if venue is not None:
            self.books.liveness(venue).alive_at = now
        for update in batch:
            self.on_update(update, now)

    def on_update(self, update: BookUpdate, now: float) -> None:
        key = (update.venue, update.symbol)
        if key not in self.markets:
            return
        started = time.perf_counter_ns()
        book = self.books.apply(update)
        self.counters.updates += 1
        if book.gapped or not self.accepting:
            return
        for candidate in self.detector.update(key, book.best_bid, book.best_ask):
            self._consider(candidate.cycle, candidate.net_return_bps, now)
        self.hot_path_ns.append(time.perf_counter_ns() - started)
        if len(self.hot_path_ns) > 100_000:
            del self.hot_path_ns[:50_000]

    def _consider(self, cycle: Cycle, net_return_bps: float, now: float) -> None:
        if cycle.id in self._busy_cycles:
            return
        reason = self.risk.pre_check(cycle, now)
        if reason is not None:
            self._reject(cycle, reason, "", net_return_bps, now)
            return
        usd = self.pricer(cycle.start_venue, cycle.start_asset)
        if not usd:
            self._reject(cycle, RejectReason.NO_BALANCE, "no USD price for the start asset", net_return_bps, now)
            return
        balance = self.ledger.free(cycle.start_venue, cycle.start_asset)
        if balance <= 0:
            self._reject(cycle, RejectReason.NO_BALANCE, f"no {cycle.start_asset} on {cycle.start_venue}",
                         net_return_bps, now)
            return
        max_input = min(balance, self.risk.max_input(usd))
        self._seq += 1
        result = size_cycle(cycle, self.books, now, max_input, usd, self.freshness,
                            opportunity_id=f"op{self._seq:07d}-c{cycle.id}")
        if isinstance(result, Rejection):
            self._reject(cycle, result.reason, result.detail, net_return_bps, now)
            return
        self._best[cycle.id] = (now, BestOpportunity(cycle.path, cycle.start_venue, net_return_bps,
                                                     result.profit_usd))
        reason = self.risk.check(result)
        if reason is not None:
            self._reject(cycle, reason, f"profit {result.profit_usd:.4f} USD", net_return_bps, now)
            return
        fingerprint = ("plan", tuple((leg.size, leg.limit_price) for leg in result.legs))
        if self._last_outcome.get(cycle.id) == fingerprint:
            return
        self._last_outcome[cycle.id] = fingerprint
        self.counters.detected += 1
        self.publish(result)
        self.risk.started(result.id)
        self._busy_cycles.add(cycle.id)
        heapq.heappush(self._due, (now + self.latency_s, self._seq, result))

    def _reject(self, cycle: Cycle, reason: RejectReason | str, detail: str, bps: float, now: float) -> None:
        outcome = ("reject", str(reason))
        if self._last_outcome.get(cycle.id) == outcome:
            return  # the same episode, already counted
        self._last_outcome[cycle.id] = outcome
        self.counters.rejected[str(reason)] += 1
        if isinstance(reason, RejectReason):
            self.publish(Rejection(cycle.id, cycle.path, reason, detail, bps, now))

    # -- timers --------------------------------------------------------------------------------
    def run_due(self, now: float) -> None:
        """Execute every opportunity whose orders would have reached the venue by ``now``."""
        while self._due and self._due[0][0] <= now:
            _, _, opportunity = heapq.heappop(self._due)
            self._execute(opportunity, now)

    def _execute(self, opportunity: Opportunity, now: float) -> None:
        results = self.executor.execute(opportunity, now)
        fills = [fill for result in results for fill in result.fills]
        realized_usd = self.ledger.apply(fills, self.markets, self.pricer)
        start_key = (opportunity.legs[0].venue, opportunity.start_asset)
        realized = sum((d for k, d in self.ledger.deltas(fills, self.markets).items() if k == start_key),
                       Decimal(0))
        fees_usd = sum(float(f.fee) * (self.pricer(f.venue, f.fee_asset) or 0.0) for f in fills)
        failed = [(r.order.venue, r.order.symbol) for r in results if r.status.value != "filled"]
        self.risk.finished(opportunity.id, realized_usd, failed, now)
        self._busy_cycles.discard(opportunity.cycle_id)
        if fills:
            self.counters.executed += 1
        else:
            self.counters.rejected[GONE_BEFORE_FILL] += 1
        self.publish(Execution(opportunity, results, realized, realized_usd, fees_usd, now))

    # -- views ---------------------------------------------------------------------------------
    def best(self, now: float, n: int = 5) -> tuple[BestOpportunity, ...]:
        recent = [b for at, b in self._best.values() if now - at <= BEST_WINDOW_S]
        return tuple(sorted(recent, key=lambda b: -b.net_return_bps)[:n])

    def books_tradeable(self, now: float) -> int:
        return sum(1 for book in self.books if tradeable(book, now, self.freshness) is None)

    @property
    def pending(self) -> int:
        return len(self._due)


def _inventory(balances: Mapping[str, Mapping[str, float]]) -> dict[str, set[str]]:
    held: dict[str, set[str]] = {}
    for venue, assets in balances.items():
        for asset, amount in assets.items():
            if amount > 0:
                held.setdefault(asset, set()).add(venue)
    return held


