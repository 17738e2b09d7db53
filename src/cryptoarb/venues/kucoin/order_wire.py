"""The order request itself: signed by us and written on our own keep-alive connection the moment it is built.

ccxt stays the REST client for everything else (markets, fees, books, balances, lookups, cancels). Only
``POST /api/v1[/hf]/orders`` skips ccxt's generic pipeline and aiohttp's client: between them they
spent more than the whole engine on the tick-to-order path, and on Python 3.11 aiohttp writes a request
body from a task of its own, a loop turn later (benchmarks/tick_to_order.py ``--sim-server`` against
``--ccxt-orders`` prints both). Here the request's bytes go to the socket inside :meth:`OrderWire.place`,
before its first ``await``. Responses are parsed by h11 (HTTP/1.1, keep-alive, chunked bodies).

Kept from ccxt, so behaviour does not fork: the base URL, the credentials and the error mapping
(``handle_errors`` and ``handle_http_status_code`` raise the same ccxt exception classes a ccxt call
would, which :class:`~cryptoarb.venues.kucoin.rest.KucoinRest` already maps; a connection lost before
an answer is a ccxt ``NetworkError``, after which the order is looked up by client order id). Not kept:
ccxt's proxy settings and its client-side throttle (a bot must not queue its own orders behind its
market-data requests; KuCoin's 429000 is retried with the same client order id by the executor).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import Any

import h11
import orjson
import yarl
from ccxt.base import errors as ccxt_errors

from cryptoarb.venues.kucoin.signing import HmacSha256

HF_ORDERS = "/api/v1/hf/orders"
ORDERS = "/api/v1/orders"
TIMESTAMP = "/api/v1/timestamp"
USER_AGENT = "cryptoarb"

Answer = tuple[int, str, dict[str, str], bytes]
"""HTTP status, reason, headers (lower-case names), body."""

_POST = h11.Request(method="POST", target="/", headers=[("Host", "order"), ("Content-Length", "0")])
"""What h11 is told went out when an order's request is serialised by hand (see ``_Connection.send_raw``)."""


