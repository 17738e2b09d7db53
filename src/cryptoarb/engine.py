"""The engine: books -> detector -> sizing -> risk -> executor -> ledger, synchronous on each batch.

Nothing here awaits. The asyncio edges (venue streams, storage, notifiers) call :meth:`Engine.on_batch`
and :meth:`Engine.run_due`; every decision reads time from the value passed in, so a simulated or
replayed venue drives the engine deterministically.

Execution path: an accepted opportunity is handed to the executor (:mod:`cryptoarb.execution`) with a
``record`` callback that enters it in the opportunity ledger (plan, fingerprint of the levels it walked,
copied at hand-over, measured internal latency) and publishes it; the executor calls it once the first
order is with the venue (paper and watch: at once), always before the completion, so the record never
delays an order: ``PaperExecutor`` by default, or any :class:`~cryptoarb.execution.executor.Executor` given to the
constructor (``LiveExecutor``). The executor calls back :meth:`Engine._complete` with a ``Completion``:
paper from :meth:`Engine.run_due` once the simulated latency has passed on the venue's clock, live from
its task when the venue has answered. The engine then books the fills (ledger, PnL attribution, risk,
latency per stage), publishes the ``Execution`` (or the refusal), failed-leg alerts, kill-switch and
inventory notices.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from cryptoarb.config import Settings
from cryptoarb.core.books import Book, BookStore, Freshness, tradeable
from cryptoarb.core.detector import Detector
from cryptoarb.core.fees import discounted
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.core.inventory import InventoryMonitor
from cryptoarb.core.ledger import Ledger, OpportunityLedger, attribute, book_fingerprint, planned_notional
from cryptoarb.core.risk import RiskGate, RiskLimits
from cryptoarb.core.sizing import size_cycle, walk_levels
from cryptoarb.core.valuation import UsdPricer
from cryptoarb.execution.executor import Completion, Executor
from cryptoarb.execution.latency import LatencyStats
from cryptoarb.execution.paper import PaperExecutor
from cryptoarb.execution.preflight import needs
from cryptoarb.execution.taken_liquidity import TakenLiquidity
from cryptoarb.model import (
    BookUpdate,
    Cycle,
    Event,
    Execution,
    Leg,
    Level,
    Market,
    MarketKey,
    Notice,
    Opportunity,
    Rejection,
    RejectReason,
    Side,
)
from cryptoarb.status import BestOpportunity
from cryptoarb.venues.base import Venue

GONE_BEFORE_FILL = "gone_before_fill"
BEST_WINDOW_S = 2.0
log = logging.getLogger("cryptoarb.engine")


def new_run_id() -> str:
    """Eight random hex digits: opportunity ids (``op<run>-<n>-c<cycle>``) and the client order ids derived
    from them (``-L<leg>``, at most ~34 characters, within KuCoin's 40) differ between runs."""
    return secrets.token_hex(4)


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
                 publish: Callable[[Event], None], *,
                 executor: Executor | Callable[[Engine], Executor] | None = None, run_id: str | None = None) -> None:
        """``executor``: an executor, or a factory called with this engine (``LiveExecutor.for_engine``
        needs its books and ledger); default a ``PaperExecutor`` configured from ``settings``.

        ``run_id`` (letters and digits, default a fresh random one) is part of every opportunity id, and so of
        every client order id: a restarted engine's counter starts again at 1, and an id the venue or the
        store has already seen would be answered with the earlier run's order (exchanges deduplicate on the
        client order id) or dropped as a duplicate row."""
        self.run_id = new_run_id() if run_id is None else run_id
        if not (self.run_id.isascii() and self.run_id.isalnum()) or len(self.run_id) > 12:
            raise ValueError(f"run_id must be 1-12 letters or digits, got {self.run_id!r}")
        self.settings = settings
        self.venues = dict(venues)
        self.markets: dict[MarketKey, Market] = {m.key: m for m in discounted(markets, settings.detector.fee_discount)}
        self.publish = self._guarded(publish)
        self.publish_errors = 0
        self.books = BookStore()
        inventory = _inventory(settings.balances)
        start_assets = settings.detector.start_assets or None
        cycles = enumerate_cycles(list(self.markets.values()), settings.detector.max_legs, start_assets, inventory)
        self.inventory_mode = settings.execution.leg_mode == "inventory"
        if self.inventory_mode:
            cycles = _held_cycles(cycles, settings.balances)
        self.cycles: list[Cycle] = cycles
        self.detector = Detector(self.cycles, settings.detector.min_return_bps)
        self.freshness = Freshness(settings.risk.max_book_age_s)
        risk = settings.risk
        self.risk = RiskGate(RiskLimits(
            min_profit_usd=risk.min_profit_usd, max_notional_usd=risk.max_notional_usd,
            max_concurrent=risk.max_concurrent, cooldown_s=risk.cooldown_s,
            daily_loss_limit_usd=risk.daily_loss_limit_usd, max_drawdown_usd=risk.max_drawdown_usd,
            max_error_rate=risk.max_error_rate, error_window=risk.error_window,
            error_min_requests=risk.error_min_requests, stale_data_s=risk.stale_data_s))
        self.ledger = Ledger(settings.balances)
        self.pricer = UsdPricer(self.books, set(self.markets))
        self.opportunity_ledger = OpportunityLedger()
        self.latency = LatencyStats()
        self.inventory = InventoryMonitor(settings.balances, threshold_pct=risk.inventory_skew_pct,
                                          min_usd=risk.inventory_min_usd,
                                          start_assets=frozenset(settings.detector.start_assets))
        if executor is None:
            paper = settings.paper
            self.executor: Executor = PaperExecutor(
                self.books, self.markets, self.venues, failed_leg_policy=settings.execution.failed_leg_policy,
                unwind_slippage_bps=settings.execution.unwind_slippage_bps, latency_s=paper.latency_ms / 1000.0,
                internal_latency_s=paper.internal_latency_ms / 1000.0,
                add_measured_latency=paper.add_measured_latency, leg_mode=settings.execution.leg_mode,
                balance=self.ledger.free, freshness=self.freshness, taken_liquidity_s=paper.taken_liquidity_s)
        elif hasattr(executor, "submit"):
            self.executor = executor  # type: ignore[assignment]
        else:
            self.executor = executor(self)  # type: ignore[operator]
        self.executor.bind(self._complete, self._gate)
        # paper fills on a real venue's feed: its books are netted of what they took (execution/taken_liquidity.py)
        self._taken: TakenLiquidity | None = getattr(self.executor, "taken", None)
        self.counters = Counters()
        self._seq = 0
        self._update_started_ns = 0
        self._update_received_at = 0.0
        self._busy_cycles: set[int] = set()
        # per opportunity in flight, what its orders draw on: held back from every plan sized meanwhile
        self._committed: dict[str, dict[tuple[str, str], Decimal]] = {}
        self._last_outcome: dict[int, tuple] = {}
        self._best: dict[int, tuple[float, BestOpportunity]] = {}
        self.hot_path_ns: list[int] = []
        self.accepting = True

    def _guarded(self, publish: Callable[[Event], None]) -> Callable[[Event], None]:
        """``publish`` that never raises into the engine: a sink failing (a closed store writer at shutdown, a
        notifier's bug) must not cut the booking of an order the venue has already filled short."""
        def guarded(event: Event) -> None:
            try:
                publish(event)
            except Exception:
                self.publish_errors += 1
                log.exception("publishing a %s failed; the engine's own books are kept", type(event).__name__)
        return guarded

    # -- hot path ------------------------------------------------------------------------------
    def on_batch(self, batch: Iterable[BookUpdate], now: float, venue: str | None = None) -> None:
        """Apply a batch from one venue's stream; a batch, even empty, proves that stream alive at ``now``."""
        if venue is not None:
            self.books.liveness(venue).alive_at = now
            self.risk.data_seen(venue, now)
        for update in batch:
            self.on_update(update, now)

    def on_update(self, update: BookUpdate, now: float) -> None:
        key = (update.venue, update.symbol)
        if key not in self.markets:
            return
        started = self._update_started_ns = time.perf_counter_ns()
        self._update_received_at = update.received_at
        book = self.books.apply(update)
        if self._taken is not None and key in self._taken.markets:
            self._taken.net(book, now)
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
        detected_ns = time.perf_counter_ns()
        reason = self.risk.pre_check(cycle, now)
        if reason is not None:
            self._reject(cycle, reason, "", net_return_bps, now)
            return
        usd = self.pricer(cycle.start_venue, cycle.start_asset)
        if not usd:
            self._reject(cycle, RejectReason.NO_BALANCE, "no USD price for the start asset", net_return_bps, now)
            return
        balance = self._free(cycle.start_venue, cycle.start_asset)
        if balance <= 0:
            self._reject(cycle, RejectReason.NO_BALANCE, f"no {cycle.start_asset} on {cycle.start_venue}",
                         net_return_bps, now)
            return
        max_input = min(balance, self.risk.max_input(usd))
        if self.inventory_mode:
            max_input = min(max_input, self._inventory_cap(cycle))
        self._seq += 1
        result = size_cycle(cycle, self.books, now, max_input, usd, self.freshness,
                            opportunity_id=f"op{self.run_id}-{self._seq:07d}-c{cycle.id}",
                            net_return_bps=net_return_bps)
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
        self.risk.started(result.id)
        self._busy_cycles.add(cycle.id)
        self._dispatch(result, now, detected_ns)

    def _free(self, venue: str, asset: str) -> Decimal:
        """What the ledger holds less what opportunities in flight will draw on."""
        free = self.ledger.free(venue, asset)
        for held in self._committed.values():  # a handful at most (risk.max_concurrent)
            free -= held.get((venue, asset), Decimal(0))
        return free

    def _inventory_cap(self, cycle: Cycle) -> Decimal:
        """The largest input for which every leg's input is already held on its venue (inventory mode).

        Each leg's balance is carried back to start-asset units through the top-of-book rates of the
        legs before it; walking depth only lowers those rates, so the real plan never needs more.
        """
        cap = self._free(cycle.start_venue, cycle.start_asset)
        reach = 1.0  # start units -> this leg's input, at top of book
        for previous, leg in zip(cycle.legs, cycle.legs[1:], strict=False):
            reach *= _top_rate(previous, self.books.get(previous.market.key))
            if reach <= 0:
                return Decimal(0)
            cap = min(cap, self._free(leg.venue, leg.asset_in) / Decimal(repr(reach)))
        return max(cap, Decimal(0))

    def _reject(self, cycle: Cycle, reason: RejectReason | str, detail: str, bps: float, now: float) -> None:
        outcome = ("reject", str(reason))
        if self._last_outcome.get(cycle.id) == outcome:
            return  # the same episode, already counted
        self._last_outcome[cycle.id] = outcome
        self.counters.rejected[str(reason)] += 1
        if isinstance(reason, RejectReason):
            self.publish(Rejection(cycle.id, cycle.path, reason, detail, bps, now))

    # -- execution ---------------------------------------------------------------------------------
    def _dispatch(self, opportunity: Opportunity, now: float, detected_ns: int) -> None:
        """Record ``opportunity`` (plan, book fingerprint, internal latency) and hand it to the executor."""
        decided_ns = time.perf_counter_ns()
        stages = {
            "receive": max(now - self._update_received_at, 0.0) * 1000.0,
            "detect": (detected_ns - self._update_started_ns) / 1e6 if self._update_started_ns else 0.0,
            "risk": (decided_ns - detected_ns) / 1e6,
        }
        internal_s = (stages["receive"] + stages["detect"] + stages["risk"]) / 1000.0

        used = self._books_used(opportunity)

        def record() -> None:
            self.opportunity_ledger.detected(opportunity, book_fingerprint(used), self._notionals(opportunity, used),
                                             stages, self.executor.mode)
            self.publish(opportunity)

        # The executor runs ``record`` once the first order is with the venue (paper: at once), so the
        # ledger and the notifiers cost the order no time; what they need of the books is copied now.
        self.executor.submit(opportunity, now, internal_s, record)
        if opportunity.id in self.risk.in_flight:  # not already completed (refused) inside submit
            # what its orders will draw, held back from every plan sized until it completes: the paper
            # executor reserves nothing, and a live one only at preflight, after the next plan is sized
            self._committed[opportunity.id] = needs(opportunity, self.markets, self.settings.execution.leg_mode)

    def _gate(self, opportunity: Opportunity) -> tuple[RejectReason, str] | None:
        """Asked by the executor right before an opportunity's first order."""
        risk = self.risk
        if risk.killed:
            return RejectReason.KILL_SWITCH, f"kill switch: {risk.killed_reason}"
        # paused after the hand-over (a /pause while the plan waited for its latency)
        if (key := risk.paused_market((leg.venue, leg.symbol) for leg in opportunity.legs)) is not None:
            return RejectReason.PAUSED, f"{key[1]}@{key[0]} paused"
        return None

    def _books_used(self, opportunity: Opportunity) -> list[tuple[str, str, int, list[Level]]]:
        """Per leg: venue, symbol, the book's sequence and a copy of the levels its limit price reaches
        (what the plan walked), as they are now."""
        used: list[tuple[str, str, int, list[Level]]] = []
        for leg in opportunity.legs:
            book = self.books.get((leg.venue, leg.symbol))
            if book is None:
                used.append((leg.venue, leg.symbol, -1, []))
                continue
            buy = leg.side is Side.BUY
            limit = float(leg.limit_price)
            levels = book.asks if buy else book.bids
            n = 0
            for price, _ in levels:  # best first: stop at the first level past the limit
                if (price > limit) if buy else (price < limit):
                    break
                n += 1
            used.append((leg.venue, leg.symbol, book.sequence, list(levels[:n])))
        return used

    def _notionals(self, opportunity: Opportunity,
                   used: list[tuple[str, str, int, list[Level]]]) -> tuple[Decimal, ...]:
        """Each leg's planned cost or proceeds; exact (a BUY whose fee is taken from the base received is
        walked again on the levels the plan was sized on)."""
        out = []
        for leg, (_, _, _, levels) in zip(opportunity.legs, used, strict=True):
            market = self.markets[(leg.venue, leg.symbol)]
            if leg.side is Side.BUY and market.fee_currency == "received":
                walked = walk_levels(levels, leg.size)
                if walked is not None:
                    out.append(walked[0])
                    continue
            out.append(planned_notional(leg, market.taker_fee))
        return tuple(out)

    def run_due(self, now: float) -> None:
        """Execute every opportunity whose orders would have reached the venue by ``now`` (paper), and
        check the data feeds for the stale-data kill switch."""
        if not self.risk.killed and (reason := self.risk.check_stale(now)) is not None:
            self.publish(Notice("kill_switch", f"kill switch engaged: {reason}", now))
        self.executor.poll(now)

    def settle(self, now: float, max_steps: int = 1_000) -> float:
        """No new opportunities; advance the clock from ``now`` a latency at a time until every one in flight
        has landed (a sequential cycle's legs land one latency apart) on the last books. Returns the clock."""
        self.accepting = False
        step = max(self.latency_s, 1e-3)
        for _ in range(max_steps):
            now += step
            self.run_due(now)
            if not self.pending:
                break
        return now

    def _complete(self, completion: Completion) -> None:
        """Book what the executor did with an opportunity."""
        opportunity, now = completion.opportunity, completion.at
        was_killed = self.risk.killed
        self._busy_cycles.discard(opportunity.cycle_id)
        self._committed.pop(opportunity.id, None)
        if completion.requests_ok or completion.requests_failed:
            self.risk.record_requests(completion.requests_ok, completion.requests_failed, now)
        record = self.opportunity_ledger.get(opportunity.id)
        stages = {**(record.latency_ms if record is not None else {}), **completion.latency_ms}
        self.latency.record(stages)
        if completion.refused is not None:
            reason, detail = completion.refused
            self.risk.finished(opportunity.id, 0.0, [], now)
            self.counters.rejected[str(reason)] += 1
            self.opportunity_ledger.refused(opportunity.id, str(reason), completion.latency_ms)
            if isinstance(reason, RejectReason):
                self.publish(Rejection(opportunity.cycle_id, opportunity.path, reason, f"{opportunity.id}: {detail}",
                                       opportunity.net_return_bps, now))
            else:
                self.publish(Notice("preflight", f"{opportunity.id} refused before any order: {detail}", now,
                                    {"opportunity": opportunity.id, "reason": str(reason)}))
        else:
            self._book(completion)
        for alert in completion.alerts:
            self.publish(Notice("failed_leg", alert, now, {"opportunity": opportunity.id}))
        if self.risk.killed and not was_killed:
            self.publish(Notice("kill_switch", f"kill switch engaged: {self.risk.killed_reason}", now))

    def _book(self, completion: Completion) -> None:
        opportunity, results, now = completion.opportunity, completion.results, completion.at
        fills = [fill for result in results for fill in result.fills]
        record = self.opportunity_ledger.get(opportunity.id)
        notionals = record.notionals if record is not None else None
        attribution = attribute(opportunity, results, self.markets, self.pricer, notionals)
        realized_usd = self.ledger.apply(fills, self.markets, self.pricer)
        # The start asset may come back on another venue (an inventory edge closes the cycle there).
        realized = sum((d for (_, asset), d in self.ledger.deltas(fills, self.markets).items()
                        if asset == opportunity.start_asset), Decimal(0))
        fees_usd = sum(float(f.fee) * (self.pricer(f.venue, f.fee_asset) or 0.0) for f in fills)
        failed = [(r.order.venue, r.order.symbol) for r in results if r.status.value != "filled"]
        self.risk.finished(opportunity.id, realized_usd, failed, now)
        if fills:
            self.counters.executed += 1
        else:
            self.counters.rejected[GONE_BEFORE_FILL] += 1
        self.opportunity_ledger.executed(opportunity.id, attribution, realized_usd, completion.latency_ms)
        self.publish(Execution(opportunity, results, realized, realized_usd, fees_usd, now, mode=completion.mode))
        if fills:
            self._check_inventory(now)

    def _check_inventory(self, now: float) -> None:
        report = self.inventory.check(self.ledger.holdings(), self.pricer)
        if report is None:
            return
        if not report.alerts:
            self.publish(Notice("inventory", "inventory back within its targets", now))
            return
        self.publish(Notice("inventory", "inventory skew: " + "; ".join(a.describe() for a in report.alerts), now,
                            {"skewed": str(len(report.alerts))}))
        for suggestion in report.suggestions:
            self.publish(Notice("rebalance", f"suggested rebalance: {suggestion.describe()}", now,
                                {"asset": suggestion.asset, "from": suggestion.from_venue,
                                 "to": suggestion.to_venue, "amount": str(suggestion.amount),
                                 "kind": suggestion.kind}))

    @property
    def latency_s(self) -> float:
        """When an opportunity's orders land after detection, on the engine's clock (paper)."""
        return self.executor.latency_s

    # -- views ---------------------------------------------------------------------------------
    def best(self, now: float, n: int = 5) -> tuple[BestOpportunity, ...]:
        recent = [b for at, b in self._best.values() if now - at <= BEST_WINDOW_S]
        return tuple(sorted(recent, key=lambda b: -b.net_return_bps)[:n])

    def books_tradeable(self, now: float) -> int:
        return sum(1 for book in self.books if tradeable(book, now, self.freshness) is None)

    @property
    def pending(self) -> int:
        """Opportunities handed to the executor and not completed yet."""
        return self.executor.pending


