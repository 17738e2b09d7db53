"""Event categories, burst aggregation (pure, explicit time) and the PnL chart."""

from __future__ import annotations

import io

import pytest
from fake_discord import execution, notice, opportunity, rejection

from cryptoarb.charts import pnl_chart_png
from cryptoarb.model import RejectReason
from cryptoarb.notify.aggregate import Aggregator, Burst, Category, EventSwitches, category

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("event", "expected"), [
    (opportunity(), Category.OPPORTUNITY),
    (rejection(), Category.REJECTION),
    (execution(), Category.TRADE),
    (execution(fail_last=True), Category.FAILED_LEG),
    (notice("risk"), Category.RISK),
    (notice("kill_switch"), Category.RISK),
    (notice("risk.cooldown"), Category.RISK),
    (notice("venue", "kucoin reconnected"), Category.CONNECTION),
    (notice("error", "boom"), Category.ERROR),
    (notice("fill", "partial fill"), Category.FILL),
    (notice("unwind", "unwound leg 2"), Category.FAILED_LEG),
    (notice("daily_summary"), Category.DAILY_SUMMARY),
    (notice("weather"), Category.OTHER),
    # each rebalance suggestion says which asset to move where: never folded into a count
    (notice("inventory", "inventory skew: BTC on kucoin"), Category.RISK),
    (notice("rebalance", "suggested rebalance: move 2 ETH from bl3p to kucoin"), Category.RISK),
    (notice("task_failed", "scanner failed"), Category.ERROR),
    (notice("preflight", "op1 refused before any order"), Category.REJECTION),
])
def test_categories(event: object, expected: Category) -> None:
    assert category(event) is expected  # type: ignore[arg-type]


def test_an_execution_in_which_nothing_filled_is_market_noise_not_a_trade() -> None:
    # a plan whose every order missed moved no money; as an essential "trade" each one was posted, never
    # aggregated, and a burst of them could hold up a kill switch notice
    ex = execution(fail_last=True)
    missed = type(ex)(ex.opportunity, tuple(type(r)(r.order, r.status) for r in ex.results), ex.realized_profit,
                      0.0, 0.0, at=ex.at)
    assert category(missed) is Category.REJECTION


def test_switches_turn_categories_off() -> None:
    switches = EventSwitches(opportunity=False)
    assert not switches.enabled(Category.OPPORTUNITY)
    assert switches.enabled(Category.TRADE)
    assert not EventSwitches().enabled(Category.REJECTION)  # rejections are opt-in
    assert set(EventSwitches.model_fields) == {c.value for c in Category}  # one switch per category


def test_first_event_passes_and_the_rest_of_the_burst_becomes_one_count() -> None:
    agg = Aggregator(window_s=10.0)
    sent = [item for i in range(100) for item in agg.offer(opportunity(i, bps=float(i)), Category.OPPORTUNITY,
                                                              now=i * 0.01)]
    assert sent == [opportunity(0, bps=0.0)]
    assert agg.due(5.0) == []
    assert agg.deadline() == 10.0
    (burst,) = agg.due(10.0)
    assert isinstance(burst, Burst)
    assert burst.count == 99 and burst.best is not None and burst.best.net_return_bps == 99.0
    assert burst.profit_usd == pytest.approx(99 * 0.5)


def test_a_steady_stream_is_one_message_per_window_and_quiet_keys_go_cold() -> None:
    agg = Aggregator(window_s=1.0)
    messages = 0
    t = 0.0
    while t < 10.0:  # 100 events per second for 10 s
        messages += len(agg.offer(opportunity(), Category.OPPORTUNITY, t))
        messages += len(agg.due(t))
        t += 0.01
    assert 9 <= messages <= 12
    messages += len(agg.due(t + 1.0))  # the last burst
    assert agg.due(t + 2.0) == [] and agg.deadline() is None  # quiet: cold again
    assert agg.offer(opportunity(), Category.OPPORTUNITY, t + 3.0) == [opportunity()]


def test_an_overdue_burst_goes_out_before_the_next_event() -> None:
    agg = Aggregator(window_s=1.0)
    agg.offer(notice("venue", "a"), Category.CONNECTION, 0.0)
    agg.offer(notice("venue", "b"), Category.CONNECTION, 0.5)
    agg.offer(notice("venue", "c"), Category.CONNECTION, 0.6)
    overdue, *rest = agg.offer(notice("venue", "d"), Category.CONNECTION, 5.0)
    assert isinstance(overdue, Burst) and overdue.count == 2
    assert rest == [notice("venue", "d")]


def test_rejections_are_only_ever_counts_and_single_leftovers_go_out_as_themselves() -> None:
    agg = Aggregator(window_s=1.0)
    assert agg.offer(rejection(1), Category.REJECTION, 0.0) == []
    agg.offer(rejection(2, RejectReason.STALE_BOOK), Category.REJECTION, 0.1)
    (burst,) = agg.drain()
    assert isinstance(burst, Burst) and burst.count == 2
    assert burst.labels == {"insufficient_depth": 1, "stale_book": 1}
    agg.offer(notice("venue", "x"), Category.CONNECTION, 0.0)
    agg.offer(notice("venue", "y"), Category.CONNECTION, 0.1)
    assert agg.drain() == [notice("venue", "y")]


def test_different_notice_kinds_are_different_bursts() -> None:
    agg = Aggregator(window_s=1.0)
    assert len(agg.offer(notice("venue"), Category.CONNECTION, 0.0)) == 1
    assert len(agg.offer(notice("ws"), Category.CONNECTION, 0.0)) == 1


def test_window_zero_turns_aggregation_off() -> None:
    agg = Aggregator(window_s=0.0)
    assert all(agg.offer(opportunity(i), Category.OPPORTUNITY, 0.0) == [opportunity(i)] for i in range(5))


def test_pnl_chart_is_a_png_of_the_running_sum() -> None:
    png = pnl_chart_png([(1_700_000_000.0 + 60 * i, (-1) ** i * 0.5 * i) for i in range(50)])
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    image = pytest.importorskip("matplotlib.image").imread(io.BytesIO(png), format="png")
    assert image.shape[:2] == (400, 800)
    assert pnl_chart_png([]).startswith(PNG_MAGIC)
    assert pnl_chart_png([(3.0, 1.0), (1.0, -2.0)], title="replay").startswith(PNG_MAGIC)
