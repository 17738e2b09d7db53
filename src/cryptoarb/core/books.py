"""Order books as the engine sees them, and the rule that says when one may be traded on."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from cryptoarb.model import BookUpdate, Level, MarketKey


class StreamLiveness:
    """When the stream a book arrives on last proved alive (any message, a pong).

    Feeds such as KuCoin's level2 push nothing for a book that did not change, so a quiet book on a
    live, sequence-consistent stream is current; its freshness is the later of its last change and
    its stream's last sign of life.
    """

    __slots__ = ("alive_at",)

    def __init__(self) -> None:
        self.alive_at = float("-inf")


class Book:
    """One market's book. Bids descend, asks ascend. Changed by :meth:`apply` and by paper fills
    (:mod:`cryptoarb.execution.taken_liquidity`, which also nets what they took out of a real venue's levels).

    Levels are copy-on-write: a snapshot's tuples are kept as they arrive (most books are replaced
    whole, thousands of times a second) and copied into a list only when a delta or our own fill
    changes them. Read them as sequences.
    """

    __slots__ = ("asks", "bids", "exchange_ts_ms", "gapped", "liveness", "received_at", "sequence", "symbol",
                 "venue")

    def __init__(self, venue: str, symbol: str, liveness: StreamLiveness | None = None) -> None:
        self.venue = venue
        self.symbol = symbol
        self.liveness = liveness
        self.bids: list[Level] | tuple[Level, ...] = ()
        self.asks: list[Level] | tuple[Level, ...] = ()
        self.sequence = -1
        self.exchange_ts_ms = 0
        self.received_at = float("-inf")
        self.gapped = True  # no snapshot yet

    @property
    def best_bid(self) -> float:
        return self.bids[0][0] if self.bids else 0.0

    @property
    def best_ask(self) -> float:
        return self.asks[0][0] if self.asks else float("inf")

    @property
    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids[0][0] >= self.asks[0][0])

    def age(self, now: float) -> float:
        """Seconds since the book was last known to be current."""
        alive = self.liveness.alive_at if self.liveness is not None else float("-inf")
        return now - max(self.received_at, alive)

    def apply(self, update: BookUpdate) -> bool:
        """Apply a snapshot or delta; returns False (and marks the book gapped) on a sequence gap."""
        if update.snapshot:
            self.bids = update.bids
            self.asks = update.asks
            self.gapped = False
        else:
            start = update.sequence_start if update.sequence_start is not None else update.sequence
            if self.gapped or start > self.sequence + 1:
                self.gapped = True
                return False
            if update.sequence <= self.sequence:
                return True  # already contained in the snapshot
            if update.bids:
                self.bids = _merge(self.bids, update.bids, descending=True)
            if update.asks:
                self.asks = _merge(self.asks, update.asks, descending=False)
        self.sequence = update.sequence
        self.exchange_ts_ms = update.exchange_ts_ms
        self.received_at = update.received_at
        return True

    def mark_gapped(self) -> None:
        self.gapped = True


def _price(level: Level) -> float:
    return level[0]


def _neg_price(level: Level) -> float:
    return -level[0]


def _merge(current: list[Level] | tuple[Level, ...], changes: tuple[Level, ...], *,
           descending: bool) -> list[Level]:
    levels = current if type(current) is list else list(current)
    key, sign = (_neg_price, -1.0) if descending else (_price, 1.0)
    for price, size in changes:
        i = bisect_left(levels, sign * price, key=key)
        if i < len(levels) and levels[i][0] == price:
            if size == 0:
                del levels[i]
            else:
                levels[i] = (price, size)
        elif size != 0:
            levels.insert(i, (price, size))
    return levels


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a book may be (seconds) before it stops being tradeable."""

    max_age: float = 2.0


def tradeable(book: Book | None, now: float, freshness: Freshness) -> str | None:
    """``None`` when the book may be traded on, else the reason it may not ("stale_book", ...)."""
    if book is None or book.gapped or not book.bids or not book.asks:
        return "stale_book"
    if book.crossed:
        return "crossed_book"
    if book.age(now) > freshness.max_age:
        return "stale_book"
    return None


class BookStore:
    """Every book the engine holds, keyed by (venue, symbol)."""

    def __init__(self) -> None:
        self._books: dict[MarketKey, Book] = {}
        self._by_venue: dict[str, dict[str, Book]] = {}  # the same books, found without building a key
        self._liveness: dict[str, StreamLiveness] = {}

    def get(self, key: MarketKey) -> Book | None:
        return self._books.get(key)

    def liveness(self, venue: str) -> StreamLiveness:
        """The liveness of ``venue``'s book stream; its feed sets ``alive_at`` on every message."""
        live = self._liveness.get(venue)
        if live is None:
            live = self._liveness[venue] = StreamLiveness()
        return live

    def apply(self, update: BookUpdate) -> Book:
        """Apply ``update`` to its market's book (created on first sight) and return the book.

        Every ticker:all push comes through here (12,500 a second for KuCoin's whole market), so the
        snapshot case, nearly all of them, is :meth:`Book.apply`'s first branch inlined: the call and the
        (venue, symbol) key it saves were 8 % of decoding and applying a push (benchmarks/ws_decode.py).
        """
        books = self._by_venue.get(update.venue)
        book = None if books is None else books.get(update.symbol)
        if book is None:
            book = self._add(update.venue, update.symbol)
        if update.snapshot:
            book.bids = update.bids
            book.asks = update.asks
            book.gapped = False
            book.sequence = update.sequence
            book.exchange_ts_ms = update.exchange_ts_ms
            book.received_at = update.received_at
        else:
            book.apply(update)
        return book

    def _add(self, venue: str, symbol: str) -> Book:
        book = self._books[(venue, symbol)] = Book(venue, symbol, self.liveness(venue))
        self._by_venue.setdefault(venue, {})[symbol] = book
        return book

    def __len__(self) -> int:
        return len(self._books)

    def __iter__(self):
        return iter(self._books.values())
