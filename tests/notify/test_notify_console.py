"""ConsoleNotifier: concise lines for executions and notices, bursts summarised."""

from __future__ import annotations

import asyncio
import io
import logging
from decimal import Decimal

import pytest
from rich.console import Console

from cryptoarb.model import (
    Execution,
    Fill,
    Notice,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    Rejection,
    RejectReason,
    Side,
)
from cryptoarb.notify import ConsoleNotifier, NotifierHub
from cryptoarb.notify.console import execution_line


def opportunity(oid: str, bps: float = 10.0, usd: float = 0.5) -> Opportunity:
    return Opportunity(oid, 1, "triangular", ("USDT", "BTC", "ETH", "USDT"), (), Decimal(100), Decimal(101),
                       Decimal(1), usd, bps, 0.0)


def rejection(reason: RejectReason) -> Rejection:
    return Rejection(1, ("USDT", "BTC", "USDT"), reason, "", 0.0, 0.0)


def execution(statuses: tuple[OrderStatus, ...] = (OrderStatus.FILLED,) * 3,
              profit: str = "0.1200000001", usd: float = 0.12) -> Execution:
    results = []
    for i, status in enumerate(statuses):
        order = Order(f"x-{i}", "opp-9", i, "kucoin", "BTC-USDT", Side.BUY, Decimal(1), Decimal(1), 0.0)
        fills = () if status is OrderStatus.REJECTED else (
            Fill(order.client_oid, "opp-9", i, "kucoin", "BTC-USDT", Side.BUY, Decimal(1), Decimal(1),
                 Decimal(0), "USDT", 0.0),)
        results.append(OrderResult(order, status, fills, reason="min size" if fills == () else ""))
    return Execution(opportunity("opp-9"), tuple(results), Decimal(profit), usd, 0.03, at=1.0)


def make(interval: float = 60.0) -> tuple[ConsoleNotifier, io.StringIO]:
    out = io.StringIO()
    return ConsoleNotifier(Console(file=out, width=200, color_system=None),
                           summary_interval_s=interval), out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


async def test_burst_of_opportunities_becomes_one_line() -> None:
    notifier, out = make()
    for i in range(100):
        await notifier.notify(opportunity(f"o{i}", bps=float(i % 37)))
    for _ in range(20):
        await notifier.notify(rejection(RejectReason.BELOW_MIN_PROFIT))
    for _ in range(10):
        await notifier.notify(rejection(RejectReason.INSUFFICIENT_DEPTH))
    assert out.getvalue() == ""
    await notifier.close()
    assert lines(out) == [
        "100 opportunities (best 36.0 bps, +$0.50), 30 rejected (below_min_profit 20, insufficient_depth 10)"]


async def test_summary_is_printed_when_the_window_closes() -> None:
    notifier, out = make(interval=0.02)
    for i in range(100):
        await notifier.notify(opportunity(str(i)))
    async with asyncio.timeout(5):
        while not out.getvalue():
            await asyncio.sleep(0.005)  # polling a condition, bounded by the timeout
    assert lines(out) == ["100 opportunities (best 10.0 bps, +$0.50)"]
    await notifier.notify(rejection(RejectReason.STALE_BOOK))
    await notifier.close()
    assert lines(out)[1:] == ["1 rejected (stale_book 1)"]


async def test_execution_and_notice_lines() -> None:
    notifier, out = make()
    await notifier.notify(execution())
    await notifier.notify(execution((OrderStatus.FILLED, OrderStatus.PARTIAL, OrderStatus.REJECTED),
                                    profit="-0.5", usd=-0.5))
    await notifier.notify(Notice("venue", "kucoin reconnected", at=1.0, fields={"shard": "2"}))
    assert lines(out) == [
        "executed (paper) triangular USDT>BTC>ETH>USDT: +0.1200000001 USDT (+$0.12), fees $0.03, "
        "3/3 legs filled [opp-9]",
        "executed (paper) triangular USDT>BTC>ETH>USDT: -0.5 USDT (-$0.50), fees $0.03, "
        "1/3 legs filled, 1 partial, 1 failed (min size) [opp-9]",
        "[venue] kucoin reconnected (shard=2)",
    ]


async def test_logger_output(caplog: pytest.LogCaptureFixture) -> None:
    notifier = ConsoleNotifier(logger=logging.getLogger("cryptoarb"))
    with caplog.at_level(logging.INFO, logger="cryptoarb"):
        await notifier.notify(execution())
        await notifier.notify(Notice("risk", "paused", at=0.0))
    assert [r.getMessage()[:8] for r in caplog.records] == ["executed", "[risk] p"]


async def test_through_the_hub() -> None:
    notifier, out = make()
    hub = NotifierHub([notifier])
    async with asyncio.TaskGroup() as tg:
        tg.create_task(hub.run())
        for i in range(100):
            hub.publish(opportunity(str(i)))
        hub.publish(execution())
        await hub.close()
    assert len(lines(out)) == 2


def test_an_execution_in_which_nothing_filled_reads_as_gone_before_fill_not_executed() -> None:
    # the engine counts it under gone_before_fill, not executed: the console line must not say "executed"
    assert execution_line(execution((OrderStatus.REJECTED,), profit="0", usd=0.0)) == (
        "gone before fill (paper) triangular USDT>BTC>ETH>USDT: nothing filled (min size) [opp-9]")
