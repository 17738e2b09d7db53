"""Paper fills on a real venue's feed never take the same liquidity twice: the venue's next push still shows
what a paper fill took (the order never reached it), and the executor keeps that out of later fills."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoarb.config import Settings
from cryptoarb.core.books import BookStore
from cryptoarb.engine import Engine
from cryptoarb.execution.paper import PaperExecutor
from cryptoarb.execution.taken_liquidity import TakenLiquidity
from cryptoarb.model import BookUpdate, Market, Order, OrderStatus, Side

PRICES = (100.0, 101.0, 102.0, 103.0)
SIZE = st.integers(0, 12).map(lambda n: n / 4)  # quarters of a lot of 0.25
LOT = D("0.25")


def snapshot(store: BookStore, seq: int, asks: dict[float, float]) -> None:
    levels = tuple((p, q) for p, q in sorted(asks.items()) if q > 0)
    store.apply(BookUpdate("v", "A-USDT", ((99.0, 5.0),), levels, seq, 0, float(seq)))


def delta(store: BookStore, seq: int, price: float, size: float) -> None:
    store.apply(BookUpdate("v", "A-USDT", (), ((price, size),), seq, 0, float(seq), snapshot=False))


events = st.lists(st.one_of(
    st.tuples(st.just("snapshot"), st.dictionaries(st.sampled_from(PRICES), SIZE)),
    st.tuples(st.just("delta"), st.sampled_from(PRICES), SIZE),
    st.tuples(st.just("take"), st.sampled_from(PRICES), SIZE.filter(lambda q: q > 0)),
), min_size=1, max_size=25)


@settings(max_examples=400, deadline=None)
@given(first=st.dictionaries(st.sampled_from(PRICES), SIZE), events=events)
def test_each_take_gets_what_the_venue_shows_less_what_we_took_there(first, events):
    """Oracle: at every price, what a take may have is the venue's last word on that level (snapshot or delta)
    less everything paper fills took there; a taker walk over that, best price first, up to the limit."""
    store = BookStore()
    snapshot(store, 1, first)
    shown = {p: q for p, q in first.items() if q > 0}
    took: dict[float, D] = {}
    memory = TakenLiquidity(memory_s=1e9)
    seq = 1
    for event in events:
        if event[0] != "take":
            seq += 1
        if event[0] == "snapshot":
            snapshot(store, seq, event[1])
            shown = {p: q for p, q in event[1].items() if q > 0}
        elif event[0] == "delta":
            _, price, size = event
            delta(store, seq, price, size)
            assert not store.get(("v", "A-USDT")).gapped
            shown.pop(price, None)
            if size > 0:
                shown[price] = size
        else:
            _, limit, size = event
            expected = []
            left = D(repr(size))
            for price in sorted(shown):
                if price > limit or left <= 0:
                    break
                available = D(repr(shown[price])) - took.get(price, D(0))
                if available > 0:
                    qty = min(available, left)
                    expected.append((price, qty))
                    left -= qty
            got = memory.take(store.get(("v", "A-USDT")), True, limit, D(repr(size)), 0.0, LOT)
            assert got == expected
            for price, qty in got:
                took[price] = took.get(price, D(0)) + qty
            # the engine's book shows no more than the oracle leaves either, up to where the take stopped
            book_asks = dict(store.get(("v", "A-USDT")).asks)
            for price in [p for p in shown if got and p <= got[-1][0]]:
                assert D(repr(book_asks.get(price, 0.0))) <= max(D(repr(shown[price])) - took.get(price, D(0)), D(0))


def test_what_was_taken_is_offered_again_once_the_memory_lapses():
    store = BookStore()
    snapshot(store, 1, {100.0: 2.0})
    memory = TakenLiquidity(memory_s=5.0)
    book = store.get(("v", "A-USDT"))
    assert memory.take(book, True, 100.0, D("1.5"), 10.0, LOT) == [(100.0, D("1.5"))]
    snapshot(store, 2, {100.0: 2.0})
    assert memory.take(book, True, 100.0, D("1.5"), 14.0, LOT) == [(100.0, D("0.5"))]  # 2.0 shown, 1.5 ours
    snapshot(store, 3, {100.0: 2.0})
    assert memory.take(book, True, 100.0, D("1.5"), 18.9, LOT) == []  # 4.9 s after the last take: all ours
    snapshot(store, 4, {100.0: 2.0})
    assert memory.take(book, True, 100.0, D("1.5"), 24.0, LOT) == [(100.0, D("1.5"))]  # lapsed


def test_with_no_memory_a_take_lasts_until_the_venue_next_shows_the_level():
    store = BookStore()
    snapshot(store, 1, {100.0: 2.0})
    memory = TakenLiquidity(memory_s=0.0)
    book = store.get(("v", "A-USDT"))
    assert memory.take(book, True, 100.0, D("1.5"), 0.0, LOT) == [(100.0, D("1.5"))]
    assert memory.take(book, True, 100.0, D("1.5"), 0.0, LOT) == [(100.0, D("0.5"))]  # the book is net of it
    snapshot(store, 2, {100.0: 2.0})
    assert memory.take(book, True, 100.0, D("1.5"), 0.0, LOT) == [(100.0, D("1.5"))]


def _paper(taken_liquidity_s: float) -> tuple[PaperExecutor, BookStore]:
    store = BookStore()
    market = Market("v", "A-USDT", "A", "USDT", D("0.01"), D("0.01"), D("0.01"), D("1"), D("0.001"), D("0.001"))
    snapshot(store, 1, {100.0: 3.0, 101.0: 10.0})
    return PaperExecutor(store, {("v", "A-USDT"): market}, {}, taken_liquidity_s=taken_liquidity_s), store


def _buy(paper: PaperExecutor, n: int, now: float):
    order = Order(f"op{n}-L0", f"op{n}", 0, "v", "A-USDT", Side.BUY, D("100.0"), D("2"), now)
    return paper._send(order, now)


def test_paper_fills_on_a_real_feed_do_not_take_a_level_again_after_the_venue_pushes_it_unchanged():
    paper, store = _paper(taken_liquidity_s=5.0)
    first = _buy(paper, 1, 0.0)
    assert first.status is OrderStatus.FILLED and sum(f.size for f in first.fills) == D("2")
    snapshot(store, 2, {100.0: 3.0, 101.0: 10.0})  # the venue never saw our order: it shows 3.0 again
    second = _buy(paper, 2, 0.1)
    assert second.status is OrderStatus.PARTIAL and sum(f.size for f in second.fills) == D("1")
    snapshot(store, 3, {100.0: 3.0, 101.0: 10.0})
    assert _buy(paper, 3, 0.2).status is OrderStatus.CANCELED  # all 3.0 at 100 are ours already
    # 0 s of memory was the old behaviour: every push offered the same 3.0 again
    paper, store = _paper(taken_liquidity_s=0.0)
    _buy(paper, 1, 0.0)
    snapshot(store, 2, {100.0: 3.0, 101.0: 10.0})
    assert _buy(paper, 2, 0.1).status is OrderStatus.FILLED


def test_what_was_taken_is_subtracted_as_printed_decimals_and_leaves_no_dust():
    store = BookStore()
    memory = TakenLiquidity(memory_s=5.0)
    snapshot(store, 1, {100.0: 1.0, 101.0: 10.0})
    book = store.get(("v", "A-USDT"))
    assert memory.take(book, True, 100.0, D("0.9"), 0.0, D("0.01")) == [(100.0, D("0.9"))]
    snapshot(store, 2, {100.0: 1.0, 101.0: 10.0})
    # 1.0 - 0.9 in floats is 0.09999999999999998, which the 0.01 lot would floor to 0.09
    assert memory.take(book, True, 101.0, D("0.5"), 0.1, D("0.01")) == [(100.0, D("0.1")), (101.0, D("0.4"))]
    assert memory.owed("v", "A-USDT", True) == {100.0: D("1.0"), 101.0: D("0.4")}
    snapshot(store, 3, {1.01: 5_000_000.0, 1.02: 5_000_000.0})
    memory.take(book, True, 1.01, D("4999999.9999999997671693"), 0.2, D("1E-16"))
    assert book.asks == [(1.01, 2.328307e-10), (1.02, 5_000_000.0)]  # what is left, exactly; never float dust
    memory.take(book, True, 1.01, D("2.328307e-10"), 0.3, D("1E-16"))
    assert book.asks == [(1.02, 5_000_000.0)]


def _engine(books: dict[str, tuple], cooldown_s: float = 0.0) -> tuple[Engine, list]:
    markets = [Market("x", s, *s.split("-"), D("0.0001"), D("0.0001"), D("0.0001"), D("0.1"), D("0.001"), D("0.001"))
               for s in books]
    events: list = []
    settings = Settings(balances={"x": {"USDT": 1000}}, risk={"cooldown_s": cooldown_s})
    return Engine(settings, {"x": object()}, markets, events.append, run_id="tl"), events


@pytest.mark.parametrize("memory_s", [5.0, 0.0])
def test_the_engine_sees_a_venues_level_net_of_what_paper_fills_took_there(memory_s):
    # a triangle that persists on the venue's books, its last leg thin: once paper has taken that leg's level, a
    # live venue would show it gone, and the engine must not plan (and half-execute) the cycle on it again
    books = {"A-USDT": (((99.9, 100.0),), ((100.0, 100.0),)), "A-B": (((1.0, 100.0),), ((1.001, 100.0),)),
             "B-USDT": (((101.0, 2.0), (99.0, 100.0)), ((101.1, 100.0),))}
    engine, events = _engine(books)
    engine.executor.taken.memory_s = memory_s
    t = 0.0
    for seq in range(1, 41):  # the venue pushes the same books every 100 ms for 4 s
        engine.on_batch([BookUpdate("x", s, bids, asks, seq, 0, t) for s, (bids, asks) in books.items()], t, "x")
        engine.run_due(t + 0.001)
        t += 0.1
    engine.settle(t + 1)
    executions = [e for e in events if type(e).__name__ == "Execution"]
    sold_at_101 = sum(f.size for e in executions for r in e.results for f in r.fills
                      if r.order.symbol == "B-USDT" and f.price == D("101.0"))
    if memory_s:
        assert len(executions) == 1 and 0 < sold_at_101 <= 2  # the 2.0 B at 101 taken once, never planned on again
        # the engine's book shows what the venue would after our sale, push after push
        assert engine.books.get(("x", "B-USDT")).bids[0] == (101.0, float(2 - sold_at_101))
    else:
        assert sold_at_101 > 2  # without the memory, every push offered the same 2.0 B at 101 again


def test_a_take_walks_levels_up_to_the_limit_and_removes_what_it_took_from_the_local_book():
    store = BookStore()
    store.apply(BookUpdate("v", "A-B", ((100.0, 1.0), (99.0, 1.0)), ((101.0, 1.0), (102.0, 2.0), (105.0, 9.0)),
                           1, 0, 0.0))
    book = store.get(("v", "A-B"))
    memory = TakenLiquidity(memory_s=5.0)
    assert memory.take(book, True, 102.0, D("2.5"), 0.0, D("0.1"), remember=False) == [(101.0, D("1.0")),
                                                                                     (102.0, D("1.5"))]
    assert book.asks == [(102.0, 0.5), (105.0, 9.0)]
    assert memory.take(book, False, 99.5, D("5"), 0.0, D("0.1"), remember=False) == [(100.0, D("1.0"))]
    assert book.bids == [(99.0, 1.0)]  # 99 is below the limit
    assert memory.markets == set()  # a simulated venue's fills consume its own liquidity: nothing remembered
