"""OrderWire (our own signed order request on our own keep-alive connections) against raw HTTP servers on
loopback that behave as real ones do at their worst: keep-alive reuse, ``Connection: close``, chunked
answers, a connection dropped without an answer, an answer that never comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import ccxt.async_support as ccxt_async
import orjson
import pytest
from ccxt.base import errors as ccxt_errors

from cryptoarb.venues.kucoin.order_wire import HF_ORDERS, OrderWire
from cryptoarb.venues.kucoin.signing import Credentials, verify

CREDS = Credentials("wire-key", "wire-secret", "wire-passphrase")
BODY = {"clientOid": "op1-L0", "side": "buy", "symbol": "BTC-USDT", "type": "limit", "price": "67000.1",
        "size": "0.001", "timeInForce": "IOC"}
OK = b'{"code":"200000","data":{"orderId":"x1","clientOid":"op1-L0"}}'

Handler = Callable[[dict[str, str], bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request (headers with lower-case names, body); returns whether to keep the connection."""


@asynccontextmanager
async def http_server(handler: Handler, idle_close_s: float | None = None) -> AsyncIterator[tuple[str, list[int]]]:
    """A minimal HTTP/1.1 server; yields its base URL and, per request, the number of its connection. With
    ``idle_close_s`` it closes a connection that carried no request for that long, as exchanges do."""
    connections: list[int] = []
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        mine = count
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle_close_s)
                except TimeoutError:
                    break
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                headers[":target"] = lines[0].split(" ")[1]
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                connections.append(mine)
                if not await handler(headers, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


def respond(writer: asyncio.StreamWriter, body: bytes, *, status: str = "200 OK", close: bool = False,
            chunked: bool = False) -> None:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    head += "Connection: close\r\n" if close else ""
    if chunked:
        half = len(body) // 2
        payload = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:half], body[half:])) + b"0\r\n\r\n"
        writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + payload)
    else:
        writer.write((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)


@asynccontextmanager
async def wire_to(url: str, timeout_s: float = 5.0) -> AsyncIterator[OrderWire]:
    ex = ccxt_async.kucoin({"apiKey": CREDS.key, "secret": CREDS.secret, "password": CREDS.passphrase})
    ex.urls["api"]["private"] = url
    wire = OrderWire(ex, timeout_s)
    try:
        yield wire
    finally:
        await wire.close()
        await ex.close()


async def test_orders_are_signed_as_kucoin_checks_and_reuse_one_connection() -> None:
    seen: list[tuple[str, dict]] = []

    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        now_ms = int(headers["kc-api-timestamp"])
        problem = verify({k.upper(): v for k, v in headers.items()}, "POST", headers[":target"], body.decode(),
                         CREDS, now_ms)
        seen.append((headers[":target"], orjson.loads(body)))
        respond(writer, OK if problem is None else orjson.dumps({"code": problem.code, "msg": problem.msg}),
                status="200 OK" if problem is None else "401 Unauthorized")
        return True

    async with http_server(handler) as (url, connections), wire_to(url) as wire:
        await wire.warm()
        written: list[int] = []
        wire.on_write = written.append
        first = await wire.place(BODY, hf=True)
        second = await wire.place({**BODY, "clientOid": "op1-L1"}, hf=False)
    assert first["data"]["orderId"] == "x1" and second["code"] == "200000"
    assert [t for t, _ in seen] == [HF_ORDERS, "/api/v1/orders"]
    assert seen[0][1] == BODY  # the exact strings: nothing re-rounded
    assert connections == [1, 1]  # the warmed connection carried both
    assert len(written) == 2 and all(n > 400 for n in written)  # each whole request, once


async def test_a_wrong_secret_is_refused_with_kucoins_signature_error() -> None:
    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        problem = verify({k.upper(): v for k, v in headers.items()}, "POST", headers[":target"], body.decode(),
                         Credentials(CREDS.key, "the-real-secret", CREDS.passphrase), int(headers["kc-api-timestamp"]))
        assert problem is not None
        respond(writer, orjson.dumps({"code": problem.code, "msg": problem.msg}), status="401 Unauthorized")
        return True

    async with http_server(handler) as (url, _), wire_to(url) as wire:
        with pytest.raises(ccxt_errors.AuthenticationError) as info:
            await wire.place(BODY, hf=True)
    assert "400005" in str(info.value) and CREDS.secret not in str(info.value)


async def test_connection_close_and_chunked_answers_then_a_fresh_connection() -> None:
    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        respond(writer, OK, close=True, chunked=True)
        await writer.drain()
        return False

    async with http_server(handler) as (url, connections), wire_to(url) as wire:
        for _ in range(3):
            assert (await wire.place(BODY, hf=True))["data"]["clientOid"] == "op1-L0"
    assert connections == [1, 2, 3]


async def test_a_rate_limit_answer_raises_ccxts_rate_limit_error() -> None:
    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        respond(writer, b'{"code":"429000","msg":"Too Many Requests"}', status="429 Too Many Requests")
        return True

    async with http_server(handler) as (url, _), wire_to(url) as wire:
        with pytest.raises(ccxt_errors.RateLimitExceeded):
            await wire.place(BODY, hf=True)


async def test_a_connection_dropped_without_an_answer_is_a_network_error_and_the_next_order_reconnects() -> None:
    answered = 0

    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal answered
        if orjson.loads(body)["clientOid"] == "drop":
            return False  # closes the socket: the client cannot know whether the order was taken
        answered += 1
        respond(writer, OK)
        return True

    async with http_server(handler) as (url, connections), wire_to(url) as wire:
        await wire.place(BODY, hf=True)
        with pytest.raises(ccxt_errors.NetworkError):
            await wire.place({**BODY, "clientOid": "drop"}, hf=True)
        await wire.place(BODY, hf=True)
    assert answered == 2 and connections == [1, 1, 2]


async def test_an_answer_that_never_comes_times_out_and_the_connection_is_not_reused() -> None:
    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        if orjson.loads(body)["clientOid"] == "hang":
            return True  # keeps the connection open and never answers
        respond(writer, OK)
        return True

    async with http_server(handler) as (url, connections), wire_to(url, timeout_s=0.2) as wire:
        with pytest.raises(ccxt_errors.RequestTimeout):
            await wire.place({**BODY, "clientOid": "hang"}, hf=True)
        await wire.place(BODY, hf=True)  # a late answer on the old connection can never be taken for this one
    assert connections == [1, 2]


async def test_an_unreachable_host_is_a_network_error_naming_it() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nothing listens there now
    async with wire_to(f"http://127.0.0.1:{port}") as wire:
        with pytest.raises(ccxt_errors.ExchangeNotAvailable) as info:
            await wire.place(BODY, hf=True)
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_keep_alive_keeps_the_connection_an_exchange_would_close_when_idle() -> None:
    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        respond(writer, b'{"code":"200000","data":1700000000000}' if headers[":target"].endswith("/timestamp")
                else OK)
        return True

    async with http_server(handler, idle_close_s=0.3) as (url, connections), wire_to(url) as wire:
        await wire.warm()
        keeper = asyncio.create_task(wire.keep_alive(0.05))
        try:
            async with asyncio.timeout(30):
                while wire.pings < 10:  # well past the server's idle timeout
                    await asyncio.sleep(0.01)
            await wire.place(BODY, hf=True)
        finally:
            keeper.cancel()
    assert set(connections) == {1}  # pings and the order, all on the first connection: no new handshake
    assert len(connections) >= 11


@pytest.mark.parametrize(("credential", "value", "shown", "hidden"), [
    ("apiKey", "key\r\nX-Injected: 1", "KC-API-KEY", "Injected"),  # a header it cannot carry
    ("secret", "", "secret", None),  # missing
])
async def test_a_bad_credential_is_refused_before_anything_is_sent(credential: str, value: str, shown: str,
                                                                   hidden: str | None) -> None:
    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        respond(writer, OK)
        return True

    async with http_server(handler) as (url, connections), wire_to(url) as wire:
        setattr(wire._ex, credential, value)
        with pytest.raises(ccxt_errors.AuthenticationError) as info:
            await wire.place(BODY, hf=True)
    assert connections == [] and shown in str(info.value)
    assert hidden is None or hidden not in str(info.value)


async def test_new_credentials_on_the_exchange_object_sign_the_next_order() -> None:
    """The wire keeps what it derives from the credentials (signing key states, passphrase HMAC, headers);
    credentials set anew on the exchange object are the ones the next order is signed with."""
    creds = [Credentials("first-key", "first-secret", "first-passphrase")]

    async def handler(headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        problem = verify({k.upper(): v for k, v in headers.items()}, "POST", headers[":target"], body.decode(),
                         creds[0], int(headers["kc-api-timestamp"]))
        respond(writer, OK if problem is None else orjson.dumps({"code": problem.code, "msg": problem.msg}),
                status="200 OK" if problem is None else "401 Unauthorized")
        return True

    async with http_server(handler) as (url, _), wire_to(url) as wire:
        answers = []
        for key, secret, passphrase in (("first-key", "first-secret", "first-passphrase"),
                                        ("second-key", "second-secret", "second-passphrase")):
            creds[0] = Credentials(key, secret, passphrase)
            wire._ex.apiKey, wire._ex.secret, wire._ex.password = key, secret, passphrase
            answers.append(await wire.place({**BODY, "clientOid": key}, hf=False))
    assert [a["code"] for a in answers] == ["200000", "200000"]
