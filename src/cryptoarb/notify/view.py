"""``StatusView``: the live terminal view of the engine, or a plain status line when piped.

It only reads :class:`EngineStatus` snapshots through ``get_status``; it never touches the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cryptoarb.notify.console import usd
from cryptoarb.status import EngineStatus

log = logging.getLogger("cryptoarb.notify")

MAX_BEST_ROWS = 10
MAX_BALANCE_ROWS = 16


def duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def rejections_text(by_reason: dict[str, int]) -> str:
    total = sum(by_reason.values())
    if not total:
        return "0"
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{total:,} ({reasons})"


def _amount(value: float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".") if value else "0"


class StatusView:
    def __init__(self, get_status: Callable[[], EngineStatus], console: Console | None = None,
                 interval_s: float = 0.5, plain_interval_s: float = 5.0) -> None:
        self.get_status = get_status
        self.console = console if console is not None else Console(stderr=True)
        self.interval_s = interval_s
        self.plain_interval_s = plain_interval_s
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Show the status until :meth:`stop` (or cancellation)."""
        if self.console.is_terminal:
            await self._run_live()
        else:
            await self._run_plain()

    async def _run_live(self) -> None:
        # auto_refresh off: rendering happens here, on the loop, never in rich's refresh thread.
        # stdout is not redirected so --json output stays on stdout.
        with Live(self._render_safe(), console=self.console, auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=True) as live:
            live.refresh()
            while not await self._wait(self.interval_s):
                live.update(self._render_safe(), refresh=True)
            live.update(self._render_safe(), refresh=True)

    async def _run_plain(self) -> None:
        while not await self._wait(self.plain_interval_s):
            status = self._status()
            if status is not None:
                self.console.print(self.plain_line(status), markup=False, highlight=False, soft_wrap=True)

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until stopped; True when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    def _status(self) -> EngineStatus | None:
        try:
            return self.get_status()
        except Exception:
            log.exception("status snapshot failed")
            return None

    def _render_safe(self) -> RenderableType:
        status = self._status()
        return self.render(status) if status is not None else Text("status unavailable", style="red")

    def plain_line(self, s: EngineStatus) -> str:
        best = f" | best {s.best[0].net_return_bps:.1f} bps" if s.best else ""
        return (
            f"{s.mode} {','.join(s.venues)} | up {duration(s.uptime_s)} "
            f"| updates {s.updates:,} ({s.updates_per_s:,.0f}/s) "
            f"| books {s.books_tradeable}/{s.books_total} "
            f"| opportunities {s.opportunities_detected:,} detected, {s.opportunities_executed:,} executed "
            f"| rejected {rejections_text(s.rejected_by_reason)} "
            f"| trades {s.trades:,} | pnl {usd(s.realized_pnl_usd)} "
            f"| lag ms p50 {s.loop_lag_ms_p50:.1f} p99 {s.loop_lag_ms_p99:.1f} max {s.loop_lag_ms_max:.1f}"
            f"{best}"
        )

    def render(self, s: EngineStatus) -> RenderableType:
        return Group(self._summary(s), self._tables(s))

    def _summary(self, s: EngineStatus) -> Panel:
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        mode_style = "bold red" if s.mode == "live" else "bold cyan"
        pnl_style = "green" if s.realized_pnl_usd >= 0 else "red"
        grid.add_row("mode", Text(s.mode.upper(), style=mode_style), "venues", ", ".join(s.venues))
        grid.add_row("uptime", duration(s.uptime_s), "db", s.db_path)
        grid.add_row("updates", f"{s.updates:,} ({s.updates_per_s:,.0f}/s)",
                     "books tradeable", f"{s.books_tradeable:,}/{s.books_total:,}")
        grid.add_row("opportunities", f"{s.opportunities_detected:,} detected / "
                     f"{s.opportunities_executed:,} executed",
                     "trades", f"{s.trades:,}")
        grid.add_row("realized PnL", Text(usd(s.realized_pnl_usd), style=pnl_style),
                     "loop lag ms", f"p50 {s.loop_lag_ms_p50:.1f}  p99 {s.loop_lag_ms_p99:.1f}  "
                     f"max {s.loop_lag_ms_max:.1f}")
        grid.add_row("rejected", rejections_text(s.rejected_by_reason), "", "")
        return Panel(grid, title="cryptoarb", title_align="left")

    def _tables(self, s: EngineStatus) -> Table:
        best = Table(title="best opportunities", title_justify="left", expand=False)
        best.add_column("path")
        best.add_column("venue")
        best.add_column("bps", justify="right")
        best.add_column("profit USD", justify="right")
        for b in s.best[:MAX_BEST_ROWS]:
            best.add_row(">".join(b.path), b.venue, f"{b.net_return_bps:.1f}",
                         usd(b.profit_usd) if b.profit_usd is not None else "-")
        if not s.best:
            best.add_row("none yet", "", "", "")

        balances = Table(title="balances", title_justify="left", expand=False)
        balances.add_column("venue")
        balances.add_column("asset")
        balances.add_column("amount", justify="right")
        rows = [(v, a, amt) for v, assets in sorted(s.balances.items()) for a, amt in sorted(assets.items())]
        for venue, asset, amount in rows[:MAX_BALANCE_ROWS]:
            balances.add_row(venue, asset, _amount(amount))
        if len(rows) > MAX_BALANCE_ROWS:
            balances.add_row("", f"+{len(rows) - MAX_BALANCE_ROWS} more", "")

        side_by_side = Table.grid(padding=(0, 2))
        side_by_side.add_row(best, balances)
        return side_by_side
