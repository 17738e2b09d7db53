"""PNG charts for reports (the Discord daily summary).

Uses matplotlib's object API on the Agg canvas, never ``pyplot``: no global figure state, no GUI
backend, safe to render in a worker thread (``asyncio.to_thread``) so the event loop never waits on it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

EPOCH_2001 = 1e9
"""Times above this are Unix timestamps; below, seconds of a simulated or replayed clock."""


def pnl_chart_png(points: Sequence[tuple[float, float]], *, title: str = "Realized PnL (USD)",
                  width_in: float = 8.0, height_in: float = 4.0, dpi: int = 100) -> bytes:
    """Cumulative realized PnL over time as PNG bytes.

    ``points`` are ``(time, realized USD of one execution)`` in any order; the chart plots their
    running sum as a step line, green above zero and red below.
    """
    ordered = sorted(points)
    times = [t for t, _ in ordered]
    cumulative = list(accumulate(v for _, v in ordered))
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel("USD")
    ax.grid(True, alpha=0.3)
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    if not ordered:
        ax.text(0.5, 0.5, "no trades in this period", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    else:
        xs: Sequence[float] | list[datetime] = times
        if times[0] > EPOCH_2001:
            xs = [datetime.fromtimestamp(t, UTC) for t in times]
            locator = AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            ax.set_xlabel("UTC")
        else:
            ax.set_xlabel("seconds")
        ax.step(xs, cumulative, where="post", color="0.2", linewidth=1.5)
        # Fill on the step's own corners, so a sign change splits exactly at the step.
        fx = [x for i, x in enumerate(xs) for x in ((x,) if i == 0 else (x, x))]
        fy = [y for i, y in enumerate(cumulative) for y in ((y,) if i == 0 else (cumulative[i - 1], y))]
        ax.fill_between(fx, fy, 0.0, where=[y >= 0 for y in fy], color="tab:green", alpha=0.3)
        ax.fill_between(fx, fy, 0.0, where=[y <= 0 for y in fy], color="tab:red", alpha=0.3)
        ax.annotate(f"{cumulative[-1]:+,.2f}", (xs[-1], cumulative[-1]), textcoords="offset points",
                    xytext=(-4, 4), ha="right", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
