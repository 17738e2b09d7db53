"""USD value of an asset from the books the engine holds (USDT is the dollar; no hidden prices)."""

from __future__ import annotations

from cryptoarb.core.books import BookStore

USD_LIKE = frozenset({"USDT", "USDC", "DAI", "USD", "BUSD", "TUSD", "FDUSD"})
BRIDGES = ("BTC", "ETH", "USDC")


class UsdPricer:
    """Mid-price valuation: asset-USDT directly, else through a bridge asset (BTC, ETH, USDC)."""

    def __init__(self, books: BookStore, symbols: set[tuple[str, str]]) -> None:
        self._books = books
        self._symbols = symbols  # (venue, symbol) that exist

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
        if asset in USD_LIKE:
            return 1.0
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
