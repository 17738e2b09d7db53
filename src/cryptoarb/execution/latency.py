"""Latency per stage of an opportunity, and percentiles over many.

Stages, each a duration in milliseconds from the end of the previous one:

- ``receive``: the triggering update's arrival (its ``received_at``) to the engine processing it
  (engine clock: 0 on a simulated venue, queueing delay live);
- ``detect``: processing the update to the cycle being found (wall clock, measured);
- ``risk``: sizing on depth and the risk checks (wall clock, measured);
- ``send``: the decision to the first order on the wire (live: preflight and the durable intent write;
  paper: the internal latency the schedule assumes);
- ``ack``: the first order's round trip to the venue (paper: the configured venue latency);
- ``fill``: from that answer until the last order of the opportunity is final (live: the other legs,
  retries, order-state lookups and recovery orders; paper: 0).

``internal`` (receive + detect + risk) is what paper execution may add to its schedule
(``paper.add_measured_latency``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

STAGES = ("receive", "detect", "risk", "send", "ack", "fill")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0-100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo))


class LatencyStats:
    """The last ``window`` samples of each stage (ms)."""

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self._samples: dict[str, deque[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        if math.isfinite(ms):
            samples = self._samples.get(stage)
            if samples is None:
                samples = self._samples[stage] = deque(maxlen=self.window)
            samples.append(ms)

    def record(self, stages: Mapping[str, float]) -> None:
        for stage, ms in stages.items():
            self.add(stage, ms)

    def samples(self, stage: str) -> list[float]:
        return list(self._samples.get(stage, ()))

    def percentile(self, stage: str, q: float) -> float:
        return percentile(self.samples(stage), q)

    def summary(self, qs: Iterable[float] = (50, 90, 99)) -> dict[str, dict[str, float]]:
        """Per stage seen, in :data:`STAGES` order: count, percentiles (``p50`` ...) and max, in ms."""
        qs = tuple(qs)
        out: dict[str, dict[str, float]] = {}
        for stage in (*STAGES, *sorted(set(self._samples) - set(STAGES))):
            values = self.samples(stage)
            if values:
                row: dict[str, float] = {"n": float(len(values))}
                row.update({f"p{q:g}": percentile(values, q) for q in qs})
                row["max"] = max(values)
                out[stage] = row
        return out
