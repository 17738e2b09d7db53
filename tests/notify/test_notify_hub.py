"""NotifierHub: non-blocking publish, per-notifier queues, executions never dropped."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from cryptoarb.model import Event, Execution, Notice, Opportunity, Rejection, RejectReason
from cryptoarb.notify import Notifier, NotifierHub


def opportunity(oid: str) -> Opportunity:
    return Opportunity(oid, 1, "triangular", ("USDT", "BTC", "USDT"), (), Decimal(100), Decimal(101),
                       Decimal(1), 1.0, 100.0, 0.0)


def execution(oid: str) -> Execution:
    return Execution(opportunity(oid), (), Decimal(1), 1.0, 0.0, at=1.0)


def rejection(i: int) -> Rejection:
    return Rejection(i, ("USDT", "BTC", "USDT"), RejectReason.INSUFFICIENT_DEPTH, "", 0.0, 0.0)


class Recorder:
    """A notifier that can be held shut (a slow webhook) and records what it got."""

    def __init__(self, gate_open: bool = True) -> None:
        self.events: list[Event] = []
        self.gate = asyncio.Event()
        if gate_open:
            self.gate.set()
        self.entered = asyncio.Event()
        self.closed = False

    async def notify(self, event: Event) -> None:
        self.entered.set()
        await self.gate.wait()
        self.events.append(event)

    async def close(self) -> None:
        self.closed = True


class Broken:
    async def notify(self, event: Event) -> None:
        raise RuntimeError("webhook down")

    async def close(self) -> None:
        raise RuntimeError("still down")


async def test_slow_notifier_never_loses_executions() -> None:
    slow, fast = Recorder(gate_open=False), Recorder()
    assert isinstance(slow, Notifier)
    hub = NotifierHub([slow, fast], max_queue=100)
    published = 0
    async with asyncio.TaskGroup() as tg:
        tg.create_task(hub.run())
        hub.publish(rejection(-1))
        await slow.entered.wait()  # the slow notifier is now stuck on its first event
        for i in range(200):
            for j in range(20):
                hub.publish(rejection(i * 20 + j))
            hub.publish(opportunity(f"o{i}"))
            hub.publish(execution(f"e{i}"))
            await asyncio.sleep(0)  # the engine yields between frames; the fast notifier keeps up
        hub.publish(Notice("risk", "kill switch", at=1.0))
        published = 1 + 200 * 22 + 1
        slow.gate.set()
        await hub.close()
    got = [e.opportunity.id for e in slow.events if isinstance(e, Execution)]
    assert got == [f"e{i}" for i in range(200)]  # every one, in order
    assert isinstance(slow.events[-1], Notice)
    dropped = hub.dropped["Recorder"]
    assert dropped["Rejection"] > 3000 and set(dropped) <= {"Rejection", "Opportunity"}
    assert len(slow.events) + sum(dropped.values()) == published
    assert len(fast.events) == published and hub.dropped["Recorder#2"] == {}
    assert slow.closed and fast.closed


async def test_publish_is_synchronous_and_close_drains_without_run() -> None:
    rec = Recorder()
    hub = NotifierHub([rec])
    hub.publish(execution("a"))
    hub.publish(rejection(1))
    assert rec.events == []
    await hub.close()
    assert [type(e) for e in rec.events] == [Execution, Rejection] and rec.closed
    hub.publish(execution("late"))  # after close: ignored, counted, never raises
    assert hub.dropped["Recorder"] == {"Execution": 1}


async def test_a_failing_notifier_does_not_stop_the_others() -> None:
    rec = Recorder()
    hub = NotifierHub([Broken(), rec])
    async with asyncio.TaskGroup() as tg:
        tg.create_task(hub.run())
        for i in range(3):
            hub.publish(execution(str(i)))
        await hub.close()
    assert len(rec.events) == 3
    assert hub.stats()["Broken"]["errors"] == 3 and hub.stats()["Recorder"]["delivered"] == 3


async def test_close_gives_up_on_a_stuck_notifier_after_timeout() -> None:
    stuck = Recorder(gate_open=False)
    hub = NotifierHub([stuck])
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(hub.run())
        hub.publish(execution("x"))
        await stuck.entered.wait()
        await hub.close(timeout=0.05)
    assert run.done() and stuck.closed and stuck.events == []


async def test_add_after_run_is_refused() -> None:
    hub = NotifierHub()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(hub.run())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            hub.add(Recorder())
        await hub.close()
