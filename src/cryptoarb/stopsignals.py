"""Ctrl-C and SIGTERM as a request to stop, for commands that end cleanly (flush, resolve, summarise)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[], object]) -> Iterator[None]:
    """Call ``callback`` on SIGINT and SIGTERM while the block runs, instead of raising KeyboardInterrupt or
    dying; nothing is installed where the running loop cannot take signal handlers (not the main thread)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
