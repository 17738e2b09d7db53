"""The lifecycle every loopback exchange simulator shares: an aiohttp app on a local socket, the
background tasks that feed it, and ``sim-server``'s run-until-cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiohttp import web

Background = list[tuple[str, Coroutine[Any, Any, None]]]
"""Named coroutines, each run as a task while the server listens."""


class _Listen(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class LoopbackServer:
    """``await start()`` listens on ``config.host:config.port`` (port 0: a free one) and returns the base URL.

    A subclass sets ``config`` and gives :meth:`app`, and may give :meth:`background` and
    :meth:`close_connections`; ``scheme`` is the URL's.
    """

    scheme = "ws"
    config: _Listen

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def app(self) -> web.Application:
        raise NotImplementedError

    def background(self) -> Background:
        return []

    async def close_connections(self) -> None:
        """Close the clients' sockets: the runner's cleanup would otherwise wait for their handlers to end."""

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{self.scheme}://{self.config.host}:{port}"
        self._tasks = [asyncio.create_task(work, name=name) for name, work in self.background()]
        return self.url

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def run_until_cancelled(server: LoopbackServer, on_listening: Callable[[str], None]) -> None:
    """Start ``server``, call ``on_listening(url)`` once the socket accepts connections, stop on cancellation."""
    await server.start()
    on_listening(server.url)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
