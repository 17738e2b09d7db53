"""eager_task: the coroutine's first segment runs inside the call, as its own task; the rest behaves as any
task's (results, errors, cancellation, timeouts, context variables)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from cryptoarb.eager import deadline_after_first_step, eager_task

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")


async def test_the_first_segment_runs_before_the_call_returns_and_the_rest_after() -> None:
    steps: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def work() -> int:
        steps.append("first")
        await gate
        steps.append("rest")
        return 7

    task = eager_task(work())
    assert steps == ["first"]  # a plain create_task would not have started yet
    gate.set_result(None)
    assert await task == 7 and steps == ["first", "rest"]


async def test_inside_the_first_segment_the_current_task_is_the_new_one() -> None:
    outer = asyncio.current_task()
    seen: list[asyncio.Task | None] = []

    async def work() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    task = eager_task(work())
    assert asyncio.current_task() is outer  # the caller's task is current again
    await task
    assert seen == [task, task]


async def test_a_timeout_entered_in_the_first_segment_cancels_the_new_task_not_the_caller() -> None:
    never = asyncio.get_running_loop().create_future()

    async def work() -> str:
        try:
            async with asyncio.timeout(0.01):
                await never
        except TimeoutError:
            return "timed out"
        return "not reached"

    task = eager_task(work())
    assert await task == "timed out"
    await asyncio.sleep(0)  # the caller goes on: it was not the one cancelled


async def test_results_and_errors_of_a_coroutine_that_never_suspends() -> None:
    async def done() -> str:
        return "now"

    async def fails() -> None:
        raise ValueError("at once")

    assert await eager_task(done()) == "now"
    with pytest.raises(ValueError, match="at once"):
        await eager_task(fails())


async def test_cancelling_it_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def work(wait_on: asyncio.Future) -> None:
        try:
            await wait_on
        finally:
            cleaned.append("finally")

    loop = asyncio.get_running_loop()
    task = eager_task(work(loop.create_future()))
    task.cancel()  # before the task's first step: the coroutine is already waiting
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"] and task.cancelled()

    cleaned.clear()
    never = loop.create_future()
    task = eager_task(work(never))
    await asyncio.sleep(0)  # the task has stepped and waits on the future itself
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"] and never.cancelled()


async def test_context_variables_set_by_the_task_stay_in_the_task() -> None:
    async def work() -> str:
        var.set("inner")
        await asyncio.sleep(0)
        return var.get()

    task = eager_task(work())
    assert var.get() == "outer"
    assert await task == "inner" and var.get() == "outer"


async def test_errors_after_a_suspension_reach_the_awaiter() -> None:
    async def work() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    with pytest.raises(KeyError, match="later"):
        await eager_task(work())


# -- deadline_after_first_step ----------------------------------------------------------------------------


class TimerLog:
    """Notes, in order, each step of the awaited coroutine and each timer the loop is asked for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        call_at = loop.call_at

        def noting(when, callback, *args, context=None):  # type: ignore[no-untyped-def]
            self.events.append("timer")
            return call_at(when, callback, *args, context=context)

        monkeypatch.setattr(loop, "call_at", noting)


async def test_the_first_step_runs_before_the_timer_is_set_and_the_result_comes_back(monkeypatch) -> None:
    log = TimerLog(asyncio.get_running_loop(), monkeypatch)
    gate = asyncio.get_running_loop().create_future()

    async def place() -> str:
        log.events.append("written")
        await gate
        return "filled"

    asyncio.get_running_loop().call_soon(gate.set_result, None)
    assert await deadline_after_first_step(place(), 5.0) == "filled"
    assert log.events == ["written", "timer"]
    log.events.clear()
    async with asyncio.timeout(5.0):  # what it replaces sets its timer first
        await place()
    assert log.events == ["timer", "written"]


async def test_an_awaitable_that_never_suspends_sets_no_timer(monkeypatch) -> None:
    log = TimerLog(asyncio.get_running_loop(), monkeypatch)

    async def instant() -> int:
        return 3

    assert await deadline_after_first_step(instant(), 5.0) == 3
    assert log.events == []


async def test_expiry_cancels_the_awaitable_and_raises_timeout_error() -> None:
    seen: list[str] = []

    async def hangs() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with pytest.raises(TimeoutError):
        await deadline_after_first_step(hangs(), 0.01)
    assert seen == ["cancelled"]
    assert asyncio.current_task().cancelling() == 0  # the timer's cancel request is withdrawn, as timeout() does


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    seen: list[str] = []
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def caller() -> None:
        await deadline_after_first_step(hangs(), 60.0)

    task = asyncio.get_running_loop().create_task(caller())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_errors_come_back_from_either_step_and_no_timer_outlives_the_await() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def fails_at_once() -> None:
        raise ValueError("refused")

    async def fails_later() -> None:
        await gate
        raise KeyError("lost")

    with pytest.raises(ValueError, match="refused"):
        await deadline_after_first_step(fails_at_once(), 5.0)
    asyncio.get_running_loop().call_soon(gate.set_result, None)
    with pytest.raises(KeyError):
        await deadline_after_first_step(fails_later(), 0.05)
    await asyncio.sleep(0.1)  # past the deadline: its timer was cancelled with the await, so nothing fires
    assert asyncio.current_task().cancelling() == 0
