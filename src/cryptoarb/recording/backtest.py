"""``backtest``: the real engine (detector, sizing, risk, paper executor) over a recording.

Deterministic: the replay runs as fast as possible on the recorded clock, nothing reads the wall clock
or a random source, so the same recording and settings give the same result, down to its digest.
Slippage compares what each executed plan expected (sized on the books at detection) with what it
realized (filled ``latency`` later on the books as they were by then).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cryptoarb.config import Settings
from cryptoarb.execution.paper import UNWIND_LEG_BASE
from cryptoarb.model import Event, Execution, Opportunity, OrderStatus, Rejection
from cryptoarb.recording.pipeline import build_engine, drive
from cryptoarb.recording.replay import Recording, ReplayVenue

OUTCOMES = ("captured", "partial", "missed")


@dataclass(slots=True)
class Series:
    """What the charts plot, collected from the engine's events as they are published."""

    opportunities: list[tuple[float, float]] = field(default_factory=list)  # (at, net bps)
    rejections: list[tuple[float, float]] = field(default_factory=list)
    executions: list[tuple[float, str, float, float, float]] = field(default_factory=list)
    # (at, outcome, expected USD, realized USD, slippage bps)

    def publish(self, event: Event) -> None:
        if isinstance(event, Opportunity):
            self.opportunities.append((event.detected_at, event.net_return_bps))
        elif isinstance(event, Rejection):
            self.rejections.append((event.at, event.net_return_bps))
        elif isinstance(event, Execution):
            self.executions.append((event.at, outcome(event), event.opportunity.profit_usd,
                                    event.realized_profit_usd, slippage_bps(event)))


def outcome(ex: Execution) -> str:
    """``captured``: every planned leg filled in full; ``partial``: some fills; ``missed``: none."""
    legs = [r for r in ex.results if r.order.leg_index < UNWIND_LEG_BASE]
    if len(legs) == len(ex.opportunity.legs) and all(r.status is OrderStatus.FILLED for r in legs):
        return "captured"
    return "partial" if any(r.fills for r in ex.results) else "missed"


def slippage_bps(ex: Execution) -> float:
    """Expected minus realized return on the plan's input, in basis points of the start asset."""
    spent = ex.opportunity.input
    if spent <= 0:
        return 0.0
    return float((ex.opportunity.profit - ex.realized_profit) / spent * Decimal(10_000))


@dataclass(frozen=True, slots=True)
class BacktestResult:
    source: str
    complete: bool
    updates: int
    batches: int
    recorded_s: float
    opportunities: int
    executed: int
    captured: int
    partial: int
    missed: int
    rejected_by_reason: dict[str, int]
    trades: int
    expected_pnl_usd: float
    realized_pnl_usd: float
    fees_usd: float
    slippage_usd: float
    slippage_bps_mean: float
    slippage_bps_worst: float
    balances: dict[str, dict[str, float]]
    digest: str = ""
    charts: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    def deterministic(self) -> dict[str, Any]:
        """Everything that must repeat exactly for the same input (no paths, no wall time)."""
        data = asdict(self)
        for key in ("digest", "charts", "wall_s", "source"):
            data.pop(key)
        return data

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


async def run_backtest(settings: Settings, recording: Recording, *,
                       out_dir: Path | None = None) -> BacktestResult:
    """Replay ``recording`` as fast as possible through a paper-trading engine; PNG charts into
    ``out_dir`` when given."""
    wall_start = time.monotonic()
    series = Series()
    venue = ReplayVenue(recording, speed=0.0, track_books=False)
    engine = build_engine(settings, venue, series.publish)
    first: list[float] = []
    await drive(engine, venue, on_step=lambda now: first or first.append(now))
    await venue.close()
    counts = {name: 0 for name in OUTCOMES}
    for _, kind, *_ in series.executions:
        counts[kind] += 1
    expected = sum(e[2] for e in series.executions)
    realized = sum(e[3] for e in series.executions)
    slips = [e[4] for e in series.executions]
    result = BacktestResult(
        source=str(recording.path), complete=bool(recording.complete), updates=engine.counters.updates,
        batches=venue.batches, recorded_s=round(max(venue.now() - (first[0] if first else 0.0), 0.0), 6),
        opportunities=engine.counters.detected, executed=counts["captured"] + counts["partial"],
        captured=counts["captured"], partial=counts["partial"], missed=counts["missed"],
        rejected_by_reason=dict(sorted(engine.counters.rejected.items())), trades=engine.ledger.trades,
        expected_pnl_usd=round(expected, 6), realized_pnl_usd=round(realized, 6),
        fees_usd=round(engine.ledger.fees_usd, 6), slippage_usd=round(expected - realized, 6),
        slippage_bps_mean=round(sum(slips) / len(slips), 4) if slips else 0.0,
        slippage_bps_worst=round(max(slips), 4) if slips else 0.0,
        balances=engine.ledger.snapshot())
    charts = render_charts(series, out_dir, settings.detector.min_return_bps) if out_dir is not None else {}
    return _finish(result, charts, time.monotonic() - wall_start)


def _finish(result: BacktestResult, charts: dict[str, str], wall_s: float) -> BacktestResult:
    data = result.as_dict()
    data.update(digest=_digest(result.deterministic()), charts=charts, wall_s=round(wall_s, 3))
    return BacktestResult(**data)


def render_charts(series: Series, out_dir: Path, threshold_bps: float) -> dict[str, str]:
    """``spread.png`` (the net return of every cycle the detector flagged, over time) and ``pnl.png``
    (cumulative expected and realized PnL); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spread, pnl = out_dir / "spread.png", out_dir / "pnl.png"
    _save(_spread_figure(series, threshold_bps), spread)
    _save(_pnl_figure(series), pnl)
    return {"spread": str(spread), "pnl": str(pnl)}


def _figure(title: str, ylabel: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=(9, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("recorded time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _spread_figure(series: Series, threshold_bps: float) -> Figure:
    fig, ax = _figure("Cycle spread: net top-of-book return of flagged cycles", "bps")
    if series.rejections:
        ax.scatter(*zip(*series.rejections, strict=True), s=6, color="0.7", label="rejected")
    if series.opportunities:
        ax.scatter(*zip(*series.opportunities, strict=True), s=14, color="tab:blue", label="sent")
    ax.axhline(threshold_bps, color="tab:red", linewidth=0.8, linestyle="--", label="threshold")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _pnl_figure(series: Series) -> Figure:
    fig, ax = _figure("PnL over time", "USD")
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    ordered = sorted(series.executions, key=lambda e: e[0])
    if ordered:
        times = [e[0] for e in ordered]
        ax.step(times, list(accumulate(e[2] for e in ordered)), where="post", linestyle="--",
                color="tab:blue", label="expected")
        ax.step(times, list(accumulate(e[3] for e in ordered)), where="post", color="0.15", label="realized")
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no executions", ha="center", va="center", transform=ax.transAxes)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png", metadata={"Software": None})
