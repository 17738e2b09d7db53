"""Sliced websocket reads: every frame arrives, in order, and a burst is handled a slice per loop turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from cryptoarb.run.transport import SlicedReads, SlicingSession

FRAMES = 3000
FRAME = b'{"topic":"/market/ticker:all","type":"message","subject":"S%05d-USDT","data":{"bestBid":"1.0"}}'


@pytest.fixture
async def burst_server() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # "go"
        for i in range(FRAMES):  # queued without awaiting the peer: one burst, as ticker:all arrives
            await ws.send_bytes(FRAME % i)
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


async def read_burst(url: str, chunk: int) -> tuple[list[bytes], int, SlicingSession]:
    """All frames, and the most frames the reader handled between two turns of another task."""
    received: list[bytes] = []
    turns = 0
    most = 0
    since = 0
    stop = asyncio.Event()

    async def other_task() -> None:
        nonlocal turns, most, since
        while not stop.is_set():
            most = max(most, since)
            since = 0
            turns += 1
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as http:
        session = SlicingSession(http, chunk)
        ws = await session.ws_connect(url)
        spinner = asyncio.create_task(other_task())
        await ws.send_str("go")
        while len(received) < FRAMES:
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.BINARY
            received.append(msg.data)
            since += 1
        stop.set()
        await spinner
        await ws.send_str("bye")
        with contextlib.suppress(Exception):
            await ws.close()
    return received, most, session


async def test_every_frame_in_order_one_slice_per_turn(burst_server: str) -> None:
    frames, most, session = await read_burst(burst_server, 4096)
    assert frames == [FRAME % i for i in range(FRAMES)]
    assert session.sliced == 1 and session.unsliced == 0
    per_slice = 4096 // len(FRAME % 0) + 3  # + frames completed from the previous slice
    assert most <= per_slice, f"{most} frames handled in one loop turn (a 4 KiB slice holds ~{per_slice})"


async def test_without_slicing_a_burst_is_handled_in_larger_runs(burst_server: str) -> None:
    frames, most, session = await read_burst(burst_server, 0)
    assert len(frames) == FRAMES and session.sliced == 0
    assert most > 4096 // len(FRAME % 0) + 2  # what the slicing above prevents


async def test_slicing_respects_aiohttp_flow_control() -> None:
    """When aiohttp paused reading (its queue is full), our per-turn release must not resume it."""

    class Inner(asyncio.Protocol):
        _reading_paused = False

        def __init__(self) -> None:
            self.data = b""

        def data_received(self, data: bytes) -> None:
            self.data += data
            self._reading_paused = True  # as aiohttp does when its queue goes over the limit

    class Transport:
        def __init__(self) -> None:
            self.paused = 0
            self.resumed = 0

        def pause_reading(self) -> None:
            self.paused += 1

        def resume_reading(self) -> None:
            self.resumed += 1

        def is_closing(self) -> bool:
            return False

    inner, transport = Inner(), Transport()
    sliced = SlicedReads(inner, transport, 8)  # type: ignore[arg-type]
    buf = sliced.get_buffer(-1)
    buf[:5] = b"hello"
    sliced.buffer_updated(5)
    await asyncio.sleep(0)
    assert inner.data == b"hello"
    assert transport.paused == 0 and transport.resumed == 0  # aiohttp paused it: not ours to touch
    inner._reading_paused = False
    inner.data_received = lambda data: None  # type: ignore[method-assign]
    sliced.buffer_updated(3)
    assert transport.paused == 1
    await asyncio.sleep(0)
    assert transport.resumed == 1
