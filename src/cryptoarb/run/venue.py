"""The KuCoin venue of ``cryptoarb run``: REST through :class:`KucoinRest`, market data through the native
websocket client, orders only acknowledged while the private stream pushes their state, and network
failures worded as one line that names the host.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from urllib.parse import urlsplit

import aiohttp

from cryptoarb.model import Balance, BookUpdate, Market, Order, OrderResult, Ticker
from cryptoarb.venues.kucoin.rest import KucoinRest

_URL = re.compile(r"(?:https?|wss?)://[^\s'\"]+")


class KucoinVenue:
    """The ``Venue`` protocol over :class:`KucoinRest`. Book streams are not pulled through
    :meth:`stream_books`: the runner drives :class:`~cryptoarb.venues.kucoin.ws.KucoinMarketData`, which
    pushes into the engine's hot path.

    With ``pushes_live``, an order sent while the private stream is live is only acknowledged
    (:meth:`KucoinRest.acknowledge_order`: no REST lookup after the POST); its final state arrives pushed.
    While the stream is down, orders go through :meth:`KucoinRest.place_order`, whose answer holds the
    final state (learnt over REST). ``placements`` counts both ways (``ack``, ``rest``).
    """

    def __init__(self, rest: KucoinRest, name: str = "kucoin", *,
                 pushes_live: Callable[[], bool] | None = None) -> None:
        self.rest = rest
        self.name = name
        self.pushes_live = pushes_live
        self.placements: Counter[str] = Counter()

    async def load_markets(self) -> list[Market]:
        return await self.rest.load_markets()

    async def fetch_tickers(self) -> list[Ticker]:
        return await self.rest.fetch_tickers()

    async def fetch_book(self, symbol: str, depth: int = 20) -> BookUpdate:
        return await self.rest.fetch_book(symbol, depth)

    def stream_books(self, symbols: Collection[str] | None = None) -> AsyncIterator[list[BookUpdate]]:
        raise NotImplementedError("cryptoarb run streams KuCoin through KucoinMarketData")

    async def fetch_balances(self) -> list[Balance]:
        return await self.rest.fetch_balances()

    async def place_order(self, order: Order) -> OrderResult:
        if self.pushes_live is not None and self.pushes_live():
            self.placements["ack"] += 1
            return await self.rest.acknowledge_order(order)
        self.placements["rest"] += 1
        return await self.rest.place_order(order)

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        await self.rest.cancel_order(symbol, client_oid)

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        return await self.rest.fetch_order(symbol, client_oid)

    async def close(self) -> None:
        await self.rest.close()


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.hostname or url


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen and len(seen) < 10:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


def describe_failure(exc: BaseException, url: str | None = None) -> str:
    """``cannot reach HOST: WHY`` for a network failure anywhere in ``exc``'s chain, else its own message.

    Works through ccxt's and our adapters' wrapping (the root cause is kept as ``__cause__`` /
    ``__context__``): DNS failures, refused connections, timeouts, TLS errors.
    """
    chain = _chain(exc)
    if url is None:
        for node in chain:
            match = _URL.search(str(node))
            if match:
                url = match.group(0)
                break
    host = None
    for node in chain:
        if isinstance(node, aiohttp.ClientConnectorError):
            host = node.host
            break
    if host is None and url is not None:
        host = host_of(url)
    why = _reason(chain)
    if host and why:
        return f"cannot reach {host}: {why}"
    text = str(exc) or type(exc).__name__
    return f"{host}: {text}" if host and host not in text else text


def _reason(chain: list[BaseException]) -> str | None:
    for node in reversed(chain):  # the root cause first
        if isinstance(node, socket.gaierror):
            return f"DNS lookup failed ({node.strerror or node})"
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, ssl.SSLError | ssl.CertificateError):
            return f"TLS error ({node})"
        if isinstance(node, TimeoutError | aiohttp.ServerTimeoutError):
            return "timed out"
        if isinstance(node, OSError) and node.errno is not None:
            return node.strerror or str(node)
    for node in chain:
        if isinstance(node, aiohttp.ClientConnectorError):
            return str(node.os_error) if node.os_error else "connection failed"
        if isinstance(node, aiohttp.ServerDisconnectedError):
            return "server disconnected"
        if isinstance(node, aiohttp.ClientError | OSError):
            return str(node) or type(node).__name__
    return None


def is_network_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the venue could not be reached or did not answer."""
    retryable = bool(getattr(exc, "retryable", False))
    return retryable or any(isinstance(n, aiohttp.ClientError | OSError | TimeoutError) for n in _chain(exc))
