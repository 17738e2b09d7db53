"""The watchlist: selection from a ranking, the documented JSON format, atomic replacement under SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from cryptoarb.model import Cycle, Leg, Market, Side
from cryptoarb.run.watchlist import (
    WATCHLIST_VERSION,
    RankedCycle,
    Watchlist,
    WatchlistError,
    read_watchlist,
    remove_stale_temps,
    select,
    write_atomic,
)


def market(symbol: str) -> Market:
    base, quote = symbol.split("-")
    d = Decimal("0.0001")
    return Market("kucoin", symbol, base, quote, d, d, d, d, Decimal("0.001"), Decimal("0.001"))


def cycle(cid: int, *legs: tuple[str, str]) -> Cycle:
    return Cycle(cid, tuple(Leg(market(s), Side(side)) for s, side in legs))


def triangle(cid: int, asset: str, via: str = "BTC") -> Cycle:
    return cycle(cid, (f"{asset}-USDT", "buy"), (f"{asset}-{via}", "sell"), (f"{via}-USDT", "sell"))


def ranking(*cycles: Cycle) -> list[RankedCycle]:
    return [RankedCycle(c, 10.0 - n, n + 1) for n, c in enumerate(cycles)]


def test_whole_cycles_best_first_within_the_size() -> None:
    ranked = ranking(triangle(1, "A"), triangle(2, "B"), triangle(3, "C"), cycle(4, ("X-USDT", "buy"),
                                                                              ("X-Y", "sell"), ("Y-USDT", "sell")))
    wl = select(ranked, 6, venue="kucoin", at=1_700_000_000.0)
    # cycle 1 brings 3 markets, cycle 2 two more (BTC-USDT is shared), cycle 3 two: no longer fits whole
    assert wl.symbols == ("A-USDT", "A-BTC", "BTC-USDT", "B-USDT", "B-BTC")
    assert wl.by_symbol["BTC-USDT"] == (1, 2)
    assert wl.by_symbol["A-USDT"] == (1,)
    assert [c.id for c in wl.cycles] == [1, 2]
    assert wl.size == 6 and wl.venue == "kucoin"


def test_hysteresis_keeps_a_watched_market_while_it_still_ranks() -> None:
    ranked = ranking(triangle(1, "A"), triangle(2, "B"), triangle(3, "C"), triangle(4, "D"))
    first = select(ranked, 5, venue="kucoin")
    assert set(first.symbols) == {"A-USDT", "A-BTC", "BTC-USDT", "B-USDT", "B-BTC"}
    # B drops to the bottom: still within size * keep_rank, so it stays
    reranked = ranking(triangle(1, "A"), triangle(3, "C"), triangle(4, "D"), triangle(2, "B"))
    kept = select(reranked, 5, venue="kucoin", current=first.symbols, keep_rank=2.0)
    assert set(kept.symbols) == set(first.symbols)
    # without hysteresis the better C takes B's place
    fresh = select(reranked, 5, venue="kucoin", current=first.symbols, keep_rank=1.0)
    assert set(fresh.symbols) == {"A-USDT", "A-BTC", "BTC-USDT", "C-USDT", "C-BTC"}


def test_json_format_round_trip(tmp_path: Path) -> None:
    wl = select(ranking(triangle(7, "A"), triangle(9, "B")), 100, venue="kucoin", at=1_795_183_387.412,
                scan={"snapshot_ms": 1, "markets": 2, "cycles": 2, "duration_ms": 0.5, "mode": "slices"})
    path = tmp_path / "wl.json"
    write_atomic(path, wl.to_bytes())
    data = json.loads(path.read_text())
    assert data["version"] == WATCHLIST_VERSION == 1
    assert data["generated_at"] == "2026-11-20T14:03:07.412Z"
    assert data["venue"] == "kucoin"
    assert data["symbols"] == ["A-USDT", "A-BTC", "BTC-USDT", "B-USDT", "B-BTC"]
    assert data["by_symbol"]["BTC-USDT"] == [7, 9]
    assert data["cycles"][0] == {"id": 7, "rank": 1, "net_return_bps": 10.0, "path": ["USDT", "A", "BTC", "USDT"],
                                 "legs": [{"symbol": "A-USDT", "side": "buy"}, {"symbol": "A-BTC", "side": "sell"},
                                          {"symbol": "BTC-USDT", "side": "sell"}]}
    assert read_watchlist(path) == wl
    data["version"] = 2
    with pytest.raises(WatchlistError, match="version"):
        Watchlist.from_json(data)


def test_atomic_write_leaves_no_temp_and_cleans_stale_ones(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "watchlist.json"
    write_atomic(path, b'{"a": 1}')
    write_atomic(path, b'{"a": 2}')
    assert json.loads(path.read_bytes()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["watchlist.json"]
    (path.parent / ".watchlist.json.999.tmp").write_bytes(b'{"half')
    assert remove_stale_temps(path) == 1
    assert [p.name for p in path.parent.iterdir()] == ["watchlist.json"]


WRITER = textwrap.dedent("""
    import sys, os
    from pathlib import Path
    from cryptoarb.run.watchlist import write_atomic
    path = Path(sys.argv[1])
    n = int(sys.argv[2])
    print("ready", flush=True)
    while True:
        n += 1
        # big enough that a write takes several syscalls; each version is self-consistent
        body = ('{"n": %d, "pad": "' % n + "x" * (200_000 + n % 5000) + '", "end": %d}' % n).encode()
        write_atomic(path, body)
""")


@pytest.mark.slow
def test_never_half_written_even_when_the_writer_is_killed(tmp_path: Path) -> None:
    """A writer replacing the file in a loop is SIGKILLed over and over; a reader polling the file meanwhile,
    and after every kill, always sees one complete version."""
    path = tmp_path / "watchlist.json"
    write_atomic(path, b'{"n": 0, "pad": "", "end": 0}')
    seen: list[int] = []
    bad: list[str] = []
    stop = threading.Event()

    def check_once() -> None:
        data = path.read_bytes()
        try:
            doc = json.loads(data)
        except ValueError:
            bad.append(f"{len(data)} bytes: {data[:40]!r}...{data[-40:]!r}")
            return
        if doc["n"] != doc["end"]:
            bad.append(f"mixed versions {doc['n']} / {doc['end']}")
        seen.append(doc["n"])

    def reader() -> None:
        while not stop.is_set():
            check_once()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for round_ in range(8):
            proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(round_ * 1_000_000)],
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            before = len(seen)
            deadline_versions = 5 + round_
            # let it replace the file a few times (observed by the reader), then kill it mid-stream
            while len({*seen[before:]}) < deadline_versions and proc.poll() is None:
                check_once()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            proc.stdout.close()
            check_once()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not bad, bad[:3]
    assert len(set(seen)) > 20
