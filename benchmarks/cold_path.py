"""Cold order path: what a quiet market does to the code that signs an order, and what the order path now uses.

A bot sends an order after idling for as long as the market was quiet. On the VMs here, code that ran
microseconds earlier runs 2-30x slower once a few milliseconds have passed: the caches and branch
predictors it warmed are someone else's by then, even while this process spins on the CPU. Each row below
times one function two ways, interleaved in one process:

- hot: called back to back;
- cold: called once after spinning ``--gap-ms`` (default 10) in a tight loop, as a quiet feed leaves it.

Rows:

- ``workload``: a fixed piece of plain Python (sum, dict lookups, sort): the machine's cold factor;
- ``sign_stdlib``: ``base64(hmac.new(secret, msg, hashlib.sha256))`` through OpenSSL, what the order path
  used before (``signing.b64_hmac``, still used off the order path);
- ``sign_ours``: ``HmacSha256.b64`` (the key's inner and outer states precomputed, CPython's built-in SHA-256).

The last line is one JSON object; ``sign_cold_ratio`` is stdlib / ours, cold.

    .venv/bin/python benchmarks/cold_path.py [--rounds 200] [--gap-ms 10]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from cryptoarb.venues.kucoin.signing import HmacSha256, b64_hmac

SECRET = "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3"
MESSAGE = ('1700000000000POST/api/v1/hf/orders{"clientOid":"op0000001-c12-0","side":"buy","symbol":"ETH-BTC",'
           '"type":"limit","size":"0.1234","price":"0.05123","timeInForce":"IOC"}')


def spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1000


def rows() -> dict[str, Callable[[], object]]:
    data = [random.random() for _ in range(3000)]
    table = {i: str(i) for i in range(3000)}

    def workload() -> object:
        total = 0.0
        for x in data:
            total += x * 1.5
        for k in range(0, 3000, 3):
            table[k]
        return sorted(data[:1500])

    signer = HmacSha256(SECRET)
    message = MESSAGE.encode()
    assert signer.b64(message).decode() == b64_hmac(SECRET, MESSAGE)
    return {"workload": workload, "sign_stdlib": lambda: b64_hmac(SECRET, MESSAGE),
            "sign_ours": lambda: signer.b64(message)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="cold calls per row (each after one gap)")
    parser.add_argument("--gap-ms", type=float, default=10.0, help="spin this long before each cold call")
    args = parser.parse_args()
    fns = rows()
    hot: dict[str, list[float]] = {name: [] for name in fns}
    cold: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():  # interleaved: drift on this machine hits every row alike
            spin(args.gap_ms)
            cold[name].append(timed(fn))
            for _ in range(20):
                fn()
            hot[name].append(statistics.median(timed(fn) for _ in range(5)))
    result: dict[str, float] = {}
    print(f"{'row':12} {'hot µs':>8} {'cold µs':>8} {'cold/hot':>9}   "
          f"(medians of {args.rounds}, gap {args.gap_ms:g} ms)")
    for name in fns:
        h, c = statistics.median(hot[name]), statistics.median(cold[name])
        result[f"{name}_hot_us"], result[f"{name}_cold_us"] = round(h, 2), round(c, 2)
        print(f"{name:12} {h:8.2f} {c:8.2f} {c / h:8.1f}x")
    result["workload_cold_factor"] = round(result["workload_cold_us"] / result["workload_hot_us"], 2)
    result["sign_cold_ratio"] = round(result["sign_stdlib_cold_us"] / result["sign_ours_cold_us"], 2)
    result["sign_hot_ratio"] = round(result["sign_stdlib_hot_us"] / result["sign_ours_hot_us"], 2)
    result["gap_ms"] = args.gap_ms
    print(f"signing, stdlib / ours: cold {result['sign_cold_ratio']:.2f}x, hot {result['sign_hot_ratio']:.2f}x")
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
