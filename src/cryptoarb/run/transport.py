"""Bounded reads for the market-data websockets: at most one slice of bytes per event-loop turn.

Why: KuCoin pushes ``ticker:all`` as a burst every 100 ms (1,250 frames, ~300 KB). The event loop reads
a socket up to 256 KiB at a time, aiohttp parses every frame of that read in one callback, and the
websocket reader decodes and hands each frame to the engine without yielding while frames are queued:
one read became ~10 ms of uninterrupted work, which is loop lag for everything else (pings included).

:class:`SlicedReads` sits between the transport and aiohttp's protocol: the transport reads into its
fixed buffer of ``chunk_bytes``, the bytes go to aiohttp as usual, then reading pauses until the next
loop turn. Each turn thus handles at most one slice (~65 ticker frames at 16 KiB); the reader and every
other task get their turn in between. The kernel's socket buffer keeps its normal (autotuned) size, so
a slow link loses no throughput: data waits in the kernel, not on the wire. aiohttp's own flow control
still applies (its pause wins; we only resume what we paused).

:class:`SlicingSession` wraps an ``aiohttp.ClientSession`` for
:class:`~cryptoarb.venues.kucoin.ws.KucoinMarketData`: ``post`` passes through, ``ws_connect`` installs
the slicer on the new connection. Where the connection's transport can't be reached (another aiohttp),
the socket is left as it is and :attr:`SlicingSession.unsliced` counts it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

log = logging.getLogger("cryptoarb.run.transport")


class SlicedReads(asyncio.BufferedProtocol):
    """Forwards every read to ``inner.data_received``; pauses reading until the next loop turn after each."""

    def __init__(self, inner: asyncio.Protocol, transport: asyncio.Transport, chunk_bytes: int) -> None:
        self._inner = inner
        self._transport = transport
        self._buffer = bytearray(chunk_bytes)
        self._view = memoryview(self._buffer)
        self._held = False
        self._loop = asyncio.get_running_loop()
        self.reads = 0
        self.bytes = 0

    # -- reading ----------------------------------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.reads += 1
        self.bytes += nbytes
        self._inner.data_received(bytes(self._view[:nbytes]))
        if not self._held and not self._inner_paused() and not self._transport.is_closing():
            self._held = True
            self._transport.pause_reading()
            self._loop.call_soon(self._release)

    def _release(self) -> None:
        self._held = False
        if not self._inner_paused() and not self._transport.is_closing():
            self._transport.resume_reading()

    def _inner_paused(self) -> bool:
        return bool(getattr(self._inner, "_reading_paused", False))

    # -- everything else goes to aiohttp's protocol --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # not called by set_protocol
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def slice_reads(ws: aiohttp.ClientWebSocketResponse, chunk_bytes: int) -> SlicedReads | None:
    """Install :class:`SlicedReads` on ``ws``'s connection; None when its transport can't be reached."""
    conn = getattr(ws, "_conn", None)
    transport = getattr(conn, "transport", None)
    protocol = getattr(conn, "protocol", None)
    if transport is None or protocol is None or not hasattr(transport, "set_protocol"):
        return None
    if not hasattr(protocol, "data_received") or transport.get_protocol() is not protocol:
        return None
    sliced = SlicedReads(protocol, transport, chunk_bytes)
    transport.set_protocol(sliced)
    return sliced


class SlicingSession:
    """The part of ``aiohttp.ClientSession`` the websocket client uses, with sliced websocket reads."""

    def __init__(self, session: aiohttp.ClientSession, chunk_bytes: int) -> None:
        self.session = session
        self.chunk_bytes = chunk_bytes
        self.sliced = 0
        self.unsliced = 0
        self._protocols: list[SlicedReads] = []

    def post(self, *args: Any, **kwargs: Any) -> Any:
        return self.session.post(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.session.get(*args, **kwargs)

    async def ws_connect(self, *args: Any, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(*args, **kwargs)
        if self.chunk_bytes > 0:
            sliced = slice_reads(ws, self.chunk_bytes)
            if sliced is None:
                self.unsliced += 1
                if self.unsliced == 1:
                    log.info("market data: could not slice websocket reads (aiohttp internals changed)")
            else:
                self.sliced += 1
                self._protocols = [p for p in self._protocols if not p._transport.is_closing()] + [sliced]
        return ws

    @property
    def closed(self) -> bool:
        return self.session.closed

    def stats(self) -> dict[str, int]:
        return {"sliced_connections": self.sliced, "unsliced_connections": self.unsliced,
                "chunk_bytes": self.chunk_bytes}
