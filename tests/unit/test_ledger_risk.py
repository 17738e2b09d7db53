from decimal import Decimal as D

from cryptoarb.core.ledger import Ledger
from cryptoarb.core.risk import RiskGate, RiskLimits
from cryptoarb.model import Cycle, Fill, Leg, Market, Opportunity, RejectReason, Side

BTC_USDT = Market("v", "BTC-USDT", "BTC", "USDT", D("0.1"), D("0.0001"), D("0.0001"), D("1"), D("0.001"),
                  D("0.001"))
MARKETS = {BTC_USDT.key: BTC_USDT}


def fill(side: Side, price: str, size: str, fee: str, fee_asset: str = "USDT") -> Fill:
    return Fill("o-L0", "o", 0, "v", "BTC-USDT", side, D(price), D(size), D(fee), fee_asset, 0.0)


def test_fills_move_balances_exactly_with_fees_in_their_currency():
    ledger = Ledger({"v": {"USDT": 1000.0, "BTC": 0.0}})
    ledger.apply([fill(Side.BUY, "20000.1", "0.0123", "0.24600123")], MARKETS, lambda v, a: None)
    assert ledger.free("v", "BTC") == D("0.0123")
    assert ledger.free("v", "USDT") == D("1000") - D("20000.1") * D("0.0123") - D("0.24600123")
    ledger.apply([fill(Side.SELL, "20010", "0.0123", "0.0001", fee_asset="BTC")], MARKETS, lambda v, a: None)
    assert ledger.free("v", "BTC") == D("-0.0001")
    assert ledger.trades == 2


def test_realized_usd_values_every_asset_delta():
    ledger = Ledger({"v": {"USDT": 1000.0}})
    prices = {"USDT": 1.0, "BTC": 20000.0}
    realized = ledger.apply([fill(Side.BUY, "19990", "0.01", "0.1999")], MARKETS, lambda v, a: prices[a])
    # paid 199.9 + 0.1999 fee for BTC worth 200
    assert abs(realized - (200.0 - 199.9 - 0.1999)) < 1e-9
    assert abs(ledger.realized_pnl_usd - realized) < 1e-12
    assert abs(ledger.fees_usd - 0.1999) < 1e-12


def cycle() -> Cycle:
    return Cycle(0, (Leg(BTC_USDT, Side.BUY), Leg(BTC_USDT, Side.SELL)))


def opportunity(profit_usd: float) -> Opportunity:
    return Opportunity("o", 0, "triangular", ("USDT", "BTC", "USDT"), (), D(1), D(1), D(0), profit_usd, 1.0, 0.0)


def test_pre_check_enforces_kill_pause_cooldown_and_concurrency():
    gate = RiskGate(RiskLimits(max_concurrent=1, cooldown_s=5.0))
    assert gate.pre_check(cycle(), 0.0) is None
    gate.started("a")
    assert gate.pre_check(cycle(), 0.0) is RejectReason.MAX_CONCURRENT
    gate.finished("a", 0.0, [BTC_USDT.key], now=10.0)
    assert gate.pre_check(cycle(), 14.9) is RejectReason.COOLDOWN
    assert gate.pre_check(cycle(), 15.1) is None
    gate.paused.add(BTC_USDT.key)
    assert gate.pre_check(cycle(), 20.0) is RejectReason.PAUSED
    gate.kill("manual")
    assert gate.pre_check(cycle(), 20.0) is RejectReason.KILL_SWITCH
    assert gate.check(opportunity(5.0)) is RejectReason.KILL_SWITCH


def test_min_profit_and_notional_cap():
    gate = RiskGate(RiskLimits(min_profit_usd=0.05, max_notional_usd=1000.0))
    assert gate.check(opportunity(0.04)) is RejectReason.BELOW_MIN_PROFIT
    assert gate.check(opportunity(0.05)) is None
    assert gate.max_input(20000.0) == D("0.05")
    assert gate.max_input(0.0) == 0


def test_daily_loss_limit_trips_the_kill_switch_and_resets_next_day():
    gate = RiskGate(RiskLimits(daily_loss_limit_usd=10.0))
    gate.finished("a", -6.0, [], now=100.0)
    assert not gate.killed
    gate.finished("b", -4.0, [], now=200.0)
    assert gate.killed and "daily loss" in gate.killed_reason
    gate.reset_kill()
    gate.finished("c", -9.0, [], now=86_400.0 + 1)  # a new UTC day starts from zero
    assert not gate.killed


def test_drawdown_from_the_peak_trips_the_kill_switch():
    gate = RiskGate(RiskLimits(daily_loss_limit_usd=1_000.0, max_drawdown_usd=50.0))
    gate.finished("a", 80.0, [], now=10.0)
    gate.finished("b", -45.0, [], now=20.0)
    assert not gate.killed and gate.peak_pnl_usd == 80.0
    gate.finished("c", -5.0, [], now=30.0)
    assert gate.killed and "drawdown: 50.00 USD below the peak of 80.00" in gate.killed_reason
    assert gate.killed_at == 30.0
    gate.reset_kill()  # the peak restarts from where PnL stands
    gate.finished("d", -10.0, [], now=40.0)
    assert not gate.killed


def test_error_rate_over_the_recent_requests_trips_the_kill_switch():
    gate = RiskGate(RiskLimits(max_error_rate=0.5, error_window=10, error_min_requests=6))
    gate.record_requests(ok=3, failed=2, now=1.0)
    assert not gate.killed  # 5 requests: not enough to judge
    gate.record_requests(ok=0, failed=1, now=2.0)
    assert gate.killed and "3 of the last 6" in gate.killed_reason
    gate.reset_kill()
    assert gate.error_rate == 0.0
    gate.record_requests(ok=20, failed=4, now=3.0)  # 4 of the last 10
    assert not gate.killed and abs(gate.error_rate - 0.4) < 1e-12


def test_stale_data_trips_the_kill_switch():
    gate = RiskGate(RiskLimits(stale_data_s=5.0))
    assert gate.check_stale(100.0) is None  # no stream seen yet: nothing to judge
    gate.data_seen("kucoin", 100.0)
    assert gate.check_stale(104.0) is None
    reason = gate.check_stale(105.5)
    assert reason == gate.killed_reason and "no market data from kucoin for 5.5 s" in reason
    assert gate.pre_check(cycle(), 105.5) is RejectReason.KILL_SWITCH
    assert RiskGate(RiskLimits(stale_data_s=0.0)).check_stale(1e9) is None


def test_limits_stay_plain_numbers():
    from dataclasses import asdict

    assert all(isinstance(v, int | float) for v in asdict(RiskLimits()).values())  # shown by !risk
