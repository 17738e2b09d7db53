"""How long a pause it takes to make sizing cold, and which code the cold time belongs to.

The opportunity is the one ``sizing_ab.py`` captures from tick_to_order's in-process setup (USDT > ETH > BTC >
USDT on 50-level books); ``size_cycle`` on it is timed as a single call after each pause below, the pauses
interleaved in a shuffled order in one process:

- **the curve**: after spinning in a tight loop or sleeping for 0 to 10 ms. A live bot idles between frames
  as long as its market is quiet; at 0 the call follows another sizing (back to back, hot);
- **what comes back with a warm-up**: after a 10 ms sleep, with something run right before the call: nothing;
  a dozen ``Decimal`` operations (the exact arithmetic's C library); a little plain Python (dicts, lists,
  tuples, a sort); or the same sizing (which restores all of it).

Whatever a warm-up of one kind takes off the cold time is that kind of code's share of it. The last line is
one JSON object.

    .venv/bin/python benchmarks/idle_gap.py [--rounds 120]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sizing_ab
from cold_path import spin
from cryptoarb.core.sizing import size_cycle

GAPS_MS = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
WARM_GAP_MS = 10.0
_A, _B, _C = Decimal("0.00123"), Decimal("1234.5678"), Decimal("0.001")


def pause(how: str, ms: float) -> None:
    if not ms:
        return
    if how == "spin":
        spin(ms)
    else:
        time.sleep(ms / 1000)


def decimal_ops() -> None:
    x = _A * _B
    y = x / _B
    z = (x // _C) * _C
    _ = (x < y, x + z, x - y, x.quantize(_C), str(x), format(x, "f"), Decimal(repr(1.2345)), _A == _B, x % _C)


def plain_python() -> None:
    d: dict[int, int] = {}
    rows = []
    for i in range(30):
        d[i] = i
        rows.append((i, float(i)))
    _ = (sorted(rows), min(rows), max(rows))


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=120)
    args = parser.parse_args()
    call_args, call_kwargs = sizing_ab.capture()

    def sizing() -> None:
        size_cycle(*call_args, **call_kwargs)

    for _ in range(50):
        sizing()
    warmups: dict[str, Callable[[], None] | None] = {
        "nothing": None, "decimal": decimal_ops, "plain_python": plain_python, "same_sizing": sizing}
    turns = [("curve", how, gap) for gap in GAPS_MS for how in ("spin", "sleep")]
    turns += [("warm", name, WARM_GAP_MS) for name in warmups]
    times: dict[tuple[str, str, float], list[float]] = {turn: [] for turn in turns}
    for _ in range(args.rounds):
        random.shuffle(turns)
        for turn in turns:
            kind, name, gap = turn
            if kind == "curve":
                pause(name, gap)
            else:
                pause("sleep", gap)
                warm = warmups[name]
                if warm is not None:
                    warm()
            t0 = time.perf_counter_ns()
            sizing()
            times[turn].append((time.perf_counter_ns() - t0) / 1000)
    med = {turn: statistics.median(values) for turn, values in times.items()}
    hot = med[("curve", "spin", 0.0)]
    print(f"size_cycle after a pause, median µs of {args.rounds}")
    print(f"{'pause ms':>9}{'spin':>8}{'sleep':>8}{'sleep / hot':>13}")
    for gap in GAPS_MS:
        spun, slept = med[("curve", "spin", gap)], med[("curve", "sleep", gap)]
        print(f"{gap:>9g}{spun:>8.0f}{slept:>8.0f}{slept / hot:>12.2f}x")
    cold = med[("warm", "nothing", WARM_GAP_MS)]
    print(f"after a {WARM_GAP_MS:g} ms sleep, run right before the call:")
    for name in warmups:
        t = med[("warm", name, WARM_GAP_MS)]
        print(f"  {name:<14}{t:>6.0f} µs  ({cold - t:>4.0f} µs of the {cold - hot:.0f} µs cold penalty back)")
    out = {
        "hot_us": round(hot, 1),
        "spin_us": {f"{g:g}": round(med[("curve", "spin", g)], 1) for g in GAPS_MS},
        "sleep_us": {f"{g:g}": round(med[("curve", "sleep", g)], 1) for g in GAPS_MS},
        "after_sleep_with_warmup_us": {name: round(med[("warm", name, WARM_GAP_MS)], 1) for name in warmups},
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
