"""Tasks that start at once: :func:`eager_task` runs a coroutine up to its first suspension inside the call.

``loop.create_task`` only schedules a coroutine: it starts a loop turn later, after every callback already
ready, which on a busy loop means after the market data waiting to be read. On the order path that turn
is pure delay: the first order's bytes could have been on the socket before the call returned. Python
3.12 has this built in (``asyncio.Task(..., eager_start=True)``); on 3.11 the coroutine's first segment is
run here, as the new task (``asyncio.current_task()`` is the new task, so ``asyncio.timeout`` and
cancellation act on it), and the task then resumes the coroutine where that segment stopped.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def eager_task(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """A task for ``coro`` that has already run up to its first suspension (or to its end)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, name=name, eager_start=True)  # type: ignore[call-arg]
    started = _Started(coro)
    context = contextvars.copy_context()  # the task's own, for its first segment too
    task = loop.create_task(started, name=name, context=context)
    outer = asyncio.current_task(loop)
    if outer is not None:
        asyncio.tasks._leave_task(loop, outer)  # type: ignore[attr-defined]
    asyncio.tasks._enter_task(loop, task)  # type: ignore[attr-defined]
    try:
        context.run(started.first_segment)
    finally:
        asyncio.tasks._leave_task(loop, task)  # type: ignore[attr-defined]
        if outer is not None:
            asyncio.tasks._enter_task(loop, outer)  # type: ignore[attr-defined]
    return task


class _Started(Coroutine[Any, Any, Any]):
    """A coroutine run to its first suspension outside of its task, then driven by the task from there.

    The task drives this object as its coroutine: the first ``send`` hands it the future the coroutine
    already waits on (or its result); every later ``send`` and ``throw``, cancellation included, goes to the
    coroutine. A task cancelled before its first step throws into this object too, so the coroutine's
    ``finally`` blocks run then, as they would in a task that had started it.
    """

    __slots__ = ("_coro", "_done", "_error", "_fresh", "_result", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._yielded: Any = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = False
        self._fresh = True  # the task has not stepped yet

    def first_segment(self) -> None:
        try:
            self._yielded = self._coro.send(None)
        except StopIteration as stop:
            self._done, self._result = True, stop.value
        except BaseException as exc:  # delivered by the task, as a task would
            self._done, self._error = True, exc

    def send(self, value: Any) -> Any:
        if self._fresh:
            self._fresh = False
            if self._done:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopIteration(self._result)
            return self._yielded  # the future the coroutine waits on, handed to the task as it is
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        self._fresh = False
        exc = typ if val is None else val
        if self._done:
            raise exc
        return self._coro.throw(exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        raise TypeError("driven by its task only")


def deadline_after_first_step(awaitable: Awaitable[T], timeout_s: float) -> Awaitable[T]:
    """``await deadline_after_first_step(aw, t)`` behaves as ``async with asyncio.timeout(t): await aw``, except
    that the timer is set once ``aw`` has run to its first suspension, not before it starts.

    On the order path that first segment writes the order; the timeout's set-up (a ``Timeout``, a timer
    handle on the loop's heap) cost ~20 µs there, in front of the bytes, when the process comes back from
    idling (80-95 µs to enter and leave in isolation; benchmarks/README.md, "tick_to_order"). The deadline
    is still ``t`` from this call, as ``asyncio.timeout(t)``'s would be; expiry cancels ``aw`` and raises
    TimeoutError, and a cancellation from elsewhere stays a cancellation, as with ``asyncio.timeout``.
    """
    return _AfterFirstStep(awaitable, asyncio.get_running_loop().time() + timeout_s)


class _AfterFirstStep(Awaitable[T]):
    __slots__ = ("_awaitable", "_when")

    def __init__(self, awaitable: Awaitable[T], when: float) -> None:
        self._awaitable = awaitable
        self._when = when

    def __await__(self) -> Generator[Any, Any, T]:
        inner = self._awaitable.__await__()
        try:
            yielded = inner.send(None)  # the first segment, with no timer yet
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        timeout = asyncio.timeout_at(self._when)
        _at_once(timeout.__aenter__())
        try:
            while True:
                try:
                    sent = yield yielded
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as exc:  # a cancellation (the timer's or another's) goes to the awaitable
                    yielded = inner.throw(exc)
                else:
                    yielded = inner.send(sent)
        except StopIteration as done:
            _at_once(timeout.__aexit__(None, None, None))
            return done.value  # type: ignore[no-any-return]
        except BaseException as exc:
            _at_once(timeout.__aexit__(type(exc), exc, exc.__traceback__))  # TimeoutError if the timer cancelled
            raise


def _at_once(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (``Timeout``'s enter and exit) to its end, here."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("expected a coroutine that does not suspend")
