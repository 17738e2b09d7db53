"""Delivery policy for remote notifiers: which events matter, burst aggregation, a bounded queue, retries.

Nothing here knows Discord. :class:`Aggregator` is pure (time is passed in): the first event of a
quiet key goes out on its own, the rest of its burst is folded into one :class:`Burst` per window.
:class:`QueuedNotifier` puts that in front of a sender task, so ``notify()`` is a few dictionary
operations and never waits on the network; subclasses only implement :meth:`QueuedNotifier._deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptoarb.config import DiscordEventSettings
from cryptoarb.model import Event, Execution, Notice, Opportunity, OrderStatus, Rejection

log = logging.getLogger("cryptoarb.notify")


class Category(StrEnum):
    OPPORTUNITY = "opportunity"
    REJECTION = "rejection"
    TRADE = "trade"
    FILL = "fill"
    FAILED_LEG = "failed_leg"
    RISK = "risk"
    CONNECTION = "connection"
    ERROR = "error"
    DAILY_SUMMARY = "daily_summary"
    OTHER = "other"


ESSENTIAL = frozenset({Category.TRADE, Category.FILL, Category.FAILED_LEG, Category.RISK,
                       Category.DAILY_SUMMARY})
"""Never dropped for lack of room, never folded into a count, retried and logged when undeliverable."""

_NO_LEADING = frozenset({Category.REJECTION})
"""Categories only ever reported as counts."""

_NOTICE_KINDS: dict[str, Category] = {
    **dict.fromkeys(("fill", "fills", "order", "orders"), Category.FILL),
    **dict.fromkeys(("failed_leg", "leg_failed", "unwind", "hedge", "one_legged"), Category.FAILED_LEG),
    **dict.fromkeys(("risk", "kill", "kill_switch", "killswitch", "cooldown", "pause", "paused", "resume",
                     "resumed", "limit", "inventory", "rebalance"), Category.RISK),
    "preflight": Category.REJECTION,  # a plan refused before any order was sent: no money moved
    **dict.fromkeys(("venue", "connection", "connect", "connected", "disconnect", "disconnected",
                     "reconnect", "reconnected", "ws", "websocket", "stream"), Category.CONNECTION),
    **dict.fromkeys(("error", "exception", "failure", "crash", "task_failed"), Category.ERROR),
    **dict.fromkeys(("daily_summary", "summary", "daily"), Category.DAILY_SUMMARY),
}


def notice_category(kind: str) -> Category:
    """``risk``, ``risk.kill`` and ``risk:kill`` all count as risk."""
    head = kind.lower().replace(":", ".").split(".", 1)[0]
    return _NOTICE_KINDS.get(kind.lower(), _NOTICE_KINDS.get(head, Category.OTHER))


def category(event: Event) -> Category:
    if isinstance(event, Opportunity):
        return Category.OPPORTUNITY
    if isinstance(event, Rejection):
        return Category.REJECTION
    if isinstance(event, Execution):
        if not any(r.fills for r in event.results):
            return Category.REJECTION  # nothing filled, nothing moved (the engine counts it gone_before_fill)
        failed = any(r.status is not OrderStatus.FILLED for r in event.results)
        return Category.FAILED_LEG if failed else Category.TRADE
    return notice_category(event.kind)


EventSwitches = DiscordEventSettings
"""Which categories a notifier sends at all: the ``[discord.events]`` settings, one switch per :class:`Category`."""


@dataclass(slots=True)
class Burst:
    """Events of one key folded together: a count and what a person wants to know about them."""

    key: str
    category: Category
    opened_at: float
    count: int = 0
    first: Event | None = None
    last: Event | None = None
    best: Opportunity | None = None
    profit_usd: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)

    def add(self, event: Event) -> None:
        self.count += 1
        if self.first is None:
            self.first = event
        self.last = event
        if isinstance(event, Opportunity):
            self.profit_usd += event.profit_usd
            if self.best is None or event.net_return_bps > self.best.net_return_bps:
                self.best = event
        elif isinstance(event, Rejection):
            self.labels[event.reason.value] += 1
        elif isinstance(event, Notice):
            self.labels[event.kind] += 1


def burst_key(event: Event, cat: Category) -> str:
    # Opportunities on different paths are still one burst: the point is one message per window.
    return f"{cat.value}:{event.kind}" if isinstance(event, Notice) else cat.value


@dataclass(slots=True)
class _Window:
    closes_at: float
    burst: Burst | None = None


Outbound = Event | Burst


class Aggregator:
    """Per key: the first event passes, the rest of the window becomes one burst.

    A window that ends with events in it reopens at once (the key stays "hot", so a steady stream is
    one message per window); a window that ends empty goes cold and the next event passes again.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}

    def offer(self, event: Event, cat: Category, now: float) -> list[Outbound]:
        """What to send now because of ``event``: possibly an overdue burst, then possibly the event."""
        if self.window_s <= 0 and cat not in _NO_LEADING:
            return [event]
        key = burst_key(event, cat)
        window = self._windows.get(key)
        out: list[Outbound] = []
        if window is not None and now >= window.closes_at:
            # What due() would have done: emit the burst, keep the key hot for one more window.
            if window.burst is not None:
                out.append(self._emit(window.burst))
            if window.burst is not None and now < window.closes_at + self.window_s:
                window = self._windows[key] = _Window(window.closes_at + self.window_s)
            else:
                window = None
        if window is None:
            window = self._windows[key] = _Window(now + self.window_s)
            if cat not in _NO_LEADING:
                out.append(event)
                return out
        if window.burst is None:
            window.burst = Burst(key, cat, now)
        window.burst.add(event)
        return out

    def due(self, now: float) -> list[Outbound]:
        """Bursts whose window has closed."""
        out: list[Outbound] = []
        for key, window in list(self._windows.items()):
            if now < window.closes_at:
                continue
            if window.burst is None:
                del self._windows[key]
            else:
                out.append(self._emit(window.burst))
                self._windows[key] = _Window(now + self.window_s)
        return out

    def drain(self) -> list[Outbound]:
        """Every pending burst, now (a flush or shutdown)."""
        out = [self._emit(w.burst) for w in self._windows.values() if w.burst is not None]
        self._windows.clear()
        return out

    def deadline(self) -> float | None:
        """When :meth:`due` next has something to do."""
        return min((w.closes_at for w in self._windows.values()), default=None)

    @staticmethod
    def _emit(burst: Burst) -> Outbound:
        if burst.count == 1 and burst.category not in _NO_LEADING and burst.first is not None:
            return burst.first
        return burst


