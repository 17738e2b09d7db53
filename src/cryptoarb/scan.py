"""One snapshot of a venue's markets, every cycle evaluated and the best sized on depth.

The same detector and sizing as the live engine, run once over a snapshot: saved KuCoin REST
responses, the simulator, or (later) a live REST snapshot. Research, not trading: sizes are capped by
the notional limit, not by balances.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptoarb.config import Settings
from cryptoarb.core.books import BookStore, Freshness
from cryptoarb.core.detector import Detector
from cryptoarb.core.fees import discounted
from cryptoarb.core.graph import enumerate_cycles
from cryptoarb.core.risk import RiskGate, RiskLimits
from cryptoarb.core.sizing import size_cycle
from cryptoarb.core.valuation import UsdPricer
from cryptoarb.model import BookUpdate, Market, Opportunity, Rejection


@dataclass(slots=True)
class ScanResult:
    markets: int
    cycles: int
    candidates: int
    opportunities: list[Opportunity]
    rejected: Counter[str] = field(default_factory=Counter)


def scan_snapshot(markets: Sequence[Market], books: Iterable[BookUpdate], now: float, settings: Settings,
                  min_return_bps: float | None = None) -> ScanResult:
    threshold = settings.detector.min_return_bps if min_return_bps is None else min_return_bps
    markets = discounted(markets, settings.detector.fee_discount)
    by_key = {m.key: m for m in markets}
    store = BookStore()
    for update in books:
        if (update.venue, update.symbol) in by_key:
            store.apply(update)
    for venue in {m.venue for m in markets}:
        store.liveness(venue).alive_at = now  # the snapshot is whole as of ``now``
    cycles = enumerate_cycles(list(markets), settings.detector.max_legs, settings.detector.start_assets or None)
    detector = Detector(cycles, threshold)
    for book in store:
        detector.update((book.venue, book.symbol), book.best_bid, book.best_ask)
    candidates = [c for c in detector.evaluate_all() if c.net_return_bps >= threshold]
    pricer = UsdPricer(store, set(by_key))
    gate = RiskGate(RiskLimits(max_notional_usd=settings.risk.max_notional_usd))
    freshness = Freshness(settings.risk.max_book_age_s)
    result = ScanResult(len(markets), len(cycles), len(candidates), [])
    for n, candidate in enumerate(candidates):
        cycle = candidate.cycle
        usd = pricer(cycle.start_venue, cycle.start_asset)
        if not usd:
            result.rejected["no_usd_price"] += 1
            continue
        sized = size_cycle(cycle, store, now, gate.max_input(usd), usd, freshness,
                           opportunity_id=f"scan{n:05d}-c{cycle.id}")
        if isinstance(sized, Rejection):
            result.rejected[sized.reason.value] += 1
        elif sized.profit <= 0:
            result.rejected["below_min_profit"] += 1
        else:
            result.opportunities.append(sized)
    result.opportunities.sort(key=lambda o: -o.profit_usd)
    return result


def text(value: Decimal) -> str:
    """A decimal as plain digits, never in exponent form (``5.9269E-8`` reads badly in a table)."""
    return format(value.normalize(), "f")


def opportunity_json(opportunity: Opportunity) -> dict[str, Any]:
    return {
        "id": opportunity.id, "kind": opportunity.kind, "path": list(opportunity.path),
        "legs": [{"venue": leg.venue, "symbol": leg.symbol, "side": leg.side.value, "price": text(leg.limit_price),
                  "size": text(leg.size)} for leg in opportunity.legs],
        "net_return_bps": round(opportunity.net_return_bps, 4), "input": text(opportunity.input),
        "output": text(opportunity.output), "profit": text(opportunity.profit),
        "profit_usd": round(opportunity.profit_usd, 6),
    }
