"""The live terminal view of ``run`` / ``watch``, rendered off the event loop.

:class:`~cryptoarb.notify.view.StatusView` builds and draws its rich panel on the loop: 10-25 ms per
refresh measured on the 2-vCPU development VM, which is loop lag for every task (a 30 s load run with
it: p99 19.7 ms against 5 ms without). Here the loop only takes the :class:`EngineStatus` snapshot (its
figures must be read where the engine runs, ~1 ms); a worker thread renders it and redraws the terminal
(rich's ``Live`` and ``Console`` lock around output, as for rich's own refresh thread). While the
thread renders, the interpreter's switch interval is lowered to 1 ms so the loop gets the GIL back
within a millisecond instead of 5. Without a terminal the view is StatusView's plain status line,
printed on the loop (it costs nothing measurable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.live import Live
from rich.segment import Segments
from rich.text import Text

from cryptoarb.notify.view import StatusView
from cryptoarb.status import EngineStatus

log = logging.getLogger("cryptoarb.run.view")

SWITCH_INTERVAL_S = 0.001


class ThreadedStatusView:
    def __init__(self, get_status: Callable[[], EngineStatus], console: Console, *, interval_s: float = 1.0,
                 plain_interval_s: float = 5.0) -> None:
        self.get_status = get_status
        self.console = console
        self.interval_s = interval_s
        self.view = StatusView(get_status, console, interval_s=interval_s, plain_interval_s=plain_interval_s)
        self.draws = 0

    async def run(self) -> None:
        if not self.console.is_terminal:
            await self.view.run()
            return
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-view")
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, SWITCH_INTERVAL_S))
        live = Live(Text("starting..."), console=self.console, auto_refresh=False, redirect_stdout=False,
                    redirect_stderr=True)
        try:
            with live:
                try:
                    while True:
                        status = self._snapshot()
                        if status is not None:
                            await loop.run_in_executor(executor, self._draw, live, status)
                        await asyncio.sleep(self.interval_s)
                finally:
                    executor.shutdown(wait=True)  # a draw in progress ends before the terminal is released
        finally:
            sys.setswitchinterval(previous)

    def _snapshot(self) -> EngineStatus | None:
        try:
            return self.get_status()
        except Exception:
            log.exception("status snapshot failed")
            return None

    def _draw(self, live: Live, status: EngineStatus) -> None:
        """Render the panel to segments here, in the thread: what ``Live`` then holds is pre-rendered, so the
        redraw it does whenever the loop prints a line above it (every notifier or log line) costs nothing
        (with the panel itself as the renderable, each such print re-rendered it: ~8 ms on the loop)."""
        with contextlib.suppress(Exception):
            console = self.console
            segments = list(console.render(self.view.render(status), console.options))
            live.update(Segments(segments), refresh=True)
            self.draws += 1
