"""USD value of an asset from the books the engine holds (USDT is the dollar; no hidden prices)."""

from __future__ import annotations

from cryptoarb.core.books import BookStore

USD_LIKE = frozenset({"USDT", "USDC", "DAI", "USD", "BUSD", "TUSD", "FDUSD"})
BRIDGES = ("BTC", "ETH", "USDC")


class UsdPricer:
    """Mid-price valuation: asset-USDT directly, else through a bridge asset (BTC, ETH, USDC).

    With several venues an asset has one value whichever venue holds it: it is priced on the first
    venue that can price it, venues taken by number of markets (most first), then name. Valuing BTC on
    each venue at that venue's own price would book a cross-exchange trade's gain (bought cheap here,
    sold dear there) as a loss of the fees; and a venue listing only BTC-EUR could not price BTC at all.
    """

    def __init__(self, books: BookStore, symbols: set[tuple[str, str]]) -> None:
        self._books = books
        self._symbols = symbols  # (venue, symbol) that exist
        count: dict[str, int] = {}
        for venue, _ in symbols:
            count[venue] = count.get(venue, 0) + 1
        self._venues = sorted(count, key=lambda v: (-count[v], v))

    def _mid(self, venue: str, base: str, quote: str) -> float | None:
        key = (venue, f"{base}-{quote}")
        if key in self._symbols:
            book = self._books.get(key)
            if book is not None and book.bids and book.asks:
                return (book.bids[0][0] + book.asks[0][0]) / 2
        key = (venue, f"{quote}-{base}")
        if key in self._symbols:
            book = self._books.get(key)
            if book is not None and book.bids and book.asks:
                return 2 / (book.bids[0][0] + book.asks[0][0])
        return None

    def __call__(self, venue: str, asset: str) -> float | None:
        """USD per unit of ``asset`` (held on ``venue``; the value is the same on every venue)."""
        if asset in USD_LIKE:
            return 1.0
        if len(self._venues) <= 1:
            return self._on(venue, asset)
        for where in self._venues:
            if (price := self._on(where, asset)) is not None:
                return price
        return None

    def _on(self, venue: str, asset: str) -> float | None:
        direct = self._mid(venue, asset, "USDT")
        if direct is not None:
            return direct
        for bridge in BRIDGES:
            via = self._mid(venue, asset, bridge)
            if via is not None:
                bridge_usd = 1.0 if bridge in USD_LIKE else self._mid(venue, bridge, "USDT")
                if bridge_usd is not None:
                    return via * bridge_usd
        return None
