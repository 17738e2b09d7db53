"""StatusView: the rendered view holds the key numbers; the plain line is stable; run() in both modes."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from cryptoarb.notify import StatusView
from cryptoarb.notify.view import duration
from cryptoarb.status import BestOpportunity, EngineStatus


def status(**changes: object) -> EngineStatus:
    values: dict[str, object] = dict(
        mode="paper", venues=("kucoin",), uptime_s=3723.4, updates=1_234_567, updates_per_s=4321.0,
        books_tradeable=1180, books_total=1250, opportunities_detected=87, opportunities_executed=9,
        rejected_by_reason={"below_min_profit": 312, "insufficient_depth": 45}, trades=27,
        realized_pnl_usd=12.3456, loop_lag_ms_p50=0.42, loop_lag_ms_p99=3.14, loop_lag_ms_max=17.9,
        db_path="data/cryptoarb.sqlite",
        best=(BestOpportunity(("USDT", "BTC", "ETH", "USDT"), "kucoin", 23.46, 1.2),
              BestOpportunity(("USDT", "KCS", "BTC", "USDT"), "kucoin", 7.5, None)),
        balances={"kucoin": {"USDT": 10_000.0, "BTC": 0.15}},
    )
    values.update(changes)
    return EngineStatus(**values)  # type: ignore[arg-type]


def rendered(view: StatusView, s: EngineStatus) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(view.render(s))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_render_contains_the_key_numbers() -> None:
    text = rendered(StatusView(status), status())
    for expected in ("PAPER", "kucoin", "1h02m03s", "1,234,567", "4,321/s", "1,180/1,250",
                     "87 detected / 9 executed", "357 (below_min_profit 312, insufficient_depth 45)",
                     "27", "+$12.35", "p50 0.4", "p99 3.1", "max 17.9", "data/cryptoarb.sqlite",
                     "USDT>BTC>ETH>USDT", "23.5", "+$1.20", "USDT>KCS>BTC>USDT", "10,000", "0.15"):
        assert expected in text, expected


def test_render_copes_with_an_empty_engine() -> None:
    text = rendered(StatusView(status), status(best=(), balances={}, rejected_by_reason={}, updates=0,
                                               realized_pnl_usd=-3.0, mode="live"))
    assert "none yet" in text and "LIVE" in text and "-$3.00" in text


def test_plain_line() -> None:
    assert StatusView(status).plain_line(status()) == (
        "paper kucoin | up 1h02m03s | updates 1,234,567 (4,321/s) | books 1180/1250 "
        "| opportunities 87 detected, 9 executed "
        "| rejected 357 (below_min_profit 312, insufficient_depth 45) | trades 27 | pnl +$12.35 "
        "| lag ms p50 0.4 p99 3.1 max 17.9 | best 23.5 bps")
    assert "\n" not in StatusView(status).plain_line(status(best=()))


def test_duration() -> None:
    assert [duration(s) for s in (0, 59.9, 61, 3600, 90061)] == [
        "0s", "59s", "1m01s", "1h00m00s", "25h01m01s"]


async def test_plain_mode_when_not_a_terminal() -> None:
    out = io.StringIO()
    calls = 0

    def get() -> EngineStatus:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("snapshot raced")  # a bad snapshot is skipped, not fatal
        return status(updates=calls)

    view = StatusView(get, Console(file=out, width=300, color_system=None), plain_interval_s=0.01)
    task = asyncio.create_task(view.run())
    async with asyncio.timeout(5):
        while out.getvalue().count("\n") < 2:
            await asyncio.sleep(0.005)
    view.stop()
    await task
    first, second = out.getvalue().splitlines()[:2]
    assert first.startswith("paper kucoin | up 1h02m03s | updates 1 ")
    assert second.startswith("paper kucoin | up 1h02m03s | updates 3 ")


async def test_live_mode_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True, color_system=None)
    view = StatusView(status, console, interval_s=0.01)
    task = asyncio.create_task(view.run())
    async with asyncio.timeout(5):
        while "87 detected" not in out.getvalue():
            await asyncio.sleep(0.005)
    view.stop()
    await task
    assert "USDT>BTC>ETH>USDT" in out.getvalue()
