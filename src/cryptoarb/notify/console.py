"""``ConsoleNotifier``: one line per execution and notice, bursts of market noise summarised.

Opportunities and rejections arrive by the hundred per second; they are counted and summarised in at
most one line per ``summary_interval_s``. Output goes to a rich ``Console`` on stderr (stdout stays
clean for ``--json``), or to a ``logging.Logger`` when one is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from rich.console import Console
from rich.text import Text

from cryptoarb.model import Event, Execution, Notice, Opportunity, OrderStatus, Rejection

_FAILED = (OrderStatus.REJECTED, OrderStatus.CANCELED)


def quiet_on_broken_pipe(console: Console) -> Console:
    """``console``, made to stop printing when its reader goes away (``cmd 2>&1 | head -1``).

    rich answers a closed pipe by pointing stdout at /dev/null and raising ``SystemExit`` from whatever
    printed: a notifier's task, a log call inside the engine. asyncio lets that out of the event loop at
    once, past every ``finally`` that would have flushed the store and closed its worker thread, which then
    holds the process forever. A run whose console is gone goes on, silently, to its clean end instead.
    """
    console.on_broken_pipe = lambda: setattr(console, "quiet", True)  # type: ignore[method-assign]
    return console


def usd(value: float) -> str:
    """Signed dollars: ``+$1.23``, ``-$0.50``."""
    return f"{'-' if value < 0 else '+'}${abs(value):,.2f}"


def execution_line(ex: Execution) -> str:
    opp = ex.opportunity
    if not any(r.fills for r in ex.results):  # counted as gone_before_fill, not as executed
        why = next((r.reason for r in ex.results if r.reason), "") or "no fill"
        return f"gone before fill ({ex.mode}) {opp.kind} {'>'.join(opp.path)}: nothing filled ({why}) [{opp.id}]"
    statuses = Counter(r.status for r in ex.results)
    legs = f"{statuses[OrderStatus.FILLED]}/{len(ex.results)} legs filled"
    if statuses[OrderStatus.PARTIAL]:
        legs += f", {statuses[OrderStatus.PARTIAL]} partial"
    failed = [r for r in ex.results if r.status in _FAILED and not r.fills]
    if failed:
        legs += f", {len(failed)} failed ({failed[0].reason or failed[0].status.value})"
    return (f"executed ({ex.mode}) {opp.kind} {'>'.join(opp.path)}: "
            f"{ex.realized_profit:+f} {opp.start_asset} ({usd(ex.realized_profit_usd)}), "
            f"fees ${ex.fees_usd:,.2f}, {legs} [{opp.id}]")


def notice_line(notice: Notice) -> str:
    fields = " ".join(f"{k}={v}" for k, v in notice.fields.items())
    return f"[{notice.kind}] {notice.message}" + (f" ({fields})" if fields else "")


def summary_line(opportunities: int, best_bps: float, best_usd: float, rejected: Counter[str]) -> str:
    parts = []
    if opportunities:
        noun = "opportunity" if opportunities == 1 else "opportunities"
        parts.append(f"{opportunities} {noun} (best {best_bps:.1f} bps, {usd(best_usd)})")
    if rejected:
        reasons = ", ".join(f"{reason} {n}" for reason, n in rejected.most_common())
        parts.append(f"{rejected.total()} rejected ({reasons})")
    return ", ".join(parts)


class ConsoleNotifier:
    name = "console"

    def __init__(self, console: Console | None = None, *, logger: logging.Logger | None = None,
                 summary_interval_s: float = 1.0) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.logger = logger
        self.summary_interval_s = summary_interval_s
        self._opportunities = 0
        self._best_bps = float("-inf")
        self._best_usd = 0.0
        self._rejected: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    async def notify(self, event: Event) -> None:
        if isinstance(event, Opportunity):
            self._opportunities += 1
            if event.net_return_bps > self._best_bps:
                self._best_bps, self._best_usd = event.net_return_bps, event.profit_usd
            self._schedule_summary()
        elif isinstance(event, Rejection):
            self._rejected[event.reason.value] += 1
            self._schedule_summary()
        elif isinstance(event, Execution):
            self._emit(execution_line(event), "green" if event.realized_profit_usd >= 0 else "red")
        elif isinstance(event, Notice):
            self._emit(notice_line(event), "yellow", level=logging.WARNING)

    def flush_summary(self) -> None:
        """Print the pending summary now (if any) and start a new window."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._opportunities and not self._rejected:
            return
        line = summary_line(self._opportunities, self._best_bps, self._best_usd, self._rejected)
        self._opportunities, self._best_bps, self._best_usd = 0, float("-inf"), 0.0
        self._rejected = Counter()
        self._emit(line, "dim")

    async def close(self) -> None:
        self.flush_summary()

    def _schedule_summary(self) -> None:
        # The window opens with the first event of a burst and closes summary_interval_s later.
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.summary_interval_s, self.flush_summary)

    def _emit(self, line: str, style: str, level: int = logging.INFO) -> None:
        if self.logger is not None:
            self.logger.log(level, "%s", line)
        else:
            self.console.print(Text(line, style=style), soft_wrap=True)
