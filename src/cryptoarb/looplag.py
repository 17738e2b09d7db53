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
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.record(max(0.0, (time.perf_counter() - start - self.interval_s) * 1000.0))