def _host(url: yarl.URL) -> str:
    """The ``Host`` header for ``url`` (with the port when it is not the scheme's default)."""
    return url.host_port_subcomponent or url.host or ""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.h11 = h11.Connection(h11.CLIENT)
        self.answer: asyncio.Future[Answer] | None = None
        self.closed = False
        self._head: h11.Response | None = None
        self._body = bytearray()

    @property
    def idle(self) -> bool:
        return (not self.closed and self.answer is None and self.transport is not None
                and self.h11.our_state is h11.IDLE and self.h11.their_state is h11.IDLE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: h11.Request, body: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Answer]:
        """A request built and checked by h11 (the keep-alive ping)."""
        data = self.h11.send(request) + self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        return self.send_raw(data, loop)

    def send_raw(self, data: bytes, loop: asyncio.AbstractEventLoop, on_write: Callable[[int], None] | None = None,
                 *, as_post: bool = False) -> asyncio.Future[Answer]:
        """``data``: a whole request serialised by the caller; with ``as_post``, h11 is told a body-less POST
        went out, which is all it needs to read the answer (method, HTTP/1.1, keep-alive)."""
        assert self.transport is not None
        if on_write is not None:
            on_write(len(data))
        self.transport.write(data)  # first: no answer can be read before this returns to the loop
        if as_post:
            self.h11.send(_POST)
            self.h11.send(h11.EndOfMessage())
        self.answer = loop.create_future()
        self._head, self._body = None, bytearray()
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        try:
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    self._head = event
                elif isinstance(event, h11.Data):
                    self._body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self._answered()
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    self._lost(ConnectionError("the server closed the connection"))
                    return
        except h11.RemoteProtocolError as exc:
            self._lost(ConnectionError(f"malformed HTTP answer: {exc}"))

    def _answered(self) -> None:
        head, answer = self._head, self.answer
        self.answer = None
        if answer is not None and head is not None and not answer.done():
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
            answer.set_result((head.status_code, head.reason.decode("latin-1"), headers, bytes(self._body)))
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:  # the server asked to close: this connection is done
                self.close()
        else:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))

    def _lost(self, exc: Exception) -> None:
        self.close()
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class OrderWire:
    """Signs and sends ``POST /api/v1[/hf]/orders`` for one ccxt kucoin exchange object, on connections of
    its own to the exchange's private REST host (opened on first use or by :meth:`warm`, then kept)."""

    def __init__(self, exchange: Any, timeout_s: float) -> None:
        self._ex = exchange
        self._timeout_s = timeout_s
        # built from the credentials once, and again if they change on the exchange object
        self._credentials: tuple[Any, Any, Any] | None = None
        self._signer: HmacSha256 | None = None
        self._heads: dict[str, bytes] = {}  # per order path: request line and the fixed headers
        self._connections: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = None
        self.pings = 0
        """Keep-alive rounds done (:meth:`keep_alive`)."""
        self.on_write: Callable[[int], None] | None = None
        """Called with the request's size right before its bytes are handed to the socket (benchmarks)."""

    async def warm(self) -> None:
        """Open a connection now, so the first order does not pay for the handshake."""
        if not any(c.idle for c in self._connections):
            self._connections.append(await self._connect())

    async def keep_alive(self, interval_s: float = 20.0) -> None:
        """Run as a task: every ``interval_s``, a cheap ``GET /api/v1/timestamp`` on each idle connection (or
        a new connection when none is open), so an exchange that closes idle keep-alive connections never
        leaves the next order to pay for a TCP and TLS handshake."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s)
            idle = [c for c in self._connections if c.idle]
            if not idle:
                with contextlib.suppress(OSError):
                    await self.warm()
                continue
            url = self._url()
            ping = h11.Request(method="GET", target=url.path.rstrip("/") + TIMESTAMP,
                               headers=[("Host", _host(url)),
                                        ("User-Agent", USER_AGENT), ("Content-Length", "0")])
            for conn in idle:
                if not conn.idle:
                    continue  # an order took it meanwhile
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await conn.send(ping, b"", loop)
                except (OSError, TimeoutError):
                    conn.close()
            self._connections = [c for c in self._connections if not c.closed]
            self.pings += 1

    async def close(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()

    async def place(self, body: dict[str, str], *, hf: bool) -> dict[str, Any]:
        """Send one order; KuCoin's JSON answer, or the ccxt exception a ccxt call would raise."""
        ex = self._ex
        path = HF_ORDERS if hf else ORDERS
        data = orjson.dumps(body)
        ts = b"%d" % int(time.time() * 1000)
        if (ex.apiKey, ex.secret, ex.password) != self._credentials:
            self._signed_by_new_credentials()
        head = self._heads.get(path) or self._head_for(path)
        assert self._signer is not None  # made with the head
        sign = self._signer.b64(ts + b"POST" + path.encode() + data)  # as ccxt: the endpoint, not the base path
        request = b"%sContent-Length: %d\r\nKC-API-TIMESTAMP: %s\r\nKC-API-SIGN: %s\r\n\r\n%s" % (
            head, len(data), ts, sign, data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        conn = next((c for c in self._connections if c.idle), None)
        try:
            # on a kept connection the bytes go out first; the timeout's timer is set after them
            answer = None if conn is None else conn.send_raw(request, loop, self.on_write, as_post=True)
            async with asyncio.timeout_at(deadline):
                if answer is None:
                    conn = await self._connect()
                    self._connections.append(conn)
                    answer = conn.send_raw(request, loop, self.on_write, as_post=True)
                status, reason, response_headers, raw = await answer
        except TimeoutError as exc:
            if conn is not None:
                conn.close()  # an answer may still come: this connection no longer knows which request it is for
            raise ccxt_errors.RequestTimeout(self._where(path)) from exc
        except OSError as exc:  # ConnectionError included
            raise ccxt_errors.ExchangeNotAvailable(f"{self._where(path)}: {exc}") from exc
        finally:
            self._connections = [c for c in self._connections if not c.closed]
        text = raw.decode("utf-8", "replace")
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        url = ex.urls["api"]["private"]
        ex.handle_errors(status, reason, url, "POST", response_headers, text, parsed, None, data.decode())
        ex.handle_http_status_code(status, reason, url, "POST", text)
        if not isinstance(parsed, dict):
            raise ccxt_errors.BadResponse(f"{self._where(path)}: {text[:200]}")
        return parsed

    def _url(self) -> yarl.URL:
        """The private REST base URL, read from ccxt each time (it is where the user pointed it)."""
        return yarl.URL(self._ex.urls["api"]["private"])

    def _where(self, path: str) -> str:
        url = self._url()
        return f"kucoin POST {url.with_path(url.path.rstrip('/') + path)}"

    def _head_for(self, path: str) -> bytes:
        """The request line and the headers that are the same for every order (built once, checked once:
        what h11 would refuse to send is refused here)."""
        ex = self._ex
        ex.check_required_credentials()  # before the first order on this path; the head holds them from then on
        url = self._url()
        if self._signer is None:
            self._signer = HmacSha256(ex.secret)
        passphrase = self._signer.b64(ex.password.encode()).decode()  # key version 2: the passphrase is signed
        fields = [("Host", _host(url)), ("User-Agent", USER_AGENT),
                  ("Content-Type", "application/json"), ("KC-API-KEY", ex.apiKey),
                  ("KC-API-PASSPHRASE", passphrase), ("KC-API-KEY-VERSION", "2")]
        for name, value in fields:
            if not value.isascii() or not value.isprintable():
                raise ccxt_errors.AuthenticationError(f"kucoin: {name} holds characters an HTTP header cannot carry")
        target = url.path.rstrip("/") + path
        head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
        self._heads[path] = head.encode()
        return self._heads[path]

    def _signed_by_new_credentials(self) -> None:
        ex = self._ex
        self._credentials = (ex.apiKey, ex.secret, ex.password)
        self._signer = None
        self._heads.clear()

    async def _connect(self) -> _Connection:
        url = self._url()
        tls = url.scheme == "https"
        if tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, url.host, url.port,
                                                   ssl=self._ssl if tls else None)
        except OSError as exc:
            raise ConnectionError(f"cannot reach {url.host}:{url.port}: {exc}") from exc
        return conn  # asyncio sets TCP_NODELAY: an order is one small write, never held back by Nagle
