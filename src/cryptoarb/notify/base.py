"""The ``Notifier`` protocol and the ``NotifierHub`` that feeds every notifier from the engine.

The engine calls :meth:`NotifierHub.publish` synchronously on its hot path; each notifier drains its
own bounded queue in its own task, so a slow one (a rate-limited Discord webhook) never delays the
engine or the other notifiers. When a queue is full only market noise (opportunities, rejections) is
dropped, and counted; executions and notices are always delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from cryptoarb.model import Event, Opportunity, Rejection

log = logging.getLogger("cryptoarb.notify")

DROPPABLE = (Opportunity, Rejection)


@runtime_checkable
class Notifier(Protocol):
    async def notify(self, event: Event) -> None:
        ...

    async def close(self) -> None:
        ...


class _Channel:
    __slots__ = ("delivered", "dropped", "errors", "name", "notifier", "queue", "wake")

    def __init__(self, notifier: Notifier, name: str) -> None:
        self.notifier = notifier
        self.name = name
        self.queue: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.dropped: Counter[str] = Counter()
        self.delivered = 0
        self.errors = 0


class NotifierHub:
    def __init__(self, notifiers: Iterable[Notifier] = (), max_queue: int = 1_000) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.max_queue = max_queue
        self._channels: list[_Channel] = []
        self._closing = False
        self._close_requested = asyncio.Event()
        self._running = False
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        for notifier in notifiers:
            self.add(notifier)

    def add(self, notifier: Notifier, name: str | None = None) -> None:
        """Register a notifier; before :meth:`run` starts."""
        if self._running:
            raise RuntimeError("add notifiers before the hub runs")
        names = {c.name for c in self._channels}
        base = name or getattr(notifier, "name", None) or type(notifier).__name__
        unique, n = base, 2
        while unique in names:
            unique, n = f"{base}#{n}", n + 1
        self._channels.append(_Channel(notifier, unique))

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every notifier. Synchronous, never blocks, never raises on a full queue."""
        droppable = isinstance(event, DROPPABLE)
        for channel in self._channels:
            if self._closing or (droppable and len(channel.queue) >= self.max_queue):
                channel.dropped[type(event).__name__] += 1
                continue
            channel.queue.append(event)
            channel.wake.set()

    def stats(self) -> dict[str, dict[str, object]]:
        return {
            c.name: {"queued": len(c.queue), "delivered": c.delivered, "errors": c.errors,
                     "dropped": dict(c.dropped)}
            for c in self._channels
        }

    @property
    def dropped(self) -> dict[str, dict[str, int]]:
        return {c.name: dict(c.dropped) for c in self._channels}

    async def run(self) -> None:
        """Deliver events until :meth:`close`; one task per notifier."""
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = [tg.create_task(self._consume(c), name=f"notify-{c.name}")
                               for c in self._channels]
                # With no notifier there is nothing to wait on, but run() still lasts until close().
                await self._close_requested.wait()
        finally:
            self._running = False
            self._stopped.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for at most ``timeout`` seconds), then close every notifier."""
        self._closing = True
        self._close_requested.set()
        for channel in self._channels:
            channel.wake.set()
        if self._running:
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout)
            except TimeoutError:
                for task in self._tasks:
                    task.cancel()
                await self._stopped.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(self._consume(c) for c in self._channels)), timeout)
        for channel in self._channels:
            if channel.queue:
                log.warning("notifier %s closed with %d undelivered events", channel.name,
                            len(channel.queue))
            try:
                await channel.notifier.close()
            except Exception:
                log.exception("notifier %s failed to close", channel.name)

    async def _consume(self, channel: _Channel) -> None:
        while True:
            if not channel.queue:
                if self._closing:
                    return
                channel.wake.clear()
                await channel.wake.wait()
                continue
            event = channel.queue.popleft()
            try:
                await channel.notifier.notify(event)
            except Exception:
                # A broken notifier (webhook down) must not take the engine with it.
                channel.errors += 1
                log.exception("notifier %s failed on %s", channel.name, type(event).__name__)
            else:
                channel.delivered += 1
