"""Inventory skew and rebalance suggestions, the live-mode gate, latency percentiles."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest
from pydantic import SecretStr

from cryptoarb.config import Secrets, Settings, live_gate
from cryptoarb.core.inventory import InventoryMonitor, Rebalance, skews, suggest_rebalance
from cryptoarb.execution.latency import LatencyStats, percentile

PRICES = {"BTC": 50_000.0, "ETH": 2_500.0, "USDT": 1.0}


def mark(_venue: str, asset: str) -> float:
    return PRICES.get(asset, 0.0)


def test_cross_venue_drift_is_a_transfer_from_surplus_to_deficit():
    target = {("kucoin", "BTC"): D("0.2"), ("coinbase", "BTC"): D("0.2")}
    held = {("kucoin", "BTC"): D("0.05"), ("coinbase", "BTC"): D("0.35")}
    alerts = skews(held, target, mark, threshold_pct=50.0, min_usd=25.0)
    assert [(a.venue, a.deviation_pct) for a in alerts] == [("coinbase", 75.0), ("kucoin", -75.0)]
    assert suggest_rebalance(held, target, mark, min_usd=25.0) == [
        Rebalance("transfer", "BTC", "coinbase", "kucoin", D("0.15"), 7_500.0)]
    assert "move 0.15 BTC (~7,500.00 USD) from coinbase to kucoin" in \
        suggest_rebalance(held, target, mark, min_usd=25.0)[0].describe()


def test_a_total_shortfall_is_a_buy_on_the_short_venue():
    target = {("kucoin", "ETH"): D("3"), ("coinbase", "ETH"): D("3")}
    held = {("kucoin", "ETH"): D("1"), ("coinbase", "ETH"): D("3.5")}
    out = suggest_rebalance(held, target, mark, min_usd=25.0)
    assert out == [Rebalance("transfer", "ETH", "coinbase", "kucoin", D("0.5"), 1_250.0),
                   Rebalance("buy", "ETH", "kucoin", "kucoin", D("1.5"), 3_750.0)]


def test_monitor_alerts_once_per_episode_and_ignores_the_start_asset_and_dust():
    monitor = InventoryMonitor({"kucoin": {"BTC": 0.2, "USDT": 10_000.0}, "coinbase": {"BTC": 0.2}},
                               threshold_pct=50.0, min_usd=25.0, start_assets=frozenset({"USDT"}))
    calm = {("kucoin", "BTC"): D("0.19"), ("coinbase", "BTC"): D("0.21"), ("kucoin", "USDT"): D(1),
            ("kucoin", "DUST"): D("0.001")}
    assert monitor.check(calm, mark) is None
    skewed = {**calm, ("kucoin", "BTC"): D("0.05"), ("coinbase", "BTC"): D("0.35")}
    report = monitor.check(skewed, mark)
    assert report is not None and len(report.alerts) == 2 and report.suggestions[0].kind == "transfer"
    assert monitor.check(skewed, mark) is None  # same episode
    back = monitor.check(calm, mark)
    assert back is not None and back.alerts == ()


def test_a_start_asset_drained_from_one_venue_is_skew_though_its_total_drift_is_not():
    # cross-exchange cycles buy on one venue and sell on the other: USDT piles up where they sell and runs out
    # where they buy, and that venue's cycles stop; the total moving with PnL is not a thing to rebalance
    monitor = InventoryMonitor({"kucoin": {"USDT": 10_000.0}, "coinbase": {"USDT": 10_000.0}},
                               threshold_pct=50.0, min_usd=25.0, start_assets=frozenset({"USDT"}))
    lost = {("kucoin", "USDT"): D(9_000), ("coinbase", "USDT"): D(9_000)}  # a loss, spread evenly
    assert monitor.check(lost, mark) is None
    drained = {("kucoin", "USDT"): D(300), ("coinbase", "USDT"): D(19_700)}
    report = monitor.check(drained, mark)
    assert report is not None
    assert [(a.venue, a.asset) for a in report.alerts] == [("coinbase", "USDT"), ("kucoin", "USDT")]
    assert report.suggestions == (Rebalance("transfer", "USDT", "coinbase", "kucoin", D(9_700), 9_700.0),)


def test_an_asset_held_with_no_target_is_to_be_sold_where_it_is_held():
    # a hold policy strands what a failed leg bought: it has no target anywhere, and used to get no suggestion
    monitor = InventoryMonitor({"kucoin": {"USDT": 10_000.0}}, threshold_pct=50.0, min_usd=25.0,
                               start_assets=frozenset({"USDT"}))
    report = monitor.check({("kucoin", "USDT"): D(7_500), ("kucoin", "ETH"): D(1)}, mark)
    assert report is not None and [a.describe() for a in report.alerts] == [
        "ETH on kucoin: 1 held vs 0 target (no target, +2,500.00 USD)"]
    assert report.suggestions == (Rebalance("sell", "ETH", "kucoin", "kucoin", D(1), 2_500.0),)


def test_a_start_asset_is_only_ever_moved_never_bought_or_sold():
    # EUR is what cycles on bl3p start from; held where no target names it, it is still not "to be sold"
    monitor = InventoryMonitor({"kucoin": {"USDT": 10_000.0}}, threshold_pct=50.0, min_usd=25.0,
                               start_assets=frozenset({"USDT", "EUR"}))
    report = monitor.check({("kucoin", "USDT"): D(10_000), ("bl3p", "EUR"): D(1_000)},
                           lambda _venue, asset: 1.1 if asset == "EUR" else mark(_venue, asset))
    assert report is not None and [(a.venue, a.asset) for a in report.alerts] == [("bl3p", "EUR")]
    assert report.suggestions == ()


def _settings(**kw) -> Settings:
    return Settings(**kw)


KEYS = {"CRYPTOARB_SECRETS__KUCOIN_API_KEY": "k", "CRYPTOARB_SECRETS__KUCOIN_API_SECRET": "s",
        "CRYPTOARB_SECRETS__KUCOIN_API_PASSPHRASE": "p"}


def _with_keys(mode: str = "live") -> Settings:
    return Settings(mode=mode, secrets=Secrets(kucoin_api_key=SecretStr("k"), kucoin_api_secret=SecretStr("s"),
                                               kucoin_api_passphrase=SecretStr("p")))


def test_live_gate_open_only_with_all_three():
    assert live_gate(_with_keys(), True, environ=KEYS) == []


def test_live_gate_names_everything_missing():
    missing = live_gate(Settings(), False, environ={})
    assert missing[0] == "--live on the command line"
    assert missing[1] == 'mode = "live" in the configuration (it is "paper")'
    assert missing[2].startswith("kucoin API keys in the environment: CRYPTOARB_SECRETS__KUCOIN_API_KEY")
    assert len(missing) == 3


def test_live_gate_refuses_keys_that_did_not_come_from_the_environment():
    missing = live_gate(_with_keys(), True, environ={})  # set in code, not in the environment
    assert missing == ["kucoin API keys in the environment: CRYPTOARB_SECRETS__KUCOIN_API_KEY, "
                       "CRYPTOARB_SECRETS__KUCOIN_API_SECRET, CRYPTOARB_SECRETS__KUCOIN_API_PASSPHRASE"]
    partial = {k: v for k, v in KEYS.items() if not k.endswith("PASSPHRASE")}
    assert live_gate(_with_keys(), True, environ=partial) == [
        "kucoin API keys in the environment: CRYPTOARB_SECRETS__KUCOIN_API_PASSPHRASE"]
    assert live_gate(_with_keys("paper"), True, environ=KEYS) == [
        'mode = "live" in the configuration (it is "paper")']


def test_live_gate_reads_keys_loaded_from_the_environment(monkeypatch):
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CRYPTOARB_MODE", "live")
    assert live_gate(Settings(), True) == []
    assert live_gate(Settings(), False) == ["--live on the command line"]


def test_percentiles_and_stage_summary():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert math.isnan(percentile([], 50))
    stats = LatencyStats(window=3)
    for ms in (1.0, 2.0, 3.0, 100.0):
        stats.add("ack", ms)
    stats.record({"send": 0.5, "detect": float("nan")})
    summary = stats.summary()
    assert list(summary) == ["send", "ack"]
    assert summary["ack"] == pytest.approx({"n": 3.0, "p50": 3.0, "p90": 80.6, "p99": 98.06, "max": 100.0})
