"""Fixtures starting the KuCoin simulator in a separate process (helpers in kucoin_sim_process.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kucoin_sim_process import SimProcess, start_sim


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimProcess]]:
    started: list[SimProcess] = []

    def start(*args: str) -> SimProcess:
        sim = start_sim(*args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    server = start_sim("--speed", "2")
    yield server
    server.stop()
