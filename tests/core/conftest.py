"""Hand-built markets and books for the core tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import pytest

from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate, FeeCurrency, Market

BookLevels = tuple[tuple[float, float], ...]


def make_market(base: str, quote: str, venue: str = "x", *, inc: str = "0.0001", fee: str = "0.001",
                fee_currency: FeeCurrency = "quote", min_size: str = "0", min_funds: str = "0",
                enabled: bool = True) -> Market:
    return Market(venue=venue, symbol=f"{base}-{quote}", base=base, quote=quote,
                  price_tick=Decimal("0.00001"),
                  size_increment=Decimal(inc), min_size=Decimal(min_size), min_funds=Decimal(min_funds),
                  taker_fee=Decimal(fee), maker_fee=Decimal(fee), fee_currency=fee_currency, enabled=enabled)


def make_books(books: dict[tuple[str, str], tuple[BookLevels, BookLevels]], at: float = 0.0) -> BookStore:
    """``{(venue, symbol): (bids, asks)}`` as a BookStore received at ``at``."""
    store = BookStore()
    for (venue, symbol), (bids, asks) in books.items():
        store.apply(BookUpdate(venue, symbol, tuple(bids), tuple(asks), 1, 0, at))
    return store


QUOTES = ("USDT", "USDC", "BTC", "ETH", "KCS", "TRX", "DAI")


def kucoin_like_markets(pairs: int = 1250, assets: int = 420, venue: str = "kucoin",
                        seed: int = 7) -> list[Market]:
    """Every base against USDT, some against 1-3 more quotes, plus the quote-quote crosses."""
    rng = random.Random(seed)
    bases = [f"C{i:03d}" for i in range(assets)]
    chosen = dict.fromkeys([("BTC", "USDT"), ("ETH", "USDT"), ("ETH", "BTC"), ("USDC", "USDT"),
                            ("KCS", "USDT"), ("KCS", "BTC"), ("TRX", "USDT"), ("TRX", "BTC"),
                            ("DAI", "USDT"), ("BTC", "USDC"), ("ETH", "USDC"), ("KCS", "ETH")])
    chosen |= dict.fromkeys((b, "USDT") for b in bases)
    while len(chosen) < pairs:
        chosen[(rng.choice(bases), rng.choices(QUOTES[1:], (15, 35, 25, 10, 10, 5))[0])] = None
    return [make_market(b, q, venue) for b, q in chosen]


@pytest.fixture(scope="session")
def market() -> Callable[..., Market]:
    return make_market


@pytest.fixture(scope="session")
def books() -> Callable[..., BookStore]:
    return make_books


@pytest.fixture(scope="session")
def kucoin_like() -> Callable[..., list[Market]]:
    return kucoin_like_markets
