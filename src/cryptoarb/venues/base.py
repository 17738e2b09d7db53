"""The ``Venue`` protocol: everything the engine asks of an exchange, and nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from decimal import Decimal
from typing import Protocol, runtime_checkable

from cryptoarb.model import Balance, BookUpdate, Market, Order, OrderResult, Side, Ticker


class VenueError(Exception):
    """A venue could not do what was asked; the message is safe to show (never holds secrets)."""


@runtime_checkable
class Venue(Protocol):
    name: str

    async def load_markets(self) -> list[Market]:
        """Every spot market with its rules and this account's taker/maker fees."""
        ...

    async def fetch_tickers(self) -> list[Ticker]:
        """Top of book of every market in one request."""
        ...

    async def fetch_book(self, symbol: str, depth: int = 20) -> BookUpdate:
        """A snapshot of one book, ``depth`` levels a side."""
        ...

    def stream_books(self, symbols: Collection[str] | None = None) -> AsyncIterator[list[BookUpdate]]:
        """Book updates in batches (one batch per frame burst); ``None`` means every market."""
        ...

    async def fetch_balances(self) -> list[Balance]:
        ...

    async def place_order(self, order: Order) -> OrderResult:
        """Send one limit IOC order; retrying with the same ``client_oid`` never doubles it."""
        ...

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        ...

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        ...

    async def close(self) -> None:
        ...


@runtime_checkable
class LiquidityConsumer(Protocol):
    """A venue whose book paper fills may take from (simulated venues), so two bots can't both take it."""

    def consume(self, symbol: str, side: Side, limit_price: Decimal, size: Decimal) -> list[tuple[float, float]]:
        """Take liquidity as a taker order would; returns the (price, size) taken."""
        ...
