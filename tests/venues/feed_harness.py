"""Loopback simulators for the venue adapters, in-process (frozen markets stepped by the test), a
subprocess starter for the ``sim-server`` command modes, and what a test needs to run a feed client and
watch what it reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate, Notice

START_TIMEOUT_S = 30.0


class Signal:
    """Wakes a waiting test whenever a callback fires; :meth:`until` re-checks a condition on every wake."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self, *_: object) -> None:
        self._event.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._event.clear()
                await self._event.wait()


class Recorder:
    """A feed client's callbacks: the books its updates build, its gaps and notices. Each wakes ``signal``."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.books = BookStore()
        self.gaps: list[str] = []
        self.notices: list[Notice] = []
        self.signal = Signal()

    def on_updates(self, batch: list[BookUpdate]) -> None:
        for update in batch:
            self.books.apply(update)
        self.signal.set()

    def on_gap(self, symbol: str) -> None:
        self.gaps.append(symbol)
        book = self.books.get((self.venue, symbol))
        if book is not None:
            book.mark_gapped()
        self.signal.set()

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.signal.set()

    def book(self, symbol: str) -> tuple[list, list] | None:
        """The book as built, or None while there is none or it is gapped."""
        book = self.books.get((self.venue, symbol))
        return None if book is None or book.gapped else (list(book.bids), list(book.asks))


@asynccontextmanager
async def running(client: Any, symbols: Sequence[str]) -> AsyncIterator[None]:
    """``client.run(symbols)`` in a task for the block; then the client is closed and the task cancelled."""
    task = asyncio.create_task(client.run(symbols))
    try:
        yield
    finally:
        await client.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
