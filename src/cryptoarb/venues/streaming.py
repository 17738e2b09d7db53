"""What the push-driven websocket book clients (Coinbase, BL3P) share: the callbacks they report to,
``run`` as an async iterator, and the loop that keeps one connection up with a jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import aiohttp

from cryptoarb.model import BookUpdate, Notice
from cryptoarb.venues.kucoin.limits import Backoff

T = TypeVar("T")


async def iterate_sink(run: Callable[[Callable[[T], None]], Coroutine[Any, Any, None]], *,
                       name: str) -> AsyncIterator[T]:
    """Run ``run(sink)`` as a task named ``name`` and yield, in order, whatever it passes to ``sink``.

    Ends when the task returns and raises what the task raises; closing the iterator cancels the task.
    """
    queue: asyncio.Queue[T] = asyncio.Queue()
    runner = asyncio.create_task(run(queue.put_nowait), name=name)
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            runner.result()
            return
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


class BackoffOptions(Protocol):
    @property
    def backoff_base_s(self) -> float: ...

    @property
    def backoff_max_s(self) -> float: ...

    @property
    def backoff_jitter(self) -> float: ...


class BookFeed:
    """Base of a websocket book client whose ``run(symbols)`` streams books to ``on_updates``, synchronously,
    until :meth:`close` or cancellation.

    ``clock`` stamps ``received_at`` (the engine's clock); ``on_gap(symbol)`` says a book can't be trusted
    until it is whole again; ``on_notice`` gets what is worth showing a person; ``backoff_factory`` makes
    each connection's reconnect delays (by default from the options' ``backoff_*``). A subclass sets
    ``expected`` (the failures a reconnect cures), ``stream_name`` (the task of :meth:`stream_books`) and a
    ``counters`` dict with ``"disconnects"``.
    """

    expected: tuple[type[BaseException], ...]
    stream_name: str
    counters: dict[str, int]

    def __init__(self, session: aiohttp.ClientSession, options: BackoffOptions, *, url: str, venue: str,
                 clock: Callable[[], float], on_updates: Callable[[list[BookUpdate]], None] | None,
                 on_gap: Callable[[str], None] | None, on_notice: Callable[[Notice], None] | None,
                 backoff_factory: Callable[[], Backoff] | None) -> None:
        self.url = url
        self.venue = venue
        self._http = session
        self._on_updates = on_updates
        self._clock = clock
        self._on_gap = on_gap
        self._on_notice = on_notice
        self._backoff = backoff_factory or (
            lambda: Backoff(options.backoff_base_s, options.backoff_max_s, options.backoff_jitter))
        self._closed = False
        self._running = False
        self.last_error = ""

    async def run(self, symbols: Sequence[str]) -> None:
        raise NotImplementedError

    def stream_books(self, symbols: Sequence[str]) -> AsyncIterator[list[BookUpdate]]:
        """:meth:`run` as an async iterator of batches (for ``Venue.stream_books``)."""
        def start(sink: Callable[[list[BookUpdate]], None]) -> Coroutine[Any, Any, None]:
            self._on_updates = sink
            return self.run(symbols)

        return iterate_sink(start, name=self.stream_name)

    async def close(self) -> None:
        self._closed = True

    async def _reconnecting(self, session: Callable[[Backoff], Awaitable[None]],
                            lost: Callable[[str], None]) -> None:
        """Run ``session(backoff)`` (one connection, start to end; it resets the backoff once the connection
        proves good) again and again until :meth:`close`. Whenever it ends, by returning or by raising one of
        ``expected``, the loss is counted and ``lost`` gets the reason; unless closed meanwhile, the next
        attempt waits the backoff's next delay. Anything else propagates."""
        backoff = self._backoff()
        while not self._closed:
            try:
                await session(backoff)
                reason = "closed by the server"
            except self.expected as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.counters["disconnects"] += 1
            self.last_error = reason
            lost(reason)
            if self._closed:
                return
            await asyncio.sleep(backoff.next_delay())
