"""Supervision of the runner's long-lived tasks, all inside one ``asyncio.TaskGroup``.

A supervised task that raises is reported (``on_failure``: a log line and a ``Notice``) and started
again after a jittered exponential backoff; its backoff resets once it has run for a while without
failing. Cancellation is shutdown, never a failure. The wrapper itself never raises anything but
``CancelledError``, so one failing task can't tear down the group and the rest of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptoarb.venues.kucoin.limits import Backoff

HEALTHY_AFTER_S = 30.0
"""A task that ran this long before failing starts again from the first backoff step."""

OnFailure = Callable[[str, BaseException, float, int], None]
"""(task name, exception, seconds until the restart, restarts so far)."""


@dataclass(slots=True)
class TaskState:
    name: str
    restart: bool
    state: str = "starting"
    """starting, running, backoff, finished, stopped."""
    restarts: int = 0
    failures: int = 0
    last_error: str = ""
    started_at: float = 0.0
    task: asyncio.Task[None] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "restarts": self.restarts, "failures": self.failures,
                "last_error": self.last_error}


class Supervisor:
    def __init__(self, group: asyncio.TaskGroup, *, on_failure: OnFailure | None = None,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0,
                 healthy_after_s: float = HEALTHY_AFTER_S) -> None:
        self.group = group
        self.on_failure = on_failure
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.healthy_after_s = healthy_after_s
        self.tasks: dict[str, TaskState] = {}

    def spawn(self, name: str, factory: Callable[[], Awaitable[Any]], *, restart: bool = True) -> TaskState:
        """Run ``factory()`` as task ``name``; restart it with backoff if it raises (unless ``restart`` is
        false: then a failure is reported and the task stays down)."""
        if name in self.tasks and self.tasks[name].task is not None and not self.tasks[name].task.done():
            raise RuntimeError(f"task {name!r} is already running")
        state = TaskState(name, restart)
        self.tasks[name] = state
        state.task = self.group.create_task(self._supervise(state, factory), name=name)
        return state

    async def _supervise(self, state: TaskState, factory: Callable[[], Awaitable[Any]]) -> None:
        backoff = Backoff(self.backoff_s, self.backoff_max_s, 0.25)
        while True:
            state.state = "running"
            state.started_at = time.monotonic()
            try:
                await factory()
            except asyncio.CancelledError:
                state.state = "stopped"
                raise
            except Exception as exc:
                state.failures += 1
                state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if time.monotonic() - state.started_at >= self.healthy_after_s:
                    backoff.reset()
                delay = backoff.next_delay() if state.restart else float("inf")
                if self.on_failure is not None:
                    with contextlib.suppress(Exception):
                        self.on_failure(state.name, exc, delay, state.restarts)
                if not state.restart:
                    state.state = "failed"
                    return
                state.state = "backoff"
                await asyncio.sleep(delay)
                state.restarts += 1
                continue
            state.state = "finished"
            return

    async def stop(self, *names: str, timeout: float = 5.0) -> None:
        """Cancel the named tasks (all when none named) and wait for them to end."""
        states = [self.tasks[n] for n in names if n in self.tasks] if names else list(self.tasks.values())
        tasks = [s.task for s in states if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def states(self) -> dict[str, dict[str, Any]]:
        return {name: s.as_json() for name, s in self.tasks.items()}

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.tasks.values())