def _held_cycles(cycles: list[Cycle], balances: Mapping[str, Mapping[str, float]]) -> list[Cycle]:
    """Cycles whose every leg spends an asset held on that leg's venue, renumbered 0..n-1."""
    held = {(venue, asset) for venue, assets in balances.items() for asset, amount in assets.items() if amount > 0}
    kept = [c for c in cycles if all((leg.venue, leg.asset_in) in held for leg in c.legs)]
    return [Cycle(i, c.legs) for i, c in enumerate(kept)]


def _top_rate(leg: Leg, book: Book | None) -> float:
    """Units of ``leg``'s output per unit of input at the top of its book, after the taker fee."""
    if book is None or not book.bids or not book.asks:
        return 0.0
    fee = float(leg.market.taker_fee)
    if leg.side is Side.SELL:
        return book.best_bid * (1 - fee)
    if leg.market.fee_currency == "quote":
        return 1 / (book.best_ask * (1 + fee))
    return (1 - fee) / book.best_ask


def _inventory(balances: Mapping[str, Mapping[str, float]]) -> dict[str, set[str]]:
    held: dict[str, set[str]] = {}
    for venue, assets in balances.items():
        for asset, amount in assets.items():
            if amount > 0:
                held.setdefault(asset, set()).add(venue)
    return held


