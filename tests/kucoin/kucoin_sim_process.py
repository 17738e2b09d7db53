"""The KuCoin simulator in a separate process, for tests that talk to it over loopback like a real client.

``sim_factory(*cli_args)`` starts ``python -m cryptoarb.venues.kucoin.sim_cli --port 0 *cli_args``, waits
for its ``listening on URL`` line and stops it (SIGTERM, then SIGKILL) when the test ends. ``sim`` is one
shared default server per module (1,250 pairs, market running).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from cryptoarb.venues.kucoin.signing import Credentials, signed_headers
from cryptoarb.venues.kucoin.sim_config import DEFAULT_API_KEY, DEFAULT_API_PASSPHRASE, DEFAULT_API_SECRET
from cryptoarb.venues.sim_process import start_server, stop_server

CREDS = Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_API_PASSPHRASE)
START_TIMEOUT_S = 30.0


@dataclass
class SimProcess:
    url: str
    proc: subprocess.Popen[str]
    args: tuple[str, ...]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def admin(self, method: str, path: str, payload: Any = None) -> Any:
        async with aiohttp.ClientSession() as http, \
                http.request(method, self.url + path, json=payload) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def faults(self, **changes: Any) -> dict[str, Any]:
        return await self.admin("POST", "/_sim/faults", changes)

    async def stats(self) -> dict[str, Any]:
        return await self.admin("GET", "/_sim/stats")

    async def signed(self, http: aiohttp.ClientSession, method: str, path_qs: str, body: str = "",
                     creds: Credentials = CREDS) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        """A request signed as KuCoin expects; (HTTP status, JSON body, response headers)."""
        headers = signed_headers(creds, method, path_qs, body, int(time.time() * 1000))
        if body:
            headers["Content-Type"] = "application/json"
        async with http.request(method, self.url + path_qs, data=body or None, headers=headers) as resp:
            return resp.status, await resp.json(), resp.headers

    def stop(self) -> None:
        stop_server(self.proc)


def start_sim(*args: str) -> SimProcess:
    proc, url = start_server("cryptoarb.venues.kucoin.sim_cli", *args, timeout_s=START_TIMEOUT_S)
    return SimProcess(url, proc, args)
