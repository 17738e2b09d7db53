"""The risk gate: which opportunities may trade now. Pure; the engine passes the time in.

Limits: a minimum profit, a maximum notional per opportunity (:meth:`RiskGate.max_input` caps the
sizing), a maximum of concurrent opportunities, a per-market cooldown after a failed leg, and a kill
switch. The kill switch stops every new order at once (the engine checks it before each opportunity
and again before its first order is sent); it is engaged by hand (:meth:`RiskGate.kill`) or
automatically by

- the daily loss limit (realized PnL of the current UTC day),
- drawdown: realized PnL this far below its running peak,
- the error rate: this share of the last ``error_window`` order requests failed (exceptions,
  timeouts, rate limits, unresolved orders; an IOC order that simply found no liquidity is no error),
- stale data: a venue whose market data stream has been silent for ``stale_data_s``.

Only :meth:`RiskGate.reset_kill` lets trading resume.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from cryptoarb.model import Cycle, MarketKey, Opportunity, RejectReason

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RiskLimits:
    min_profit_usd: float = 0.01
    max_notional_usd: float = 2_000.0
    max_concurrent: int = 2
    cooldown_s: float = 5.0
    daily_loss_limit_usd: float = 100.0
    max_drawdown_usd: float = 250.0
    max_error_rate: float = 0.5
    error_window: int = 20
    error_min_requests: int = 6
    stale_data_s: float = 30.0
    """0 disables the stale-data kill."""


@dataclass(slots=True)
class RiskGate:
    limits: RiskLimits
    in_flight: set[str] = field(default_factory=set)
    paused: set[MarketKey] = field(default_factory=set)
    cooldown_until: dict[MarketKey, float] = field(default_factory=dict)
    killed_reason: str | None = None
    killed_at: float | None = None
    _day: int = -1
    _day_pnl_usd: float = 0.0
    pnl_usd: float = 0.0
    peak_pnl_usd: float = 0.0
    _requests: deque[bool] = field(default_factory=deque)
    last_data_at: dict[str, float] = field(default_factory=dict)

    @property
    def killed(self) -> bool:
        return self.killed_reason is not None

    def kill(self, reason: str, now: float | None = None) -> None:
        """Stop every new order at once; only :meth:`reset_kill` lets trading resume."""
        if self.killed_reason is None:
            self.killed_reason = reason
            self.killed_at = now

    def reset_kill(self) -> None:
        """Resume trading. The error window and the drawdown peak start afresh, so the same history
        cannot trip the switch again at once."""
        self.killed_reason = None
        self.killed_at = None
        self._requests.clear()
        self.peak_pnl_usd = self.pnl_usd

    def max_input(self, usd_per_start_unit: float) -> Decimal:
        """The notional cap expressed in units of the cycle's start asset."""
        if usd_per_start_unit <= 0:
            return Decimal(0)
        return Decimal(repr(self.limits.max_notional_usd / usd_per_start_unit))

    def pre_check(self, cycle: Cycle, now: float) -> RejectReason | None:
        """Cheap checks made before sizing a candidate."""
        if self.killed:
            return RejectReason.KILL_SWITCH
        if len(self.in_flight) >= self.limits.max_concurrent:
            return RejectReason.MAX_CONCURRENT
        if self.paused_market(leg.market.key for leg in cycle.legs) is not None:
            return RejectReason.PAUSED
        for leg in cycle.legs:
            if self.cooldown_until.get(leg.market.key, 0.0) > now:
                return RejectReason.COOLDOWN
        return None

    def paused_market(self, keys: Iterable[MarketKey]) -> MarketKey | None:
        """The first of ``keys`` that is paused, if any."""
        if self.paused:
            for key in keys:
                if key in self.paused:
                    return key
        return None

    def check(self, opportunity: Opportunity) -> RejectReason | None:
        """Checks made on the sized plan."""
        if self.killed:
            return RejectReason.KILL_SWITCH
        if opportunity.profit_usd < self.limits.min_profit_usd:
            return RejectReason.BELOW_MIN_PROFIT
        return None

    def started(self, opportunity_id: str) -> None:
        self.in_flight.add(opportunity_id)

    def resume_day(self, now: float, realized_usd_today: float) -> None:
        """Count what earlier runs realized today (UTC) towards the daily loss limit, so a restart does not
        reset it; a limit already reached kills at once."""
        self._day, self._day_pnl_usd = int(now // DAY_S), realized_usd_today
        if self._day_pnl_usd <= -self.limits.daily_loss_limit_usd:
            self.kill(f"daily loss limit: {self._day_pnl_usd:.2f} USD today (earlier runs included)", now)

    def finished(self, opportunity_id: str, realized_usd: float, failed_markets: list[MarketKey],
                 now: float) -> None:
        self.in_flight.discard(opportunity_id)
        for key in failed_markets:
            self.cooldown_until[key] = now + self.limits.cooldown_s
        day = int(now // DAY_S)
        if day != self._day:
            self._day, self._day_pnl_usd = day, 0.0
        self._day_pnl_usd += realized_usd
        self.pnl_usd += realized_usd
        self.peak_pnl_usd = max(self.peak_pnl_usd, self.pnl_usd)
        if self._day_pnl_usd <= -self.limits.daily_loss_limit_usd:
            self.kill(f"daily loss limit: {self._day_pnl_usd:.2f} USD today", now)
        drawdown = self.peak_pnl_usd - self.pnl_usd
        if drawdown >= self.limits.max_drawdown_usd:
            self.kill(f"drawdown: {drawdown:.2f} USD below the peak of {self.peak_pnl_usd:.2f} USD", now)

    # -- automatic kill inputs -------------------------------------------------------------------------
    def record_requests(self, ok: int, failed: int, now: float) -> None:
        """Count order requests that got an answer (``ok``) and that failed (``failed``: exceptions,
        timeouts, rate limits, unresolved orders); trips the kill switch on too high an error rate."""
        window = self._requests
        for flag in (True,) * ok + (False,) * failed:
            window.append(flag)
            if len(window) > self.limits.error_window:
                window.popleft()
        errors = len(window) - sum(window)
        if failed and len(window) >= self.limits.error_min_requests and \
                errors / len(window) >= self.limits.max_error_rate:
            self.kill(f"error rate: {errors} of the last {len(window)} order requests failed", now)

    @property
    def error_rate(self) -> float:
        window = self._requests
        return (len(window) - sum(window)) / len(window) if window else 0.0

    def data_seen(self, venue: str, now: float) -> None:
        """``venue``'s market data stream delivered something at ``now``."""
        self.last_data_at[venue] = now

    def check_stale(self, now: float) -> str | None:
        """Trip the kill switch when a venue's data has been silent too long; returns the reason if so."""
        limit = self.limits.stale_data_s
        if limit <= 0 or self.killed:
            return None
        for venue, at in self.last_data_at.items():
            if now - at > limit:
                reason = f"stale data: no market data from {venue} for {now - at:.1f} s"
                self.kill(reason, now)
                return reason
        return None
