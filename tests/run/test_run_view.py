"""The live view of run/watch: drawn from a thread with pre-rendered segments, plain without a terminal."""

from __future__ import annotations

import asyncio
import io
import sys

from rich.console import Console

from cryptoarb.run.view import ThreadedStatusView
from cryptoarb.status import BestOpportunity, EngineStatus


def status(updates: int) -> EngineStatus:
    return EngineStatus(
        mode="watch", venues=("kucoin",), uptime_s=12.0, updates=updates, updates_per_s=12_000.0,
        books_tradeable=1250, books_total=1250, opportunities_detected=3, opportunities_executed=0,
        rejected_by_reason={"paused": 3}, trades=0, realized_pnl_usd=0.0, loop_lag_ms_p50=0.3,
        loop_lag_ms_p99=4.0, loop_lag_ms_max=9.0, db_path="-",
        best=(BestOpportunity(("USDT", "BTC", "ETH", "USDT"), "kucoin", 12.5, 0.4),))


async def test_terminal_view_draws_from_a_thread_and_restores_the_switch_interval() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    calls = 0

    def get_status() -> EngineStatus:
        nonlocal calls
        calls += 1
        return status(calls * 1000)

    before = sys.getswitchinterval()
    view = ThreadedStatusView(get_status, console, interval_s=0.01)
    task = asyncio.create_task(view.run())
    while view.draws < 3:
        assert not task.done()
        await asyncio.sleep(0.01)
    assert sys.getswitchinterval() <= 0.001
    console.print("a notifier line while the view is up")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sys.getswitchinterval() == before
    text = out.getvalue()
    assert "cryptoarb" in text and "USDT>BTC>ETH>USDT" in text and "WATCH" in text
    assert "a notifier line while the view is up" in text


async def test_without_a_terminal_it_is_the_plain_status_line() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=300)
    view = ThreadedStatusView(lambda: status(5000), console, interval_s=0.01, plain_interval_s=0.01)
    task = asyncio.create_task(view.run())
    while "updates 5,000" not in out.getvalue():
        assert not task.done()
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert view.draws == 0 and "\x1b[" not in out.getvalue()