# -- delivery ------------------------------------------------------------------------------------

class RetryLater(Exception):
    """A transient failure (5xx, connection refused, timeout): back off and try again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.3f} s")
        self.retry_after = retry_after


class Undeliverable(Exception):
    """Retrying cannot help (4xx: bad payload, webhook deleted, no permission)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    window_s: float = 10.0
    max_queue: int = 500
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_rate_limit_waits: int = 20
    max_batch: int = 5
    close_timeout_s: float = 5.0


@dataclass(slots=True)
class Outgoing:
    category: Category
    essential: bool
    item: Any
    solo: bool = False
    rendered: Any = None


def describe(item: Any) -> str:
    """One line naming what a message was about, for the log when it could not be sent."""
    if isinstance(item, Execution):
        opp = item.opportunity
        return (f"trade {opp.id} {'>'.join(opp.path)} realized {item.realized_profit} {opp.start_asset} "
                f"({item.realized_profit_usd:+.2f} USD)")
    if isinstance(item, Opportunity):
        return f"opportunity {item.id} {'>'.join(item.path)} {item.net_return_bps:.1f} bps"
    if isinstance(item, Notice):
        return f"notice [{item.kind}] {item.message}"
    if isinstance(item, Rejection):
        return f"rejection {item.reason.value} {'>'.join(item.path)}"
    if isinstance(item, Burst):
        return f"{item.count} x {item.category.value}"
    return str(getattr(getattr(item, "result", item), "title", type(item).__name__))


