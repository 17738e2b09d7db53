"""KuCoin websocket limits: message pacing, topic sharding, reconnect backoff.

Limits (reference/exchange-protocols.md §A.2): 100 topics per subscribe message, 300 topics per
connection (each symbol of a comma-joined topic counts), 100 client messages (pings included) per 10 s.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence

TOPICS_PER_MESSAGE = 100
TOPICS_PER_CONNECTION = 300
CLIENT_MESSAGES_PER_WINDOW = 100
MESSAGE_WINDOW_S = 10.0


class Pacer:
    """At most ``limit`` sends in any ``window_s`` span (sliding, so any fixed server window holds too).

    ``reserve`` sends of each window are kept for priority callers (pings), so a burst of subscribes can
    never delay a ping past the server's timeout.
    """

    def __init__(self, limit: int, window_s: float, *, reserve: int = 0,
                 time_fn: Callable[[], float] | None = None) -> None:
        if limit < 1 or not 0 <= reserve < limit:
            raise ValueError("need limit >= 1 and 0 <= reserve < limit")
        self.limit = limit
        self.window_s = window_s
        self.reserve = reserve
        self._time = time_fn
        self._sent: deque[float] = deque()

    def _now(self) -> float:
        return self._time() if self._time is not None else asyncio.get_running_loop().time()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()

    def in_window(self) -> int:
        """Sends counted in the current window."""
        self._expire(self._now())
        return len(self._sent)

    async def acquire(self, *, priority: bool = False) -> None:
        """Wait until one more send fits, then count it."""
        cap = self.limit if priority else self.limit - self.reserve
        while True:
            now = self._now()
            self._expire(now)
            if len(self._sent) < cap:
                self._sent.append(now)
                return
            # the (len - cap + 1)-th oldest send must leave the window before one more fits
            await asyncio.sleep(self._sent[len(self._sent) - cap] + self.window_s - now + 1e-3)


class Backoff:
    """Exponential reconnect delays with proportional jitter: base·2ⁿ capped at ``max_s``, minus up to
    ``jitter`` of it, so many connections dropped together don't reconnect in lockstep."""

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0, jitter: float = 0.5,
                 rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.jitter = jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.max_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return delay * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    """``items`` in order, in lists of at most ``size``."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def topic_messages(prefix: str, symbols: Iterable[str], per_message: int = TOPICS_PER_MESSAGE) -> list[str]:
    """Comma-joined topics (``prefix:A,B,...``) of at most ``per_message`` symbols each."""
    return [f"{prefix}:{','.join(c)}" for c in chunks(sorted(symbols), per_message)]


def assign(new: Iterable[str], loads: Sequence[int], capacity: int) -> tuple[dict[str, int], int]:
    """First-fit ``new`` symbols onto connections with ``loads`` topics each, ``capacity`` per connection.

    Returns ``{symbol: connection index}`` (indexes past the existing ones are new connections) and the
    number of new connections needed. Filling the fullest-first would pack tighter; first-fit keeps
    reassignment stable, which matters more: a moved symbol means an unsubscribe and a resubscribe.
    """
    fill = list(loads)
    placed: dict[str, int] = {}
    i = 0
    for symbol in sorted(new):
        while i < len(fill) and fill[i] >= capacity:
            i += 1
        if i == len(fill):
            fill.append(0)
        placed[symbol] = i
        fill[i] += 1
    return placed, len(fill) - len(loads)
