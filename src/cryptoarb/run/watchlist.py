"""The watchlist: the markets streamed in depth, chosen from the scanner's ranking, kept in a JSON file.

The file is the contract with other tools (docs/run.md, "Watchlist file"). It is replaced atomically:
the new content goes to a temporary file in the same directory, is flushed and fsynced, then renamed
over the old one and the directory is fsynced. A reader therefore sees the previous list or the new
one, never a mix or a truncated file, even if the process is killed mid-write or the machine loses
power after the rename.

Format (``version`` 1)::

    {
      "version": 1,
      "generated_at": "2026-11-21T14:03:07.412Z",     # UTC, ISO 8601, millisecond precision
      "generated_at_unix": 1795183387.412,
      "venue": "kucoin",
      "size": 100,                                    # the configured watchlist size
      "symbols": ["BTC-USDT", "ETH-BTC", ...],        # the watched markets, best first
      "cycles": [                                     # every cycle referenced below
        {"id": 17, "rank": 1, "net_return_bps": -3.2, "path": ["USDT", "BTC", "ETH", "USDT"],
         "legs": [{"symbol": "BTC-USDT", "side": "buy"}, {"symbol": "ETH-BTC", "side": "buy"},
                  {"symbol": "ETH-USDT", "side": "sell"}]}
      ],
      "by_symbol": {"BTC-USDT": [17, 40], ...},       # the cycles (ids) that put each symbol there
      "scan": {"snapshot_ms": 1795183387000, "markets": 1250, "cycles": 1610, "duration_ms": 3.1,
               "mode": "slices"}
    }

``rank`` is the cycle's position in the scan's ranking (1 = best net return after fees at the top of the
books). Tools should ignore keys they do not know; a change that breaks readers bumps ``version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cryptoarb.model import Cycle

WATCHLIST_VERSION = 1
CYCLES_PER_SYMBOL = 3
"""At most this many cycles are listed as the reason for one symbol."""
_TMP_SUFFIX = ".tmp"


class WatchlistError(ValueError):
    """A watchlist file that is not a valid version-1 watchlist."""


@dataclass(frozen=True, slots=True)
class RankedCycle:
    """One cycle of a scan's ranking: its top-of-book net return after fees, and its rank (1 = best).

    ``symbols``: the cycle's markets, each once, in leg order (computed from the cycle when not given;
    evaluators pass a tuple they computed once per cycle, which keeps :func:`select` cheap)."""

    cycle: Cycle
    net_return_bps: float
    rank: int
    symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.symbols:
            object.__setattr__(self, "symbols", cycle_symbols(self.cycle))


def cycle_symbols(cycle: Cycle) -> tuple[str, ...]:
    return tuple(dict.fromkeys(leg.market.symbol for leg in cycle.legs))


@dataclass(frozen=True, slots=True)
class WatchedCycle:
    id: int
    rank: int
    net_return_bps: float
    path: tuple[str, ...]
    legs: tuple[tuple[str, str], ...]
    """(symbol, side) per leg."""

    @classmethod
    def of(cls, ranked: RankedCycle) -> WatchedCycle:
        cycle = ranked.cycle
        return cls(cycle.id, ranked.rank, round(ranked.net_return_bps, 4), cycle.path,
                   tuple((leg.market.symbol, leg.side.value) for leg in cycle.legs))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "rank": self.rank, "net_return_bps": self.net_return_bps,
                "path": list(self.path), "legs": [{"symbol": s, "side": side} for s, side in self.legs]}


@dataclass(frozen=True, slots=True)
class Watchlist:
    venue: str
    size: int
    symbols: tuple[str, ...]
    cycles: tuple[WatchedCycle, ...]
    by_symbol: dict[str, tuple[int, ...]]
    generated_at: float
    """Unix time (seconds)."""
    scan: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": WATCHLIST_VERSION,
            "generated_at": iso_utc(self.generated_at),
            "generated_at_unix": self.generated_at,
            "venue": self.venue,
            "size": self.size,
            "symbols": list(self.symbols),
            "cycles": [c.as_json() for c in self.cycles],
            "by_symbol": {s: list(ids) for s, ids in self.by_symbol.items()},
            "scan": self.scan,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.as_json(), option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, data: Any) -> Watchlist:
        if not isinstance(data, dict):
            raise WatchlistError("a watchlist is a JSON object")
        if data.get("version") != WATCHLIST_VERSION:
            raise WatchlistError(f"unsupported watchlist version {data.get('version')!r} "
                                 f"(this build reads {WATCHLIST_VERSION})")
        try:
            cycles = tuple(WatchedCycle(int(c["id"]), int(c["rank"]), float(c["net_return_bps"]),
                                        tuple(c["path"]), tuple((leg["symbol"], leg["side"]) for leg in c["legs"]))
                           for c in data["cycles"])
            return cls(venue=str(data["venue"]), size=int(data["size"]), symbols=tuple(data["symbols"]),
                       cycles=cycles, by_symbol={s: tuple(ids) for s, ids in data["by_symbol"].items()},
                       generated_at=float(data["generated_at_unix"]), scan=dict(data.get("scan") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise WatchlistError(f"malformed watchlist: {type(exc).__name__}: {exc}") from None


def iso_utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def select(ranked: Sequence[RankedCycle], size: int, *, venue: str, current: Collection[str] = (),
           keep_rank: float = 1.5, at: float | None = None, scan: dict[str, Any] | None = None) -> Watchlist:
    """The markets of the best cycles, at most ``size`` of them.

    Whole cycles are added best first (a cycle is only tradeable with depth on every leg), skipping one
    whose new markets no longer fit. Hysteresis: a market already watched (``current``) stays while it
    still ranks among the first ``size * keep_rank`` markets of the ranking, so the depth subscriptions
    do not churn on noise.
    """
    order: dict[str, int] = {}
    for rc in ranked:
        for symbol in rc.symbols:
            if symbol not in order:
                order[symbol] = len(order)
    horizon = int(size * keep_rank)
    chosen: dict[str, None] = dict.fromkeys(
        sorted((s for s in current if order.get(s, horizon) < horizon), key=order.__getitem__)[:size])
    for rc in ranked:
        if len(chosen) >= size:
            break
        new = [s for s in rc.symbols if s not in chosen]
        if new and len(chosen) + len(new) <= size:
            chosen.update(dict.fromkeys(new))
    symbols = tuple(sorted(chosen, key=lambda s: order.get(s, len(order))))
    # the reasons: per symbol the best cycles through it that the watchlist covers whole, else any
    reasons: dict[str, list[RankedCycle]] = {s: [] for s in symbols}
    fallback: dict[str, list[RankedCycle]] = {s: [] for s in symbols}
    missing = len(symbols)  # symbols with fewer than CYCLES_PER_SYMBOL covered reasons
    for rc in ranked:
        if not missing:
            break
        covered = True
        for s in rc.symbols:
            if s not in chosen:
                covered = False
                break
        for s in rc.symbols:
            if s in chosen:
                bucket = reasons[s] if covered else fallback[s]
                if len(bucket) < CYCLES_PER_SYMBOL:
                    bucket.append(rc)
                    if covered and len(bucket) == CYCLES_PER_SYMBOL:
                        missing -= 1
    by_symbol: dict[str, tuple[int, ...]] = {}
    used: dict[int, RankedCycle] = {}
    for s in symbols:
        picked = reasons[s] or fallback[s]
        by_symbol[s] = tuple(rc.cycle.id for rc in picked)
        for rc in picked:
            used.setdefault(rc.cycle.id, rc)
    cycles = tuple(WatchedCycle.of(rc) for rc in sorted(used.values(), key=lambda rc: rc.rank))
    return Watchlist(venue=venue, size=size, symbols=symbols, cycles=cycles, by_symbol=by_symbol,
                     generated_at=round(time.time() if at is None else at, 3), scan=dict(scan or {}))


# -- the file -----------------------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename, fsync the directory.

    Blocking (fsync); call it in a thread from the event loop (:func:`write_watchlist`).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}{_TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the rename itself is still atomic
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> int:
    """Delete temporary files a killed writer left next to ``path``; returns how many."""
    path = Path(path)
    removed = 0
    if not path.parent.is_dir():
        return 0
    for tmp in path.parent.glob(f".{path.name}.*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


async def write_watchlist(path: Path, watchlist: Watchlist) -> None:
    """Encode on the loop (fast), write and fsync in a thread (blocking IO)."""
    await asyncio.to_thread(write_atomic, Path(path), watchlist.to_bytes())


def read_watchlist(path: Path) -> Watchlist:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise WatchlistError(f"{path}: not valid JSON: {exc}") from None
    return Watchlist.from_json(data)
