"""Shared by every test folder."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SignalWhen = Callable[..., tuple[int, str, str]]


def _signal_when(cmd: list[str], ready: Callable[[], bool], *, what: str, cwd: Path,
                 sig: signal.Signals = signal.SIGINT, env: dict[str, str] | None = None,
                 wait_s: float = 90.0) -> tuple[int, str, str]:
    """Run ``cmd``, send it ``sig`` once ``ready()`` holds (polled: the state lives in another process) and
    return its exit code, stdout and stderr; fails if it exits or ``wait_s`` passes before ``what``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + wait_s
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, f"never got to: {what}"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=wait_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


@pytest.fixture
def signal_when() -> SignalWhen:
    """A command stopped by a signal at a moment of the test's choosing (see :func:`_signal_when`)."""
    return _signal_when
