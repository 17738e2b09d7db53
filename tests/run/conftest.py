"""Fixtures for the ``cryptoarb run`` tests: the KuCoin simulator in a separate process (helpers in
run_helpers.py, which reuses tests/kucoin/kucoin_sim_process.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from run_helpers import start_sim


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    """One simulator per module: 1,250 pairs, market running, every ticker pushed every round."""
    server = start_sim("--ticker-always")
    yield server
    server.stop()
