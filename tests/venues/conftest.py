"""Fixtures for the venue feed tests (helpers in feed_harness.py)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from feed_harness import START_TIMEOUT_S

from cryptoarb.config import SimSettings
from cryptoarb.venues.bl3p.sim_server import Bl3pSimConfig, Bl3pSimServer
from cryptoarb.venues.coinbase.sim_server import CoinbaseSimConfig, CoinbaseSimServer
from cryptoarb.venues.sim_process import start_server, stop_server


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
        proc, url = start_server(module, *args, timeout_s=START_TIMEOUT_S)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        stop_server(proc)