class QueuedNotifier:
    """A Notifier whose ``notify`` only queues; one sender task delivers, with aggregation and retries.

    Essential messages (trades, fills, failed legs, risk, daily summaries) are never dropped for lack
    of room and are logged by :func:`describe` when every attempt failed. Everything else is aggregated
    and dropped, with a count in :attr:`dropped`, when ``max_queue`` messages are already waiting.
    """

    name = "queued"

    def __init__(self, policy: DeliveryPolicy, switches: EventSwitches,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.switches = switches
        self.clock = clock
        self.dropped: Counter[str] = Counter()
        self.disabled: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.delivered = 0
        self.messages = 0
        self._aggregator = Aggregator(policy.window_s)
        self._essential: deque[Outgoing] = deque()
        self._normal: deque[Outgoing] = deque()
        self._inflight: list[Outgoing] = []
        self._inflight_attempts = 0  # requests made so far for the batch in flight
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_requested = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # -- the engine side: synchronous and O(1) ------------------------------------------------
    async def notify(self, event: Event) -> None:
        self.submit(event)

    def submit(self, event: Event) -> None:
        cat = category(event)
        if not self.switches.enabled(cat):
            self.disabled[cat.value] += 1
            return
        if cat in ESSENTIAL:
            self._enqueue(Outgoing(cat, True, event))
        else:
            for item in self._aggregator.offer(event, cat, self.clock()):
                self._enqueue(Outgoing(cat, False, item))

    def submit_item(self, item: Any, cat: Category = Category.DAILY_SUMMARY, *, solo: bool = True) -> None:
        """Queue an already-built essential message (a report with a chart)."""
        if self.switches.enabled(cat):
            self._enqueue(Outgoing(cat, True, item, solo=solo))
        else:
            self.disabled[cat.value] += 1

    def _enqueue(self, out: Outgoing) -> None:
        if self._closing:
            self._lost([out], "notifier closed", 0)
            return
        if out.essential:
            self._essential.append(out)
        elif len(self._normal) >= self.policy.max_queue:
            self.dropped[out.category.value] += 1
            return
        else:
            self._normal.append(out)
        self._idle.clear()
        self._wake.set()
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"notify-{self.name}")

    @property
    def queued(self) -> int:
        return len(self._essential) + len(self._normal) + len(self._inflight)

    # -- lifecycle ------------------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> bool:
        """Send pending bursts now and wait until nothing is queued; False on timeout."""
        self._flush_requested = True
        self._idle.clear()
        self._wake.set()
        self._ensure_started()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Deliver what is queued within ``close_timeout_s``, then stop; logs essentials left behind."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.policy.close_timeout_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception:
                log.exception("%s: sender failed", self.name)
        # the batch being sent when the time ran out has had its attempts; what waited behind it had none
        self._lost(self._inflight, "shutdown before it could be delivered", self._inflight_attempts)
        left = [*self._essential, *self._normal]
        left += [Outgoing(b.category, False, b) for b in self._aggregator.drain()]
        self._inflight, self._essential, self._normal = [], deque(), deque()
        self._lost(left, "shutdown before delivery", 0)
        await self._shutdown()

    # -- the sender task ------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._open()
            await self._loop()
        except Exception as exc:
            log.exception("%s: sender stopped by %s", self.name, type(exc).__name__)
        finally:
            self._idle.set()

    async def _loop(self) -> None:
        while True:
            now = self.clock()
            flush = self._flush_requested or self._closing
            self._flush_requested = False
            for item in self._aggregator.drain() if flush else self._aggregator.due(now):
                self._enqueue_burst(item)
            batch = self._take_batch()
            if batch:
                self._inflight = batch
                await self._send(batch)
                self._inflight = []
                continue
            if self._closing:
                return
            self._idle.set()
            self._wake.clear()
            deadline = self._aggregator.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _enqueue_burst(self, item: Outbound) -> None:
        cat = item.category if isinstance(item, Burst) else category(item)
        if len(self._normal) >= self.policy.max_queue:
            self.dropped[cat.value] += item.count if isinstance(item, Burst) else 1
        else:
            self._normal.append(Outgoing(cat, False, item))

    def _take_batch(self) -> list[Outgoing]:
        batch: list[Outgoing] = []
        budget = self._batch_budget()
        for queue in (self._essential, self._normal):
            while queue and len(batch) < self.policy.max_batch:
                out = queue[0]
                cost = self._cost(out)
                if batch and (out.solo or batch[0].solo or cost > budget):
                    return batch
                batch.append(queue.popleft())
                budget -= cost
        return batch

    async def _send(self, batch: list[Outgoing]) -> None:
        attempts = waits = 0
        while True:
            attempts += 1
            self._inflight_attempts = attempts
            try:
                await self._deliver(batch)
            except RateLimited as exc:
                attempts -= 1  # being told to wait is not a failed attempt
                waits += 1
                if waits > self.policy.max_rate_limit_waits:
                    self._lost(batch, "still rate limited", attempts)
                    return
                await asyncio.sleep(exc.retry_after)
            except RetryLater as exc:
                if attempts >= self.policy.max_attempts:
                    self._lost(batch, exc.reason, attempts)
                    return
                await asyncio.sleep(self._backoff(attempts))
            except Undeliverable as exc:
                self._lost(batch, exc.reason, attempts)
                return
            except Exception as exc:
                # A rendering bug must not kill the sender; the type name is enough and leaks nothing.
                log.exception("%s: unexpected %s while sending", self.name, type(exc).__name__)
                self._lost(batch, type(exc).__name__, attempts)
                return
            else:
                self.delivered += len(batch)
                self.messages += 1
                return

    def _backoff(self, attempt: int) -> float:
        delay = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** (attempt - 1))
        return delay * random.uniform(0.75, 1.0)

    def _lost(self, items: list[Outgoing], reason: str, attempts: int) -> None:
        for out in items:
            if out.essential:
                self.failed[out.category.value] += 1
                log.error("%s: could not deliver %s after %d attempt(s): %s", self.name, describe(out.item),
                          attempts, reason)
            else:
                self.dropped[out.category.value] += out.item.count if isinstance(out.item, Burst) else 1
                log.debug("%s: dropped %s: %s", self.name, describe(out.item), reason)

    # -- subclass hooks ---------------------------------------------------------------------------
    async def _open(self) -> None:
        """Acquire what the sender needs (a session); runs in the sender task."""

    async def _shutdown(self) -> None:
        """Release it; runs in :meth:`close`."""

    def _cost(self, out: Outgoing) -> int:
        return 0

    def _batch_budget(self) -> int:
        return 1

    async def _deliver(self, batch: list[Outgoing]) -> None:
        """Send ``batch`` as one message; raise RetryLater, RateLimited or Undeliverable on failure."""
        raise NotImplementedError
