"""A point-in-time snapshot of the engine, shared by the terminal view, notifiers and the demo summary."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BestOpportunity:
    path: tuple[str, ...]
    venue: str
    net_return_bps: float
    profit_usd: float | None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    mode: str
    venues: tuple[str, ...]
    uptime_s: float
    updates: int
    updates_per_s: float
    books_tradeable: int
    books_total: int
    opportunities_detected: int
    opportunities_executed: int
    rejected_by_reason: dict[str, int]
    trades: int
    realized_pnl_usd: float
    loop_lag_ms_p50: float
    loop_lag_ms_p99: float
    loop_lag_ms_max: float
    db_path: str
    best: tuple[BestOpportunity, ...] = ()
    balances: dict[str, dict[str, float]] = field(default_factory=dict)
