"""Liquidity paper fills took from a real venue's book, which the venue's later pushes still show.

A paper order never reaches the venue, so its next snapshot (or a delta at that price) restores the levels
a paper fill emptied, and a later paper fill could take the same liquidity again: the same mispricing,
captured on every push, for profits no live run would see. :class:`TakenLiquidity` remembers, per market
side and price, what paper fills took, and keeps it out of later fills at that price until ``memory_s``
after the last take: the venue's levels are assumed to be its post-trade book plus whatever makers added,
so what we took is subtracted from what it shows.

The engine's own book is kept net too (:meth:`TakenLiquidity.net`, on every update of a market with
something remembered), so detection and sizing see what a live run's venue would show after our trade,
not a level it would no longer hold: planning on it only to find it gone at fill time would strand legs.

Each level a take or a netting changes is written back into the book (what is left of it, or removed). Whether
the venue has re-sent a level since is told by the level's identity: a decoded level is a new tuple, a level
written here is the one remembered. A level the venue has not re-sent is already net of our take (snapshot
or delta feeds alike) and is not reduced twice. Sizes are subtracted as the decimals they were printed as, so
``1.0 - 0.9`` leaves 0.1 and not 0.09999999999999998, which the lot grid would floor to 0.09.

Simulated venues need none of this: paper fills consume their liquidity
(:class:`~cryptoarb.venues.base.LiquidityConsumer`), and their next push already shows it gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cryptoarb.core.books import Book
from cryptoarb.model import Level, MarketKey

ZERO = Decimal(0)


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


@dataclass(slots=True)
class _Owed:
    """What paper fills took at one price and the venue does not know about."""

    size: Decimal
    mark: Level | None
    """The level last written back there (None when it was emptied): while the book still holds this very
    tuple, the venue has not re-sent the level and the book already excludes ``size``."""
    at: float


class TakenLiquidity:
    """Per (venue, symbol, side), the sizes paper fills took at each price, for ``memory_s`` seconds."""

    def __init__(self, memory_s: float) -> None:
        self.memory_s = memory_s
        self._owed: dict[tuple[str, str, bool], dict[float, _Owed]] = {}
        self.markets: set[MarketKey] = set()
        """Markets with something remembered: the engine nets their books on every update."""

    def take(self, book: Book, buy: bool, limit_price: float, size: Decimal, now: float,
             increment: Decimal, *, remember: bool = True) -> list[tuple[float, Decimal]]:
        """Take up to ``size`` at prices no worse than ``limit_price``, as a taker would, from what the book
        shows less what earlier paper fills took there, each level's share on the ``increment`` grid; returns
        the (price, size) taken per level. ``remember=False`` (a simulated venue, whose own liquidity the fill
        consumes): only the local book is changed, until the venue's next update."""
        key = (book.venue, book.symbol, buy)
        owed = self._live(key, now)
        levels = _own_side(book, buy)
        taken: list[tuple[float, Decimal]] = []
        remaining = size
        i = 0
        while i < len(levels) and remaining >= increment:
            level = levels[i]
            price = level[0]
            if (price > limit_price) if buy else (price < limit_price):
                break
            before = owed.get(price) if owed else None
            available = _available(level, before)
            qty = min(available, remaining) // increment * increment if available > 0 else ZERO
            if qty > 0:
                taken.append((price, qty))
                remaining -= qty
            elif before is None:
                i += 1
                continue
            mark = _write_back(levels, i, price, available - qty)
            if mark is not None:
                i += 1
            if remember and self.memory_s > 0:
                if owed is None:
                    owed = self._owed[key] = {}
                    self.markets.add((book.venue, book.symbol))
                owed[price] = (_Owed(qty, mark, now) if before is None
                               else _Owed(before.size + qty, mark, now if qty > 0 else before.at))
        return taken

    def net(self, book: Book, now: float) -> None:
        """Take what paper fills took out of the levels the venue has re-sent since (and forget what is older
        than ``memory_s``), so the engine detects and sizes on the book a live run's venue would show."""
        for buy in (True, False):
            owed = self._live((book.venue, book.symbol, buy), now)
            if not owed:
                continue
            side = book.asks if buy else book.bids
            stale = [(i, lv) for i, lv in enumerate(side) if lv[0] in owed and lv is not owed[lv[0]].mark]
            if not stale:
                continue
            levels = _own_side(book, buy)
            for i, level in reversed(stale):  # from the back, so deleting keeps the earlier indices
                before = owed[level[0]]
                before.mark = _write_back(levels, i, level[0], _available(level, before))

    def _live(self, key: tuple[str, str, bool], now: float) -> dict[float, _Owed] | None:
        """The side's remembered takes, those older than ``memory_s`` dropped."""
        owed = self._owed.get(key)
        if owed:
            horizon = now - self.memory_s
            for price in [p for p, o in owed.items() if o.at < horizon]:
                del owed[price]
            if not owed:
                del self._owed[key]
                venue, symbol, buy = key
                if (venue, symbol, not buy) not in self._owed:
                    self.markets.discard((venue, symbol))
                return None
        return owed

    def owed(self, venue: str, symbol: str, buy: bool) -> dict[float, Decimal]:
        """Price -> size paper fills took on that side and still hold back (expired entries may remain until
        the side is next taken from or netted)."""
        return {p: o.size for p, o in self._owed.get((venue, symbol, buy), {}).items()}


def _own_side(book: Book, buy: bool) -> list[Level]:
    """The book's asks (``buy``) or bids as a list of its own, put in their place: levels are copy-on-write
    (a snapshot's tuple is shared with the update that brought it), so they are copied before any change."""
    levels = list(book.asks if buy else book.bids)
    if buy:
        book.asks = levels
    else:
        book.bids = levels
    return levels


def _available(level: Level, before: _Owed | None) -> Decimal:
    """What ``level`` offers us: all it shows, less what we took there if the venue has re-sent it since."""
    shown = _dec(level[1])
    return shown if before is None or level is before.mark else shown - before.size


def _write_back(levels: list[Level], i: int, price: float, left: Decimal) -> Level | None:
    """Level ``i`` now holds ``left``: replaced by a new tuple (returned), or removed when nothing is left."""
    if left > 0:
        mark = levels[i] = (price, float(left))
        return mark
    del levels[i]
    return None
