"""Balances and realized PnL (:class:`Ledger`), and the opportunity ledger (:class:`OpportunityLedger`):
what each detected opportunity planned, on which books, and what its execution really earned and why.

Pure and exact where money moves (``Decimal``); valuations in USD are floats.

PnL attribution (:func:`attribute`), all in USD at one set of marks (the engine's mid prices when the
execution is booked, so it adds up with :meth:`Ledger.apply` to the last rounding)::

    realized = expected - shortfall - slippage - extra_fees

- ``expected``: the plan's value at the marks (its profit, plus the dust its rounding leaves in
  intermediate assets);
- ``shortfall``: the planned value of what was not traded (legs that filled partly or not at all);
- ``slippage``: fills at prices worse than the plan's average price for that leg (negative when
  better); for unwind and hedge orders, which have no plan, the price paid against the mark;
- ``extra_fees``: fees beyond the plan's on the sizes that filled, plus every fee of unwind and hedge
  orders.

An opportunity whose legs all filled as planned has ``shortfall`` 0, so realized = expected -
slippage - extra fees.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from cryptoarb.model import Balance, Fill, Market, Opportunity, OrderResult, PlannedLeg, Side

ZERO = Decimal(0)
PLAN_LEG_LIMIT = 100
"""Orders with a ``leg_index`` at or above this are recovery orders (unwind 100+, hedge 200+)."""

Mark = Callable[[str, str], float | None]
"""USD per unit of (venue, asset); None when unknown (valued at 0, as :meth:`Ledger.apply` does)."""


class Ledger:
    def __init__(self, balances: Mapping[str, Mapping[str, Decimal | float]] | None = None) -> None:
        self._free: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for venue, assets in (balances or {}).items():
            for asset, amount in assets.items():
                self._free[(venue, asset)] = Decimal(repr(amount)) if isinstance(amount, float) else amount
        self.realized_pnl_usd = 0.0
        self.fees_usd = 0.0
        self.trades = 0

    def free(self, venue: str, asset: str) -> Decimal:
        return self._free.get((venue, asset), ZERO)

    def holdings(self) -> dict[tuple[str, str], Decimal]:
        """Every non-zero (venue, asset) amount."""
        return {k: v for k, v in self._free.items() if v}

    def set_balances(self, balances: Iterable[Balance]) -> None:
        """Replace the free amounts of the venues in ``balances`` with what the venue reports (a live
        account at start-up, or a periodic reconciliation). Venues not mentioned are kept."""
        balances = list(balances)
        venues = {b.venue for b in balances}
        for key in [k for k in self._free if k[0] in venues]:
            del self._free[key]
        for b in balances:
            self._free[(b.venue, b.asset)] = b.free

    def deltas(self, fills: Iterable[Fill],
               markets: Mapping[tuple[str, str], Market]) -> dict[tuple[str, str], Decimal]:
        """What ``fills`` change, per (venue, asset), fees included in the asset they are charged in."""
        out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for fill in fills:
            market = markets[(fill.venue, fill.symbol)]
            notional = fill.price * fill.size
            sign = 1 if fill.side is Side.BUY else -1
            out[(fill.venue, market.base)] += sign * fill.size
            out[(fill.venue, market.quote)] -= sign * notional
            out[(fill.venue, fill.fee_asset)] -= fill.fee
        return out

    def apply(self, fills: Iterable[Fill], markets: Mapping[tuple[str, str], Market],
              usd_price: Callable[[str, str], float | None]) -> float:
        """Book ``fills``; returns their value change in USD (the opportunity's realized PnL)."""
        fills = list(fills)
        realized = 0.0
        for (venue, asset), delta in self.deltas(fills, markets).items():
            self._free[(venue, asset)] += delta
            realized += float(delta) * (usd_price(venue, asset) or 0.0)
        for fill in fills:
            self.fees_usd += float(fill.fee) * (usd_price(fill.venue, fill.fee_asset) or 0.0)
        self.trades += len(fills)
        self.realized_pnl_usd += realized
        return realized

    def snapshot(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (venue, asset), amount in sorted(self._free.items()):
            if amount:
                out[venue][asset] = float(amount)
        return dict(out)


# ---------------------------------------------------------------------------------------------------
# plan versus fills


def planned_notional(leg: PlannedLeg, taker_fee: Decimal | None) -> Decimal:
    """The cost (BUY) or proceeds (SELL) the plan expects from ``leg``, before fees, in its quote.

    SELL: ``amount_out + fee``, exact. BUY with the fee in quote: ``fee / taker_fee``, exact. BUY with
    the fee taken from the base received (or no fee rate known): ``amount_in``, exact for a first leg,
    an upper bound otherwise (it includes the dust the leg cannot spend).
    """
    if leg.side is Side.SELL:
        return leg.amount_out + leg.fee
    if leg.fee_asset == leg.asset_in and taker_fee and leg.fee > 0:
        return leg.fee / taker_fee
    if leg.fee_asset == leg.asset_in and leg.fee == 0:
        return leg.amount_in
    return leg.amount_in


@dataclass(frozen=True, slots=True)
class LegOutcome:
    """One planned leg against its fills: sizes, the plan's average price and the fills' average."""

    leg_index: int
    venue: str
    symbol: str
    side: Side
    planned_size: Decimal
    filled_size: Decimal
    planned_price: Decimal
    avg_price: Decimal | None
    slippage_bps: float | None
    """(avg - planned) / planned for a BUY, the opposite for a SELL, in bps: positive is worse."""


@dataclass(frozen=True, slots=True)
class PnlAttribution:
    """``realized = expected - shortfall - slippage - extra_fees`` (USD, at one set of marks)."""

    expected_usd: float
    realized_usd: float
    shortfall_usd: float
    slippage_usd: float
    extra_fees_usd: float
    fees_usd: float
    recovery_usd: float
    """Value change of unwind and hedge orders (already inside slippage and extra fees)."""
    legs: tuple[LegOutcome, ...]
    fully_filled: bool

    @property
    def explained_usd(self) -> float:
        return self.expected_usd - self.shortfall_usd - self.slippage_usd - self.extra_fees_usd

    @property
    def unexplained_usd(self) -> float:
        return self.realized_usd - self.explained_usd


def _value(side: Side, size: float, notional: float, fee: float, m_base: float, m_quote: float,
           m_fee: float) -> float:
    if side is Side.BUY:
        return size * m_base - notional * m_quote - fee * m_fee
    return notional * m_quote - size * m_base - fee * m_fee


def attribute(opportunity: Opportunity, results: Sequence[OrderResult],
              markets: Mapping[tuple[str, str], Market], mark: Mark,
              notionals: Sequence[Decimal] | None = None) -> PnlAttribution:
    """Explain what ``results`` earned against ``opportunity``'s plan, in USD at ``mark``.

    ``notionals`` are the plan's per-leg costs/proceeds when known exactly (else
    :func:`planned_notional`). ``realized_usd`` is the value change of every fill at ``mark``: what
    :meth:`Ledger.apply` returns for the same fills and marks.
    """

    def m(venue: str, asset: str) -> float:
        return mark(venue, asset) or 0.0

    legs = opportunity.legs
    plan: list[tuple[PlannedLeg, Market | None, Decimal, float]] = []
    expected = 0.0
    for i, leg in enumerate(legs):
        market = markets.get((leg.venue, leg.symbol))
        notional = notionals[i] if notionals is not None else planned_notional(
            leg, market.taker_fee if market is not None else None)
        base, quote = (leg.asset_out, leg.asset_in) if leg.side is Side.BUY else (leg.asset_in, leg.asset_out)
        value = _value(leg.side, float(leg.size), float(notional), float(leg.fee), m(leg.venue, base),
                       m(leg.venue, quote), m(leg.venue, leg.fee_asset)) if leg.fee_asset else \
            _value(leg.side, float(leg.size), float(notional), 0.0, m(leg.venue, base), m(leg.venue, quote), 0.0)
        plan.append((leg, market, notional, value))
        expected += value

    filled = [ZERO] * len(legs)
    cost = [ZERO] * len(legs)
    realized = slippage = extra_fees = fees = recovery = captured = 0.0
    for result in results:
        for fill in result.fills:
            market = markets.get((fill.venue, fill.symbol))
            if market is not None:
                base, quote = market.base, market.quote
            else:
                base, _, quote = fill.symbol.partition("-")
            m_base, m_quote, m_fee = m(fill.venue, base), m(fill.venue, quote), m(fill.venue, fill.fee_asset)
            size, price, fee = float(fill.size), float(fill.price), float(fill.fee)
            value = _value(fill.side, size, price * size, fee, m_base, m_quote, m_fee)
            realized += value
            fees += fee * m_fee
            i = fill.leg_index
            if i < PLAN_LEG_LIMIT and i < len(legs) and legs[i].size > 0:
                leg, _, notional, leg_value = plan[i]
                share = size / float(leg.size)
                planned_price = float(notional) / float(leg.size)
                slip = (price - planned_price) * size * m_quote
                slippage += slip if fill.side is Side.BUY else -slip
                planned_fee = float(leg.fee) * share * (m(leg.venue, leg.fee_asset) if leg.fee_asset else 0.0)
                extra_fees += fee * m_fee - planned_fee
                captured += leg_value * share
                filled[i] += fill.size
                cost[i] += fill.price * fill.size
            else:
                recovery += value
                extra_fees += fee * m_fee
                slippage += -(value + fee * m_fee)
    outcomes = []
    for i, (leg, _, notional, _) in enumerate(plan):
        planned_price = notional / leg.size if leg.size else ZERO
        avg = cost[i] / filled[i] if filled[i] else None
        bps = None
        if avg is not None and planned_price:
            diff = float((avg - planned_price) / planned_price) * 10_000
            bps = diff if leg.side is Side.BUY else -diff
        outcomes.append(LegOutcome(i, leg.venue, leg.symbol, leg.side, leg.size, filled[i], planned_price, avg,
                                   bps))
    full = all(o.filled_size == o.planned_size for o in outcomes)
    return PnlAttribution(
        expected_usd=expected, realized_usd=realized, shortfall_usd=expected - captured, slippage_usd=slippage,
        extra_fees_usd=extra_fees, fees_usd=fees, recovery_usd=recovery, legs=tuple(outcomes),
        fully_filled=full)


def book_fingerprint(levels: Iterable[tuple[str, str, int, Sequence[tuple[float, float]]]]) -> str:
    """A short stable digest of the books a plan used: (venue, symbol, sequence, levels walked) each."""
    h = hashlib.blake2b(digest_size=8)
    for venue, symbol, sequence, side in levels:
        h.update(f"{venue}|{symbol}|{sequence}|".encode())
        h.update(repr(tuple(side)).encode())
        h.update(b";")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# the opportunity ledger


@dataclass(slots=True)
class OpportunityRecord:
    """One detected opportunity: its plan, the books it was computed on, and how it ended."""

    opportunity: Opportunity
    fingerprint: str
    notionals: tuple[Decimal, ...]
    status: str = "detected"
    """detected (in flight), executed (something filled), missed (nothing filled), refused (no order)."""
    refused_reason: str = ""
    attribution: PnlAttribution | None = None
    realized_usd: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    """Per stage: receive, detect, risk (engine), send, ack, fill (executor)."""
    mode: str = "paper"


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    detected: int
    executed: int
    missed: int
    refused: int
    in_flight: int
    expected_usd: float
    realized_usd: float
    slippage_usd: float
    extra_fees_usd: float
    shortfall_usd: float
    fees_usd: float

    @property
    def capture_rate(self) -> float:
        done = self.executed + self.missed + self.refused
        return self.executed / done if done else 0.0


class OpportunityLedger:
    """Every detected opportunity with its plan and book fingerprint; executed ones with realized PnL,
    slippage against the plan, fees and latency per stage. Keeps the last ``max_records``; totals
    cover everything since start."""

    def __init__(self, max_records: int = 10_000) -> None:
        self.max_records = max_records
        self._records: dict[str, OpportunityRecord] = {}
        self._counts: dict[str, int] = defaultdict(int)
        self._totals: dict[str, float] = defaultdict(float)

    def detected(self, opportunity: Opportunity, fingerprint: str, notionals: Sequence[Decimal],
                 latency_ms: Mapping[str, float] | None = None, mode: str = "paper") -> OpportunityRecord:
        record = OpportunityRecord(opportunity, fingerprint, tuple(notionals), latency_ms=dict(latency_ms or {}),
                                   mode=mode)
        self._records[opportunity.id] = record
        self._counts["detected"] += 1
        while len(self._records) > self.max_records:
            oldest = next(iter(self._records))
            del self._records[oldest]
        return record

    def get(self, opportunity_id: str) -> OpportunityRecord | None:
        return self._records.get(opportunity_id)

    def executed(self, opportunity_id: str, attribution: PnlAttribution, realized_usd: float,
                 latency_ms: Mapping[str, float] | None = None) -> OpportunityRecord | None:
        record = self._records.get(opportunity_id)
        filled = any(leg.filled_size > 0 for leg in attribution.legs)
        self._counts["executed" if filled else "missed"] += 1
        totals = self._totals
        totals["expected"] += attribution.expected_usd
        totals["realized"] += realized_usd
        totals["slippage"] += attribution.slippage_usd
        totals["extra_fees"] += attribution.extra_fees_usd
        totals["shortfall"] += attribution.shortfall_usd
        totals["fees"] += attribution.fees_usd
        if record is not None:
            record.status = "executed" if filled else "missed"
            record.attribution = attribution
            record.realized_usd = realized_usd
            record.latency_ms.update(latency_ms or {})
        return record

    def refused(self, opportunity_id: str, reason: str, latency_ms: Mapping[str, float] | None = None) -> None:
        self._counts["refused"] += 1
        record = self._records.get(opportunity_id)
        if record is not None:
            record.status = "refused"
            record.refused_reason = reason
            record.latency_ms.update(latency_ms or {})

    def records(self) -> list[OpportunityRecord]:
        return list(self._records.values())

    def summary(self) -> LedgerSummary:
        c, t = self._counts, self._totals
        done = c["executed"] + c["missed"] + c["refused"]
        return LedgerSummary(
            detected=c["detected"], executed=c["executed"], missed=c["missed"], refused=c["refused"],
            in_flight=max(c["detected"] - done, 0), expected_usd=t["expected"], realized_usd=t["realized"],
            slippage_usd=t["slippage"], extra_fees_usd=t["extra_fees"], shortfall_usd=t["shortfall"],
            fees_usd=t["fees"])
