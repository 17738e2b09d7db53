from decimal import Decimal as D

from cryptoarb.core.books import BookStore
from cryptoarb.execution.paper import PaperExecutor, client_oid
from cryptoarb.model import BookUpdate, Market, Opportunity, OrderStatus, PlannedLeg, Side


def market(symbol: str, fee_currency: str = "quote", min_funds: str = "1") -> Market:
    base, quote = symbol.split("-")
    return Market("v", symbol, base, quote, D("0.01"), D("0.01"), D("0.01"), D(min_funds), D("0.001"),
                  D("0.001"), fee_currency)


class Recorder:
    name = "v"

    def __init__(self) -> None:
        self.consumed: list[tuple] = []

    def consume(self, symbol, side, limit_price, size) -> None:
        self.consumed.append((symbol, side, limit_price, size))


def setup(books: dict[str, tuple[list, list]], **market_kw):
    store = BookStore()
    markets = {}
    for symbol, (bids, asks) in books.items():
        store.apply(BookUpdate("v", symbol, tuple(bids), tuple(asks), 1, 0, 0.0))
        m = market(symbol, **market_kw)
        markets[m.key] = m
    venue = Recorder()
    return PaperExecutor(store, markets, {"v": venue}), store, venue


def plan(*legs: PlannedLeg, input_: str) -> Opportunity:
    return Opportunity("op1", 3, "triangular", ("USDT", "A", "USDT"), legs, D(input_), D(0), D(0), 0.0, 0.0, 0.0)


def leg(symbol, side, price, size, asset_in, asset_out) -> PlannedLeg:
    return PlannedLeg("v", symbol, side, D(price), D(size), D(0), D(0), D(0), "", asset_in, asset_out, 0.0)


def test_fills_walk_depth_at_level_prices_and_consume_venue_liquidity():
    executor, store, venue = setup({"A-USDT": ([(9.0, 10.0)], [(10.0, 1.0), (10.5, 1.0), (11.0, 5.0)])})
    results = executor.execute(plan(leg("A-USDT", Side.BUY, "10.5", "1.5", "USDT", "A"), input_="100"), 1.0)
    (result,) = results
    assert result.status is OrderStatus.FILLED
    assert [(f.price, f.size) for f in result.fills] == [(D("10.0"), D("1.0")), (D("10.5"), D("0.5"))]
    assert [f.fee for f in result.fills] == [D("0.0100"), D("0.005250")]
    assert all(f.fee_asset == "USDT" for f in result.fills)
    assert result.order.client_oid == client_oid("op1", 0) and result.order.time_in_force == "IOC"
    assert venue.consumed == [("A-USDT", Side.BUY, D("10.5"), D("1.5"))]
    assert store.get(("v", "A-USDT")).asks[0] == (10.5, 0.5)  # our own fill is gone from the book


def test_partial_fill_feeds_next_leg_only_what_was_delivered():
    executor, _, _ = setup({"A-USDT": ([(12.0, 10.0)], [(10.0, 1.0)]), "A-BTC": ([], [])})
    opp = plan(leg("A-USDT", Side.BUY, "10", "3", "USDT", "A"),
               leg("A-USDT", Side.SELL, "12", "3", "A", "USDT"), input_="40")
    first, second = executor.execute(opp, 0.0)
    assert first.status is OrderStatus.PARTIAL and first.filled_size == D("1.0")
    assert second.order.size == D("1.0")  # not the planned 3
    assert second.status is OrderStatus.FILLED


def test_book_moved_away_gives_no_fill_and_stops_the_cycle():
    executor, _, venue = setup({"A-USDT": ([(9.0, 1.0)], [(10.2, 5.0)])})
    opp = plan(leg("A-USDT", Side.BUY, "10", "1", "USDT", "A"), leg("A-USDT", Side.SELL, "9", "1", "A", "USDT"),
               input_="20")
    results = executor.execute(opp, 0.0)
    assert len(results) == 1 and results[0].status is OrderStatus.CANCELED and not results[0].fills
    assert venue.consumed == []


def test_leg_below_min_funds_is_rejected_as_the_venue_would():
    executor, _, _ = setup({"A-USDT": ([(9.0, 1.0)], [(10.0, 5.0)])}, min_funds="50")
    (result,) = executor.execute(plan(leg("A-USDT", Side.BUY, "10", "1", "USDT", "A"), input_="20"), 0.0)
    assert result.status is OrderStatus.REJECTED and "below minimum" in result.reason


