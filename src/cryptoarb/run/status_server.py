"""The local HTTP endpoint of a running engine: ``/status`` (JSON) and ``/metrics`` (Prometheus).

Bound to 127.0.0.1 only: it shows balances and PnL and takes no authentication. Both documents are
built on request, on the event loop, from the engine's counters (well under a millisecond for 1,250
books); the server never touches the engine otherwise.

- ``GET /status``: the status document (docs/run.md, "/status").
- ``GET /metrics``: the same figures in the Prometheus text format.
- ``GET /healthz``: ``200 ok`` while the engine runs, ``503`` with the state otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from cryptoarb.run.metrics import Exposition, render_metrics

log = logging.getLogger("cryptoarb.run.status")

HOST = "127.0.0.1"


class StatusServer:
    def __init__(self, status: Callable[[], dict[str, Any]], *, port: int, host: str = HOST) -> None:
        self._status = status
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/status", self._handle_status)
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/healthz", self._handle_health)
        app.router.add_get("/", self._handle_index)
        return app

    async def start(self) -> int:
        """Listen; returns the bound port (a free one when ``port`` is 0). Raises OSError if taken."""
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = self._runner.addresses[0][1]
        return self.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_status(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = orjson.dumps(self._status(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
                            | orjson.OPT_SERIALIZE_NUMPY)
        return web.Response(body=body, content_type="application/json")

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=render_metrics(self._status()).encode(),
                            headers={"Content-Type": Exposition.CONTENT_TYPE})

    async def _handle_health(self, request: web.Request) -> web.Response:
        state = self._status().get("state")
        if state == "running":
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"{state}\n")

    async def _handle_index(self, request: web.Request) -> web.Response:
        return web.Response(text="cryptoarb: /status (JSON), /metrics (Prometheus), /healthz\n")
