"""Event-loop lag: how late the loop runs a callback it was asked to run on time.

A product metric, not a debug aid: a socket reader waits exactly this long for its turn, so lag is
what starves pings and drops connections. Shown in status, the demo summary and benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np


class LoopLagMonitor:
    """Schedules a wake-up every ``interval_s`` and records how late each one fires (milliseconds)."""

    def __init__(self, interval_s: float = 0.01, window: int = 60_000) -> None:
        self.interval_s = interval_s
        self._recent: deque[float] = deque(maxlen=window)
        self.max_ms = 0.0
        self.samples = 0
        self.before_reset_max_ms = 0.0
        """The longest lag seen before :meth:`reset` (a run's start-up), kept out of every other figure."""
        self._epoch = 0

    def reset(self) -> None:
        """Start the figures afresh, as a run does once it has started up: its one-off set-up (building the
        engine, the full collection before ``gc.freeze``) holds the loop before any stream is read, which is
        not what a socket reader will ever wait. The sample in flight spans that time, so it is counted with
        it, in :attr:`before_reset_max_ms`."""
        self.before_reset_max_ms = max(self.before_reset_max_ms, self.max_ms)
        self._recent.clear()
        self.max_ms = 0.0
        self.samples = 0
        self._epoch += 1

    def record(self, lag_ms: float) -> None:
        self._recent.append(lag_ms)
        self.samples += 1
        if lag_ms > self.max_ms:
            self.max_ms = lag_ms

    def percentile(self, q: float) -> float:
        if not self._recent:
            return 0.0
        return float(np.percentile(np.fromiter(self._recent, float, len(self._recent)), q))

    async def run(self) -> None:
        while True:
            epoch = self._epoch
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            lag_ms = max(0.0, (time.perf_counter() - start - self.interval_s) * 1000.0)
            if epoch == self._epoch:
                self.record(lag_ms)
            else:
                self.before_reset_max_ms = max(self.before_reset_max_ms, lag_ms)


async def idle_lag(duration_s: float) -> dict[str, float]:
    """The lag an otherwise idle loop sees over ``duration_s``: the machine's own noise, to read ours against."""
    monitor = LoopLagMonitor()
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(duration_s)
    task.cancel()
    return {"p50": monitor.percentile(50), "p99": monitor.percentile(99), "max": monitor.max_ms}


if __name__ == "__main__":  # python -m cryptoarb.looplag SECONDS [asyncio|uvloop]: an idle loop's lag, as JSON
    import json
    import sys

    from cryptoarb.run.runner import run_coroutine

    print(json.dumps(run_coroutine(idle_lag(float(sys.argv[1])), sys.argv[2] if len(sys.argv) > 2 else "asyncio")))
