"""The risk gate: which opportunities may trade now. Pure; the engine passes the time in."""

from __future__ import annotations

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


@dataclass(slots=True)
class RiskGate:
    limits: RiskLimits
    in_flight: set[str] = field(default_factory=set)
    paused: set[MarketKey] = field(default_factory=set)
    cooldown_until: dict[MarketKey, float] = field(default_factory=dict)
    killed_reason: str | None = None
    _day: int = -1
    _day_pnl_usd: float = 0.0

    @property
    def killed(self) -> bool:
        return self.killed_reason is not None

    def kill(self, reason: str) -> None:
        """Stop every new order at once; only :meth:`reset_kill` lets trading resume."""
        if self.killed_reason is None:
            self.killed_reason = reason

    def reset_kill(self) -> None:
        self.killed_reason = None

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
        for leg in cycle.legs:
            key = leg.market.key
            if key in self.paused:
                return RejectReason.PAUSED
            if self.cooldown_until.get(key, 0.0) > now:
                return RejectReason.COOLDOWN
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

    def finished(self, opportunity_id: str, realized_usd: float, failed_markets: list[MarketKey],
                 now: float) -> None:
        self.in_flight.discard(opportunity_id)
        for key in failed_markets:
            self.cooldown_until[key] = now + self.limits.cooldown_s
        day = int(now // DAY_S)
        if day != self._day:
            self._day, self._day_pnl_usd = day, 0.0
        self._day_pnl_usd += realized_usd
        if self._day_pnl_usd <= -self.limits.daily_loss_limit_usd:
            self.kill(f"daily loss limit: {self._day_pnl_usd:.2f} USD today")
