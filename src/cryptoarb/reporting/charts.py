"""PNG charts of a :class:`~cryptoarb.reporting.report.Report`.

matplotlib's object API on the Agg canvas only (never ``pyplot``): no global state, no GUI backend, safe
in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from cryptoarb.reporting.report import Report

CHARTS = ("pnl", "expected_vs_realized", "attribution", "slippage", "rejects", "latency")


def _figure(title: str, width_in: float = 8.0, height_in: float = 4.5) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def pnl_figure(report: Report) -> Figure:
    fig, ax = _figure("Cumulative PnL: expected (plan) vs realized (USD)")
    rows = sorted(report.executions, key=lambda r: r.at)
    if not rows:
        _empty(ax, "no executions")
        return fig
    xs = [r.at for r in rows]
    ax.step(xs, list(accumulate(r.expected_usd for r in rows)), where="post", label="expected", color="tab:blue")
    ax.step(xs, list(accumulate(r.realized_usd for r in rows)), where="post", label="realized", color="tab:green")
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("USD")
    ax.legend(loc="best")
    return fig


def expected_vs_realized_figure(report: Report) -> Figure:
    fig, ax = _figure("Expected vs realized PnL per execution (USD)", 6.0, 6.0)
    rows = report.executions
    if not rows:
        _empty(ax, "no executions")
        return fig
    colors = {"captured": "tab:green", "partial": "tab:orange", "missed": "tab:red"}
    for outcome, color in colors.items():
        pts = [(r.expected_usd, r.realized_usd) for r in rows if r.outcome == outcome]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=color, label=f"{outcome} ({len(pts)})")
    lo = min(min(r.expected_usd, r.realized_usd) for r in rows)
    hi = max(max(r.expected_usd, r.realized_usd) for r in rows)
    ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=0.8, linestyle="--", label="realized = expected")
    ax.axhline(0.0, color="0.7", linewidth=0.6)
    ax.set_xlabel("expected (USD)")
    ax.set_ylabel("realized (USD)")
    ax.legend(loc="best", fontsize=8)
    return fig


def attribution_figure(report: Report) -> Figure:
    fig, ax = _figure("Where expected PnL went (USD, all executions)")
    parts = [("expected", report.expected_executed_usd), ("shortfall", -report.shortfall_usd),
             ("slippage", -report.slippage_usd), ("extra fees", -report.extra_fees_usd),
             ("mark drift", report.mark_drift_usd)]
    level = 0.0
    for i, (_, value) in enumerate(parts):
        bottom = 0.0 if i == 0 else level
        ax.bar(i, value, bottom=bottom, color="tab:blue" if i == 0 else ("tab:green" if value >= 0 else "tab:red"))
        level = value if i == 0 else level + value
    ax.bar(len(parts), report.realized_usd, color="tab:gray")
    ax.set_xticks(range(len(parts) + 1), [p[0] for p in parts] + ["realized"])
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    ax.set_ylabel("USD")
    return fig


def slippage_figure(report: Report) -> Figure:
    fig, ax = _figure("Slippage per leg vs plan (bps, positive = worse)")
    values: Sequence[float] = report.leg_slippage_bps
    if not values:
        _empty(ax, "no filled legs")
        return fig
    ax.hist(values, bins=min(40, max(5, len(values) // 2)), color="tab:purple", alpha=0.8)
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlabel("bps")
    ax.set_ylabel("legs")
    return fig


def rejects_figure(report: Report) -> Figure:
    items = list(report.rejects.items())[:15]
    fig, ax = _figure("Rejects by reason", 8.0, max(3.0, 0.35 * len(items) + 1.5))
    if not items:
        _empty(ax, "no rejects")
        return fig
    names = [k for k, _ in items][::-1]
    counts = [v for _, v in items][::-1]
    ax.barh(names, counts, color="tab:red", alpha=0.8)
    ax.set_xlabel("count")
    return fig


def latency_figure(report: Report) -> Figure:
    fig, ax = _figure("Latency percentiles per stage (ms)")
    stages = list(report.latency_ms)
    if not stages:
        _empty(ax, "no latency data")
        return fig
    width = 0.25
    for j, q in enumerate(("p50", "p90", "p99")):
        ax.bar([i + (j - 1) * width for i in range(len(stages))], [report.latency_ms[s][q] for s in stages],
               width=width, label=q)
    ax.set_xticks(range(len(stages)), [s.replace("_", " ") for s in stages])
    ax.set_ylabel("ms")
    ax.legend(loc="best")
    return fig


FIGURES = {"pnl": pnl_figure, "expected_vs_realized": expected_vs_realized_figure,
           "attribution": attribution_figure, "slippage": slippage_figure, "rejects": rejects_figure,
           "latency": latency_figure}


def render_charts(report: Report, out_dir: Path) -> dict[str, str]:
    """Write every chart as ``<out_dir>/<name>.png``; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, build in FIGURES.items():
        path = out_dir / f"{name}.png"
        build(report).savefig(path, format="png")
        written[name] = str(path)
    return written
