"""The KuCoin simulator in a separate process, for tests that talk to it over loopback like a real client.

``sim_factory(*cli_args)`` starts ``python -m cryptoarb.venues.kucoin.sim_cli --port 0 *cli_args``, waits
for its ``listening on URL`` line and stops it (SIGTERM, then SIGKILL) when the test ends. ``sim`` is one
shared default server per module (1,250 pairs, market running).
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from cryptoarb.venues.kucoin.signing import Credentials, signed_headers
from cryptoarb.venues.kucoin.sim_cli import LISTENING
from cryptoarb.venues.kucoin.sim_config import DEFAULT_API_KEY, DEFAULT_API_PASSPHRASE, DEFAULT_API_SECRET

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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_sim(*args: str) -> SimProcess:
    cmd = [sys.executable, "-m", "cryptoarb.venues.kucoin.sim_cli", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"sim-server did not start within {START_TIMEOUT_S}s: {cmd}")
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sim-server exited with {proc.wait()} before listening: {cmd}")
            if line.startswith(LISTENING):
                return SimProcess(line[len(LISTENING):].strip(), proc, args)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        raise
