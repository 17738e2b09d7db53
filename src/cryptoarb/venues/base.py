"""The ``Venue`` protocol: everything the engine asks of an exchange, and nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from cryptoarb.model import Balance, BookUpdate, Fill, Market, Order, OrderResult, OrderStatus, Side, Ticker


class VenueError(Exception):
    """A venue could not do what was asked; the message is safe to show (never holds secrets)."""


class RetryableVenueError(VenueError):
    """The request may not have been processed, and trying again later can help: HTTP 429 / KuCoin
    ``429000`` (rate limited), a timeout, a 5xx, a dropped connection.

    ``unprocessed``: the venue said it did not process the request (a rate limit), so an order may be sent
    again at once. Otherwise (a timeout, a 5xx, a dropped connection) the request may still land: executors
    look the order up by client order id until it has had time to, before sending it again, since not every
    venue promises to answer a repeated client order id with the existing order. Adapters may instead raise
    any ``VenueError`` whose ``retryable`` (and ``unprocessed``) attributes are true (e.g.
    ``venues.kucoin.rest.KucoinRateLimited``); executors treat both alike (:func:`is_retryable`,
    :func:`surely_unprocessed`).
    """

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, unprocessed: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.unprocessed = unprocessed


class OrderNotFoundError(VenueError):
    """The venue does not know this client order id (it was never placed, or has been purged)."""


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` says the request may be tried again (see :class:`RetryableVenueError`)."""
    return isinstance(exc, RetryableVenueError | TimeoutError) or bool(getattr(exc, "retryable", False))


def surely_unprocessed(exc: BaseException) -> bool:
    """Whether ``exc`` says the venue did not process the request (a rate limit), rather than that its fate is
    unknown (a timeout, a 5xx, a dropped connection)."""
    return bool(getattr(exc, "unprocessed", False))


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A pushed change of one of our orders (a private websocket: KuCoin ``/spotMarket/tradeOrdersV2``).

    ``fills`` are the fills this message reports that earlier ones did not (a ``match`` event); ``final``
    says the order will not change any more (``done``: filled or canceled, which is where every IOC order
    ends). ``filled_size`` is the venue's cumulative filled size, to detect a missed message.
    """

    venue: str
    symbol: str
    client_oid: str
    status: OrderStatus
    filled_size: Decimal
    fills: tuple[Fill, ...] = ()
    final: bool = False
    at: float = 0.0
    reason: str = ""


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


@runtime_checkable
class OrderUpdateSource(Protocol):
    """A venue that pushes the state of our orders (private websocket); executors fall back to
    ``fetch_order`` (REST) when a push does not come in time."""

    def order_updates(self) -> AsyncIterator[OrderUpdate]:
        """Every update of this account's orders, in the order the venue sent them, until closed."""
        ...
