"""Matching on one side of a book held as integer ticks and integer size increments ("units").

A side is the makers' quoted levels minus what takers have eaten from its top and makers have not yet
replenished (``depleted`` units). Integers keep matching exact; prices and sizes become floats only
when a snapshot or fill leaves the market.
"""

from __future__ import annotations


def live_side(ticks: list[int], units: list[int], depleted: int) -> tuple[list[int], list[int]]:
    """The side as takers see it: ``depleted`` units removed from the top levels."""
    if depleted <= 0:
        return ticks, units
    for i, size in enumerate(units):
        if size > depleted:
            return ticks[i:], [size - depleted, *units[i + 1:]]
        depleted -= size
    return [], []


def take(ticks: list[int], units: list[int], limit: int, want: int, *, buy: bool) -> list[tuple[int, int]]:
    """Walk a live side from the top: asks up to ``limit`` for a buy, bids down to it for a sell.

    Returns the (tick, units) taken, at most ``want`` units in all.
    """
    fills: list[tuple[int, int]] = []
    for tick, size in zip(ticks, units, strict=True):
        if want <= 0 or (tick > limit if buy else tick < limit):
            break
        n = min(size, want)
        fills.append((tick, n))
        want -= n
    return fills


class Depletion:
    """Units taken from each side's top, given back linearly so a side is whole ``refill_s`` after its
    last take."""

    __slots__ = ("ask", "ask_rate", "bid", "bid_rate")

    def __init__(self) -> None:
        self.bid = 0.0
        self.ask = 0.0
        self.bid_rate = 0.0
        self.ask_rate = 0.0

    def add(self, *, buy: bool, units: int, refill_s: float) -> None:
        if buy:  # a buy eats asks
            self.ask += units
            self.ask_rate = self.ask / refill_s
        else:
            self.bid += units
            self.bid_rate = self.bid / refill_s

    def refill(self, dt: float) -> bool:
        """Give back ``dt`` seconds' worth; True once nothing is missing any more."""
        self.bid = max(0.0, self.bid - self.bid_rate * dt)
        self.ask = max(0.0, self.ask - self.ask_rate * dt)
        return self.bid == 0.0 and self.ask == 0.0

    @property
    def bid_units(self) -> int:
        return int(self.bid)

    @property
    def ask_units(self) -> int:
        return int(self.ask)