def test_fee_charged_in_received_asset_on_buys():
    executor, _, _ = setup({"A-USDT": ([(9.0, 1.0)], [(10.0, 5.0)])}, fee_currency="received")
    (result,) = executor.execute(plan(leg("A-USDT", Side.BUY, "10", "2", "USDT", "A"), input_="30"), 0.0)
    assert [(f.fee, f.fee_asset) for f in result.fills] == [(D("0.002"), "A")]


def test_failed_leg_is_unwound_back_to_the_start_asset_within_the_slippage_cap():
    books = {"A-USDT": ([(9.98, 0.5), (9.96, 10.0), (9.0, 10.0)], [(10.0, 5.0)]),
             "A-B": ([(0.6, 1.0)], [(0.9, 1.0)])}
    executor, _, _ = setup(books)
    opp = plan(leg("A-USDT", Side.BUY, "10", "2", "USDT", "A"),
               leg("A-B", Side.SELL, "0.7", "2", "A", "B"), input_="20.02")
    results = executor.execute(opp, 0.0)
    bought, failed, unwind = results
    assert bought.status is OrderStatus.FILLED and failed.status is OrderStatus.CANCELED
    assert unwind.order.client_oid == "op1-U2" and unwind.order.side is Side.SELL
    assert unwind.order.symbol == "A-USDT" and unwind.order.size == D("2.00")
    # 50 bps under the 9.98 best bid is 9.9301 -> 9.94 on the 0.01 tick: the 9.0 level is never touched
    assert unwind.order.price == D("9.94")
    assert [(f.price, f.size) for f in unwind.fills] == [(D("9.98"), D("0.50")), (D("9.96"), D("1.50"))]
    assert all(f.opportunity_id == "op1" for f in unwind.fills)


def test_hold_policy_keeps_the_stranded_asset():
    store = BookStore()
    markets = {}
    for symbol, (bids, asks) in {"A-USDT": ([(9.98, 5.0)], [(10.0, 5.0)]), "A-B": ([(0.6, 1.0)], [(0.9, 1.0)])}.items():
        store.apply(BookUpdate("v", symbol, tuple(bids), tuple(asks), 1, 0, 0.0))
        markets[("v", symbol)] = market(symbol)
    executor = PaperExecutor(store, markets, {}, failed_leg_policy="hold")
    opp = plan(leg("A-USDT", Side.BUY, "10", "2", "USDT", "A"),
               leg("A-B", Side.SELL, "0.7", "2", "A", "B"), input_="20.02")
    assert [r.order.client_oid for r in executor.execute(opp, 0.0)] == ["op1-L0", "op1-L1"]


def test_first_leg_sends_the_planned_size_later_legs_what_the_funds_at_the_limit_allow():
    # the plan walked two ask levels: 1 @ 10 + 1 @ 11 = 21 (+ fee) for 2 A; budget / limit would be 1.90
    books = {"A-USDT": ([(9.0, 10.0)], [(10.0, 1.0), (11.0, 5.0)]), "A-B": ([(1.0, 10.0)], [(1.2, 5.0)])}
    executor, _, _ = setup(books)
    opp = plan(leg("A-USDT", Side.BUY, "11", "2", "USDT", "A"), leg("A-B", Side.BUY, "1.3", "1.6", "A", "B"),
               input_="21.021")
    first, second, *rest = executor.execute(opp, 0.0)
    assert first.order.size == D("2") and first.status is OrderStatus.FILLED
    # 2 A buys what 2 / (1.3 * 1.001) allows on the 0.01 grid: a venue holds size * limit * (1 + fee)
    assert second.order.size == D("1.53") and second.status is OrderStatus.FILLED
    # the A that limit-price sizing left unspent is unwound
    assert [r.order.client_oid for r in rest] == ["op1-U2"] and rest[0].order.size == D("0.16")


def test_an_unwind_left_partly_filled_raises_an_alert_naming_the_opportunity():
    books = {"A-USDT": ([(9.98, 0.5)], [(10.0, 5.0)]), "A-B": ([(0.6, 1.0)], [(0.9, 1.0)])}
    executor, _, _ = setup(books)
    opp = plan(leg("A-USDT", Side.BUY, "10", "2", "USDT", "A"),
               leg("A-B", Side.SELL, "0.7", "2", "A", "B"), input_="20.02")
    outcome = executor.run(opp, 0.0)
    assert [r.order.client_oid for r in outcome.results] == ["op1-L0", "op1-L1", "op1-U2"]
    (alert,) = outcome.alerts
    assert alert == "op1: unwind sell A-USDT@v filled 0.5 of 2; the rest of its A held"
