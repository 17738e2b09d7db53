"""The pieces the websocket book clients share: a callback-driven run as an async iterator, the reconnect loop."""

from __future__ import annotations

import asyncio

import pytest

from cryptoarb.venues.bl3p.ws import Bl3pWsOptions
from cryptoarb.venues.kucoin.limits import Backoff
from cryptoarb.venues.streaming import BookFeed, iterate_sink


async def test_iterate_sink_yields_in_order_and_raises_what_the_run_raises():
    gate = asyncio.Event()

    async def run(sink):
        sink(1)
        sink(2)
        await gate.wait()
        raise RuntimeError("boom")

    batches = iterate_sink(run, name="t")
    assert [await anext(batches), await anext(batches)] == [1, 2]
    gate.set()
    with pytest.raises(RuntimeError, match="boom"):
        await anext(batches)


async def test_closing_the_iterator_cancels_the_run():
    cancelled = asyncio.Event()

    async def run(sink):
        sink("x")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    batches = iterate_sink(run, name="t")
    assert await anext(batches) == "x"
    await batches.aclose()
    assert cancelled.is_set()


class Probe(BookFeed):
    expected = (OSError,)

    def __init__(self) -> None:
        super().__init__(None, Bl3pWsOptions(), url="", venue="probe", clock=lambda: 0.0, on_updates=None,
                         on_gap=None, on_notice=None, backoff_factory=lambda: Backoff(0.001, 0.001, 0.0))
        self.counters = {"disconnects": 0}


async def test_reconnecting_reports_each_loss_until_closed():
    feed, lost, backoffs = Probe(), [], []
    outcomes = [OSError("refused"), None, OSError()]

    async def session(backoff: Backoff) -> None:
        backoffs.append(backoff)
        outcome = outcomes.pop(0)
        if not outcomes:
            await feed.close()
        if outcome is not None:
            raise outcome

    await feed._reconnecting(session, lost.append)
    assert lost == ["OSError: refused", "closed by the server", "OSError"]
    assert feed.counters["disconnects"] == 3 and feed.last_error == "OSError"
    assert len(set(map(id, backoffs))) == 1 and backoffs[0].attempt == 2  # one backoff per connection


async def test_an_unexpected_failure_propagates():
    async def session(backoff: Backoff) -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await Probe()._reconnecting(session, lambda reason: None)
