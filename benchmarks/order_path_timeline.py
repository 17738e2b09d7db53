"""Where the tick-to-order time goes against the sim-server: each step's median time since the frame arrived.

Runs ``tick_to_order.py --sim-server`` (the KuCoin sim-server in its own process, the native websocket
client, the engine, the live executor, ``KucoinRest`` and its order wire) with a clock wrapped around the
functions the order passes through. For each measured frame it notes when each is entered (``>``) and,
for plain functions, left (``<``), in µs since the websocket client received the frame; the table gives
the median of each over the frames, in path order, with the step from the row before.

The wrappers cost about a microsecond each, so the total reads somewhat above ``tick_to_order.py``'s. The
figures are the cold path a live run sees: frames come seconds apart, as in a quiet market, and on this
machine code runs 2-5x slower than back to back then (``cold_path.py``). The last line is one JSON object.

    .venv/bin/python benchmarks/order_path_timeline.py [--frames 200] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import tick_to_order as t2o

CHECKPOINTS = [  # (module, class or "", function), in path order
    ("cryptoarb.venues.kucoin.codec", "KucoinCodec", "decode"),
    ("cryptoarb.engine", "Engine", "on_batch"),
    ("cryptoarb.core.books", "BookStore", "apply"),
    ("cryptoarb.core.detector", "Detector", "update"),
    ("cryptoarb.engine", "Engine", "_consider"),
    ("cryptoarb.engine", "", "size_cycle"),
    ("cryptoarb.core.sizing", "", "_leg_books"),
    ("cryptoarb.core.sizing", "", "_optimise"),
    ("cryptoarb.core.sizing", "_Search", "evaluate"),
    ("cryptoarb.core.sizing", "", "_opportunity"),
    ("cryptoarb.engine", "Engine", "_dispatch"),
    ("cryptoarb.execution.live", "LiveExecutor", "submit"),
    ("cryptoarb.execution.live", "", "preflight"),
    ("cryptoarb.execution.live", "LiveExecutor", "_drive"),
    ("cryptoarb.execution.live", "LiveExecutor", "_send"),
    ("cryptoarb.venues.kucoin.rest", "KucoinRest", "_send"),
    ("cryptoarb.venues.kucoin.rest", "KucoinRest", "_submit"),
    ("cryptoarb.venues.kucoin.order_wire", "OrderWire", "place"),
    ("cryptoarb.venues.kucoin.signing", "HmacSha256", "b64"),
    ("cryptoarb.venues.kucoin.order_wire", "_Connection", "send_raw"),
]

EVENTS: list[tuple[str, int]] = []


def clocked(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    note = EVENTS.append
    now = time.perf_counter_ns
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        def entered(*args: Any, **kwargs: Any) -> Any:
            note((label + " >", now()))
            return fn(*args, **kwargs)
        return entered

    @functools.wraps(fn)
    def around(*args: Any, **kwargs: Any) -> Any:
        note((label + " >", now()))
        try:
            return fn(*args, **kwargs)
        finally:
            note((label + " <", now()))
    return around


def install() -> list[str]:
    """Wrap every checkpoint; the ones no longer found are returned, so a renamed function is reported."""
    missing = []
    for module_name, owner_name, name in CHECKPOINTS:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name, None) if owner_name else module
        label = f"{owner_name or module_name.rsplit('.', 1)[1]}.{name}"
        if owner is None or not hasattr(owner, name):
            missing.append(label)
            continue
        setattr(owner, name, clocked(label, getattr(owner, name)))
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    missing = install()
    rows: list[list[tuple[str, float]]] = []
    probes: list[t2o.FrameProbe] = []
    probe_init, probe_clock, on_written = t2o.FrameProbe.__init__, t2o.FrameProbe.clock, t2o.TimedRest.on_written

    def init(self: t2o.FrameProbe, *a: Any, **kw: Any) -> None:
        probe_init(self, *a, **kw)
        probes.append(self)

    def clock(self: t2o.FrameProbe) -> float:
        EVENTS.clear()
        return probe_clock(self)

    def written(self: t2o.TimedRest, size: int) -> None:
        at = time.perf_counter_ns()
        if self.written is not None and not self.written.done():
            start = probes[0].frame_ns
            rows.append([(label, (t - start) / 1000) for label, t in EVENTS] + [("order written", (at - start) / 1000)])
        on_written(self, size)

    t2o.FrameProbe.__init__, t2o.FrameProbe.clock, t2o.TimedRest.on_written = init, clock, written  # type: ignore[method-assign]
    result = asyncio.run(t2o.run_sim_server(args.frames, args.warmup, False, 1.0, 1250, t2o.SYMBOL))
    firsts: dict[str, list[float]] = {}
    for row in rows[args.warmup:]:
        seen: set[str] = set()
        for label, at in row:
            if label not in seen:  # a step entered several times (evaluate) counts from its first entry
                seen.add(label)
                firsts.setdefault(label, []).append(at)
    medians = {label: statistics.median(ts) for label, ts in firsts.items()}
    print(f"order path against the sim-server, {len(rows) - args.warmup} frames "
          f"(tick to order p50 {result['p50_us']:.0f} µs, p99 {result['p99_us']:.0f} µs, with the wrappers)")
    print(f"{'step':34} {'µs since frame':>14} {'step µs':>8}")
    before = 0.0
    for label, at in sorted(medians.items(), key=lambda item: item[1]):
        print(f"{label:34} {at:14.1f} {at - before:8.1f}")
        before = at
    if missing:
        print(f"not found (renamed?): {', '.join(missing)}")
    print(json.dumps({"p50_us": result["p50_us"], "p99_us": result["p99_us"],
                      "steps_us": {k: round(v, 1) for k, v in medians.items()}}, separators=(",", ":"),
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
