"""Fixtures for the venue feed tests (helpers in feed_harness.py)."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from feed_harness import LISTENING, START_TIMEOUT_S

from cryptoarb.config import SimSettings
from cryptoarb.venues.bl3p.sim_server import Bl3pSimConfig, Bl3pSimServer
from cryptoarb.venues.coinbase.sim_server import CoinbaseSimConfig, CoinbaseSimServer


@pytest.fixture
async def coinbase_server() -> AsyncIterator[CoinbaseSimServer]:
    server = CoinbaseSimServer(CoinbaseSimConfig(speed=0, sim=SimSettings(seed=7, depth_levels=50)))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bl3p_server() -> AsyncIterator[Bl3pSimServer]:
    server = Bl3pSimServer(Bl3pSimConfig(speed=0, sim=SimSettings(seed=7, depth_levels=50)))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def sim_process() -> Iterator[Callable[..., str]]:
    """``start(module, *args)`` runs ``python -m module --port 0 *args`` and returns the URL it prints."""
    procs: list[subprocess.Popen[str]] = []

    def start(module: str, *args: str) -> str:
        proc = subprocess.Popen([sys.executable, "-m", module, "--port", "0", *args], stdout=subprocess.PIPE,
                                text=True, bufsize=1)
        procs.append(proc)
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{module} exited with {proc.wait()} before listening")
            if line.startswith(LISTENING):
                return line[len(LISTENING):].strip()
        raise RuntimeError(f"{module} did not start within {START_TIMEOUT_S}s")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            proc.stdout.close()  # type: ignore[union-attr]
