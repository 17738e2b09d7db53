"""Exact sizing of one opportunity: this checkout's ``core/sizing.py`` against an earlier revision's.

The opportunity is the first one benchmarks/tick_to_order.py's in-process run sizes (USDT > ETH > BTC > USDT
on the simulator's 1,250-pair universe, 50-level books); its cycle and the three books it was sized on are
kept. The earlier ``core/sizing.py`` comes from ``git show REV:src/cryptoarb/core/sizing.py`` and is
loaded beside ours in the same process (both import the rest of cryptoarb from this checkout). Both
must size the same ``Opportunity``; then they are timed in turns (each pass 100 calls after 20 untimed),
and the ratio printed is the median of each turn's own ratio (the machine's speed drifts between seconds).

With ``--gap-ms G`` each turn is one call after spinning G ms instead: sizing as the order path meets it
after a quiet market, with the CPU's caches given to other work (benchmarks/README.md, "cold_path").

    .venv/bin/python benchmarks/sizing_ab.py [--baseline-rev 00355eb] [--repeats 21] [--gap-ms 0]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import cryptoarb.core.sizing as ours
import cryptoarb.engine
import tick_to_order

ROOT = Path(__file__).resolve().parent.parent


def capture() -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of the first sizing that yields an opportunity, with copies of the books it read."""
    captured: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    size_cycle = cryptoarb.engine.size_cycle

    def keep(*args: Any, **kwargs: Any) -> Any:
        result = size_cycle(*args, **kwargs)
        if not captured and type(result).__name__ == "Opportunity":
            cycle, books = args[0], args[1]
            snapshot = {leg.market.key: copy.copy(books.get(leg.market.key)) for leg in cycle.legs}
            # the detector's return, which older revisions do not take: both compute it themselves
            captured.append(((cycle, snapshot, *args[2:]), {k: v for k, v in kwargs.items() if k != "net_return_bps"}))
        return result

    cryptoarb.engine.size_cycle = keep  # type: ignore[assignment]
    try:
        asyncio.run(tick_to_order.run(5, 0, False))
    finally:
        cryptoarb.engine.size_cycle = size_cycle
    if not captured:
        raise SystemExit("the tick_to_order setup sized no opportunity")
    return captured[0]


def load_revision(rev: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:src/cryptoarb/core/sizing.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_sizing.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_sizing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_sizing"] = module
    spec.loader.exec_module(module)
    return module


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="00355eb", help="git revision of the baseline core/sizing.py")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="time single calls, each after spinning this long")
    args = parser.parse_args()
    baseline = load_revision(args.baseline_rev)
    call_args, call_kwargs = capture()
    if baseline.size_cycle(*call_args, **call_kwargs) != ours.size_cycle(*call_args, **call_kwargs):
        raise SystemExit("the two revisions size the opportunity differently")
    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(args.repeats):
        for name, module in (("baseline", baseline), ("ours", ours)):
            size_cycle = module.size_cycle
            if args.gap_ms:
                spin_until = time.perf_counter() + args.gap_ms / 1000
                while time.perf_counter() < spin_until:
                    pass
                t0 = time.perf_counter_ns()
                size_cycle(*call_args, **call_kwargs)
                times[name].append((time.perf_counter_ns() - t0) / 1000)
                continue
            for _ in range(20):
                size_cycle(*call_args, **call_kwargs)
            t0 = time.perf_counter_ns()
            for _ in range(100):
                size_cycle(*call_args, **call_kwargs)
            times[name].append((time.perf_counter_ns() - t0) / 100 / 1000)
    ratio = statistics.median(b / o for b, o in zip(times["baseline"], times["ours"], strict=True))
    out = {"baseline_rev": args.baseline_rev, "baseline_us": round(statistics.median(times["baseline"]), 1),
           "ours_us": round(statistics.median(times["ours"]), 1), "ratio": round(ratio, 2), "gap_ms": args.gap_ms}
    print(f"size_cycle, one opportunity{f', cold (after {args.gap_ms:g} ms)' if args.gap_ms else ''}: "
          f"{args.baseline_rev} {out['baseline_us']} µs, this checkout {out['ours_us']} µs, {ratio:.2f}x")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
