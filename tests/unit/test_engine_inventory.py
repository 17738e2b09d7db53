"""Inventory mode: only cycles whose every leg is funded on its venue, sized within every leg's balance."""

from decimal import Decimal as D

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.model import BookUpdate, Market, Opportunity


def market(venue: str, symbol: str) -> Market:
    base, quote = symbol.split("-")
    return Market(venue, symbol, base, quote, D("0.01"), D("0.0001"), D("0.0001"), D("1"), D("0.001"), D("0.001"))


def engine(balances: dict) -> tuple[Engine, list]:
    settings = Settings(venues=["kucoin", "coinbase"], balances=balances,
                        execution={"leg_mode": "inventory"}, detector={"start_assets": ["USDT"]})
    events: list = []
    markets = [market("kucoin", "BTC-USDT"), market("coinbase", "BTC-USDT")]
    return Engine(settings, {}, markets, events.append), events


def feed(eng: Engine) -> None:
    eng.on_batch([BookUpdate("kucoin", "BTC-USDT", ((49_990.0, 10.0),), ((50_000.0, 10.0),), 1, 0, 0.0)], 0.0,
                 "kucoin")
    eng.on_batch([BookUpdate("coinbase", "BTC-USDT", ((50_500.0, 10.0),), ((50_510.0, 10.0),), 1, 0, 0.0)], 0.0,
                 "coinbase")


FUNDED = {"kucoin": {"USDT": 10_000.0, "BTC": 0.001}, "coinbase": {"BTC": 0.01, "USDT": 1.0}}


def test_cycles_need_every_legs_input_held_on_its_venue():
    funded, _ = engine(FUNDED)
    assert sorted(c.describe() for c in funded.cycles) == [
        "buy BTC-USDT@coinbase > sell BTC-USDT@kucoin", "buy BTC-USDT@kucoin > sell BTC-USDT@coinbase"]
    no_usdt_on_coinbase, _ = engine({"kucoin": {"USDT": 10_000.0, "BTC": 0.001}, "coinbase": {"BTC": 0.01}})
    assert no_usdt_on_coinbase.cycles == []  # selling on coinbase could not close back into USDT


def test_plan_is_capped_by_the_smallest_legs_inventory():
    eng, events = engine(FUNDED)
    feed(eng)
    (opportunity,) = [e for e in events if isinstance(e, Opportunity)]
    buy, sell = opportunity.legs
    assert sell.venue == "coinbase" and sell.size <= D("0.01")  # never more BTC than coinbase holds
    assert buy.size <= D("0.01") and opportunity.profit > 0
    assert opportunity.input <= D("0.01") * D("50000") * D("1.001")


def test_a_triangle_through_an_asset_not_held_is_not_considered():
    def triangle(balances: dict) -> list[str]:
        settings = Settings(venues=["kucoin"], balances=balances, execution={"leg_mode": "inventory"},
                            detector={"start_assets": ["USDT"]})
        markets = [market("kucoin", s) for s in ("BTC-USDT", "XYZ-USDT", "XYZ-BTC")]
        return sorted(c.describe() for c in Engine(settings, {}, markets, lambda e: None).cycles)

    assert triangle({"kucoin": {"USDT": 1000.0, "BTC": 0.1}}) == []
    assert len(triangle({"kucoin": {"USDT": 1000.0, "BTC": 0.1, "XYZ": 5.0}})) == 2  # both directions


def test_realized_profit_counts_the_start_asset_on_every_venue():
    from cryptoarb.model import Execution

    eng, events = engine(FUNDED)
    feed(eng)
    eng.run_due(1.0)  # past the paper latency: the orders land
    (execution,) = [e for e in events if isinstance(e, Execution)]
    assert all(r.status.value == "filled" for r in execution.results)
    # USDT leaves kucoin and comes back on coinbase: the cycle made money, it did not lose its input
    assert execution.realized_profit > 0
    assert abs(float(execution.realized_profit) - execution.realized_profit_usd) < 0.01
