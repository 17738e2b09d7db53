"""Supervision: a failing task is reported and restarted with growing delays; cancellation is no failure."""

from __future__ import annotations

import asyncio

import pytest

from cryptoarb.run.supervisor import Supervisor


async def test_a_failed_task_is_reported_and_restarted_with_backoff() -> None:
    reports: list[tuple[str, str, float, int]] = []
    runs = 0
    healthy = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError(f"boom {runs}")
        healthy.set()
        await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        sup = Supervisor(group, on_failure=lambda n, e, d, r: reports.append((n, str(e), d, r)),
                         backoff_s=0.01, backoff_max_s=0.05)
        sup.spawn("flaky", flaky)
        await asyncio.wait_for(healthy.wait(), 5)
        state = sup.tasks["flaky"]
        assert state.state == "running" and state.restarts == 3 and state.failures == 3
        assert sup.states()["flaky"]["last_error"] == "RuntimeError: boom 3"
        await sup.stop()
    assert [(n, e, r) for n, e, _, r in reports] == [("flaky", "boom 1", 0), ("flaky", "boom 2", 1),
                                                     ("flaky", "boom 3", 2)]
    delays = [d for *_, d, _ in reports]
    assert all(0 < d <= 0.05 for d in delays)
    assert delays[2] > delays[0]  # doubling, with at most 25 % jitter
    assert sup.tasks["flaky"].state == "stopped"


async def test_one_failing_task_does_not_take_the_group_down() -> None:
    other_ran = asyncio.Event()
    failures: list[str] = []

    async def broken() -> None:
        raise ValueError("always")

    async def steady() -> None:
        other_ran.set()
        await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        sup = Supervisor(group, on_failure=lambda n, e, d, r: failures.append(n), backoff_s=0.001, backoff_max_s=0.002)
        sup.spawn("broken", broken)
        sup.spawn("steady", steady)
        await asyncio.wait_for(other_ran.wait(), 5)
        while len(failures) < 5:
            await asyncio.sleep(0.001)
        assert sup.tasks["steady"].state == "running"
        await sup.stop()
    assert sup.restarts >= 4


async def test_no_restart_and_normal_return() -> None:
    async def once() -> None:
        raise RuntimeError("no")

    async def done() -> None:
        return None

    failed: list[float] = []
    async with asyncio.TaskGroup() as group:
        sup = Supervisor(group, on_failure=lambda n, e, d, r: failed.append(d))
        a = sup.spawn("once", once, restart=False)
        b = sup.spawn("done", done)
        await asyncio.wait([a.task, b.task])
    assert a.state == "failed" and failed == [float("inf")]
    assert b.state == "finished" and b.failures == 0


async def test_spawning_a_running_name_twice_is_refused() -> None:
    async with asyncio.TaskGroup() as group:
        sup = Supervisor(group)
        sup.spawn("x", lambda: asyncio.Event().wait())
        with pytest.raises(RuntimeError, match="already running"):
            sup.spawn("x", lambda: asyncio.Event().wait())
        await sup.stop()
