"""The machine's floor under tick-to-order: the same work, timed after this process idled for a while.

No cryptoarb code runs here. A receiver in another process (as ``cryptoarb sim-server`` is) reads a TCP
connection; this process sends 500-byte requests to it, idling ``gap`` between them, and times each
``send()`` syscall alone. The receiver either blocks in ``recv`` (sleeps, as a server does) or polls
without blocking (never sleeps). A third row times a fixed pure-Python computation (~50 µs when hot)
after the same gaps. If the figures grow with the gap whichever way the receiver waits, the cost is this
CPU coming back from idle (caches, the virtual CPU), and it bounds what benchmarks/tick_to_order.py
--sim-server can measure on the same machine: there, every frame comes after ~180 ms of idling.

    .venv/bin/python benchmarks/loopback_send.py [--sends 200]

The last line is one JSON object: p50/p90 in µs per (row, gap).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from collections.abc import Callable

GAPS_S = (0.0, 0.001, 0.01, 0.1)
PAYLOAD = b"x" * 500


def receiver(listener: socket.socket, poll: bool) -> None:
    conn, _ = listener.accept()
    conn.setblocking(not poll)
    while True:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            continue
        if not data:
            return


def after_gaps(work: Callable[[], object], sends: int) -> dict[str, tuple[float, float]]:
    """p50 and p90 µs of ``work()`` timed alone, after each idle gap of :data:`GAPS_S`."""
    out: dict[str, tuple[float, float]] = {}
    for gap in GAPS_S:
        times = []
        for _ in range(sends if gap < 0.1 else max(20, sends // 4)):
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter_ns()
            work()
            times.append((time.perf_counter_ns() - t0) / 1000)
        times.sort()
        out[f"{gap * 1000:g}ms"] = (round(statistics.median(times), 1), round(times[int(len(times) * 0.9)], 1))
    return out


def measure(poll: bool, sends: int) -> dict[str, tuple[float, float]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    pid = os.fork()
    if pid == 0:
        try:
            receiver(listener, poll)
        finally:
            os._exit(0)
    with socket.create_connection(listener.getsockname()) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = after_gaps(lambda: sock.sendall(PAYLOAD), sends)
    os.waitpid(pid, 0)
    listener.close()
    return out


def _work() -> float:
    total = 0.0
    for i in range(2_000):
        total += (i % 7) * 1.5
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=200, help="sends per gap (a quarter at 100 ms)")
    args = parser.parse_args()
    result = {"sleeping_receiver": measure(False, args.sends), "polling_receiver": measure(True, args.sends),
              "python_compute": after_gaps(_work, args.sends)}
    print("µs (p50 / p90) by idle gap before it: send() of 500 bytes on loopback to a receiver that sleeps or")
    print("polls, and a fixed pure-Python computation")
    print(f"{'':<20}" + "".join(f"{g:>18}" for g in result["sleeping_receiver"]))
    for name, row in result.items():
        print(f"{name:<20}" + "".join(f"{f'{p50} / {p90}':>18}" for p50, p90 in row.values()))
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
