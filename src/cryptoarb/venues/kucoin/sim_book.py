"""The simulator's published books: one per symbol, with KuCoin's per-symbol ``sequence``.

While someone streams a symbol's ``/market/level2``, each new ``SimMarket`` snapshot of it is diffed
against the book last published; every changed level takes the next sequence number, so a delta covers
``sequenceStart..sequenceEnd`` and the REST snapshot's ``sequence`` is the last number applied to the
book it returns. A client that caches deltas and splices a snapshot in (reference §A.2 "level2 sync")
rebuilds this book exactly. Nobody can see the deltas of a symbol nobody streams, so those are not
computed (the diff is most of the simulator's CPU): such a change only advances the sequence by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cryptoarb.model import BookUpdate, Level
from cryptoarb.venues.sim.universe import PairSpec

FIRST_SEQUENCE = 10_000_000_000  # KuCoin's sequences are large; any start works for clients


class Fmt:
    """Decimal strings on a pair's grid (KuCoin never sends exponents): ``price(94982.6) == "94982.6"``."""

    __slots__ = ("_p", "_s")

    def __init__(self, pair: PairSpec) -> None:
        self._p = f".{max(0, -pair.price_exp)}f"
        self._s = f".{max(0, -pair.size_exp)}f"

    def price(self, x: float) -> str:
        return format(x, self._p)

    def size(self, x: float) -> str:
        return format(x, self._s)

    def dprice(self, x: float) -> Decimal:
        return Decimal(format(x, self._p))

    def dsize(self, x: float) -> Decimal:
        return Decimal(format(x, self._s))


@dataclass(frozen=True, slots=True)
class Delta:
    """One ``/market/level2`` push: changes as (price, size, seq); size 0 deletes, price 0 is a no-op."""

    symbol: str
    start: int
    end: int
    bids: tuple[tuple[float, float, int], ...]
    asks: tuple[tuple[float, float, int], ...]
    time_ms: int


class PublishedBook:
    __slots__ = ("_levels", "deltas", "seq", "snap", "time_ms", "top")

    def __init__(self, snap: BookUpdate, time_ms: int) -> None:
        self.seq = FIRST_SEQUENCE
        self.snap = snap
        self.time_ms = time_ms
        self.deltas = 0
        self.top = _top(snap)
        self._levels: tuple[dict[float, float], dict[float, float]] | None = None  # of snap, when diffing

    def apply(self, snap: BookUpdate, time_ms: int, *, exact: bool,
              skip: int = 0) -> tuple[bool, Delta | None]:
        """Publish ``snap``: (whether the book changed, the level2 delta when ``exact``).

        ``skip`` sequence numbers are burnt before an exact delta (the level2 gap fault).
        """
        prev, self.snap = self.snap, snap
        self.top = _top(snap)
        if not exact:
            self._levels = None
            if snap.bids == prev.bids and snap.asks == prev.asks:
                return False, None
            self.seq += 1
            self.time_ms = time_ms
            return True, None
        old_bids, old_asks = self._levels or (dict(prev.bids), dict(prev.asks))
        seq = self.seq + skip
        bid_rows, seq, bids = _diff(old_bids, snap.bids, seq)
        ask_rows, seq, asks = _diff(old_asks, snap.asks, seq)
        self._levels = (bids, asks)
        if not bid_rows and not ask_rows:
            return False, None
        start = self.seq + skip + 1
        self.seq = seq
        self.time_ms = time_ms
        self.deltas += 1
        return True, Delta(snap.symbol, start, seq, bid_rows, ask_rows, time_ms)

    def noop(self, time_ms: int) -> Delta:
        """A delta that changes nothing but advances the sequence (a price "0" row)."""
        self.seq += 1
        self.deltas += 1
        return Delta(self.snap.symbol, self.seq, self.seq, (), ((0.0, 0.0, self.seq),), time_ms)

    def levels(self, depth: int | None = None) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        if depth is None:
            return self.snap.bids, self.snap.asks
        return self.snap.bids[:depth], self.snap.asks[:depth]


def _top(snap: BookUpdate) -> tuple[float, float, float, float]:
    bid = snap.bids[0] if snap.bids else (0.0, 0.0)
    ask = snap.asks[0] if snap.asks else (0.0, 0.0)
    return bid[0], bid[1], ask[0], ask[1]


def _diff(old: dict[float, float], levels: tuple[Level, ...],
          seq: int) -> tuple[tuple[tuple[float, float, int], ...], int, dict[float, float]]:
    new = dict(levels)
    rows: list[tuple[float, float, int]] = []
    for price, size in levels:
        if old.get(price) != size:
            seq += 1
            rows.append((price, size, seq))
    for price in old:
        if price not in new:
            seq += 1
            rows.append((price, 0.0, seq))
    return tuple(rows), seq, new
