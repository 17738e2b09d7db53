"""Liquidity paper fills took from a real venue's book, which the venue's later pushes still show.

A paper order never reaches the venue, so its next snapshot (or a delta at that price) restores the levels
a paper fill emptied, and a later paper fill could take the same liquidity again: the same mispricing,
captured on every push, for profits no live run would see. :class:`TakenLiquidity` remembers, per market
side and price, what paper fills took, and keeps it out of later fills at that price until ``memory_s``
after the last take: the venue's levels are assumed to be its post-trade book plus whatever makers added,
so what we took is subtracted from what it shows.

Each level a fill changes is written back into the local book (what is left of it, or removed), as
:meth:`~cryptoarb.core.books.Book.take` does, so the engine does not see the liquidity again before the
venue's next update. Whether the venue has re-sent a level since is told by the level's identity: a decoded
level is a new tuple, a level our take wrote is the one remembered. A level the venue has not re-sent is
already net of our take (snapshot or delta feeds alike) and is not reduced twice.

Simulated venues need none of this: paper fills consume their liquidity
(:class:`~cryptoarb.venues.base.LiquidityConsumer`), and their next push already shows it gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptoarb.core.books import Book
from cryptoarb.model import Level

DUST = 1e-15


@dataclass(slots=True)
class _Owed:
    """What paper fills took at one price and the venue does not know about."""

    size: float
    mark: Level | None
    """The local level our last take left there (None when it emptied it): while the book still holds this
    very tuple, the venue has not re-sent the level and the book already excludes ``size``."""
    at: float


class TakenLiquidity:
    """Per (venue, symbol, side), the sizes paper fills took at each price, for ``memory_s`` seconds."""

    def __init__(self, memory_s: float) -> None:
        self.memory_s = memory_s
        self._owed: dict[tuple[str, str, bool], dict[float, _Owed]] = {}

    def take(self, book: Book, buy: bool, limit_price: float, size: float, now: float) -> list[Level]:
        """Take up to ``size`` at prices no worse than ``limit_price``, as a taker would, from what the book
        shows less what earlier paper fills took there; returns the (price, size) taken per level."""
        key = (book.venue, book.symbol, buy)
        owed = self._owed.get(key)
        if owed:
            horizon = now - self.memory_s
            for price in [p for p, o in owed.items() if o.at < horizon]:
                del owed[price]
        levels = list(book.asks if buy else book.bids)
        if buy:
            book.asks = levels
        else:
            book.bids = levels
        taken: list[Level] = []
        remaining = size
        i = 0
        while i < len(levels) and remaining > DUST:
            level = levels[i]
            price, shown = level
            if (price > limit_price) if buy else (price < limit_price):
                break
            before = owed.get(price) if owed else None
            available = shown if before is None or level is before.mark else shown - before.size
            qty = min(available, remaining) if available > DUST else 0.0
            if qty > 0:
                taken.append((price, qty))
                remaining -= qty
            if before is None and qty <= 0:
                i += 1
                continue
            # write back what is left of the level, net of everything we took there
            left = available - qty
            mark: Level | None = None
            if left > DUST:
                mark = levels[i] = (price, left)
                i += 1
            else:
                del levels[i]
            if self.memory_s > 0 and (qty > 0 or before is not None):
                if owed is None:
                    owed = self._owed[key] = {}
                owed[price] = (_Owed(qty, mark, now) if before is None
                               else _Owed(before.size + qty, mark, now if qty > 0 else before.at))
        return taken

    def owed(self, venue: str, symbol: str, buy: bool) -> dict[float, float]:
        """Price -> size paper fills took on that side and still hold back (expired entries may remain until
        the next take there)."""
        return {p: o.size for p, o in self._owed.get((venue, symbol, buy), {}).items()}
