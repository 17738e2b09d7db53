"""The hot paths give what the general ones give.

``KucoinCodec.decode`` takes ``ticker:all`` and depth frames in KuCoin's own key order by a shortcut on the
raw bytes. The same frames with their keys in another order take the general dispatch; their updates,
applied through the book store and through ``Book.apply``, must leave every book in the same state.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoarb.core.books import Book, BookStore
from cryptoarb.model import BookUpdate
from cryptoarb.venues.kucoin.codec import _DEPTH_HEADS, _TICKER_ALL_HEAD, KucoinCodec

SYMBOLS = ("BTC-USDT", "ETH-BTC", "KCS-USDT")

number = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("99999.9"), places=8,
                     allow_nan=False, allow_infinity=False).map(lambda d: format(d.normalize(), "f"))
maybe_number = st.one_of(number, number, st.just("0"), st.none())  # null or zero: an empty side
levels = st.lists(st.tuples(number, number), max_size=8)


def _ticker(symbol: str, bid: str | None, bid_size: str | None, ask: str | None, ask_size: str | None,
            seq: int, ts: int) -> dict[str, Any]:
    return {"topic": "/market/ticker:all", "type": "message", "subject": symbol,
            "data": {"bestAsk": ask, "bestAskSize": ask_size, "bestBid": bid, "bestBidSize": bid_size,
                     "price": bid or "1", "sequence": str(seq), "size": "0.1", "time": ts}}


def _depth(symbol: str, depth: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
           ts: int) -> dict[str, Any]:
    return {"topic": f"/spotMarket/level2Depth{depth}:{symbol}", "type": "message", "subject": "level2",
            "data": {"asks": [list(a) for a in asks], "bids": [list(b) for b in bids], "timestamp": ts}}


ticker_frames = st.builds(_ticker, st.sampled_from(SYMBOLS), maybe_number, maybe_number, maybe_number,
                          maybe_number, st.integers(1, 2**53), st.integers(1, 2**41))
depth_frames = st.builds(_depth, st.sampled_from(SYMBOLS), st.sampled_from((5, 50)), levels, levels,
                         st.integers(1, 2**41))
frames = st.lists(st.tuples(st.one_of(ticker_frames, depth_frames), st.booleans()), min_size=1, max_size=30)


def _kucoin_order(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode()


def _other_order(frame: dict[str, Any], spaces: bool) -> bytes:
    reordered = {"type": frame["type"], **{k: v for k, v in frame.items() if k != "type"}}
    return json.dumps(reordered, separators=(", ", ": ") if spaces else (",", ":")).encode()


def _state(book: Book) -> tuple[Any, ...]:
    return (tuple(book.bids), tuple(book.asks), book.best_bid, book.best_ask, book.sequence,
            book.exchange_ts_ms, book.received_at, book.gapped)


@settings(max_examples=300, deadline=None)
@given(frames=frames)
def test_fast_paths_leave_the_books_the_general_paths_leave(frames):
    codec = KucoinCodec("kucoin-x")
    store = BookStore()
    books: dict[str, Book] = {}
    for at, (frame, spaces) in enumerate(frames):
        fast_raw, general_raw = _kucoin_order(frame), _other_order(frame, spaces)
        assert fast_raw.startswith((_TICKER_ALL_HEAD, *_DEPTH_HEADS))
        assert not general_raw.startswith((_TICKER_ALL_HEAD, *_DEPTH_HEADS))
        fast = codec.decode(fast_raw, float(at))
        general = codec.decode(general_raw, float(at))
        assert type(fast) is BookUpdate
        assert fast == general
        topic = frame["topic"]
        symbol = frame["subject"] if topic.startswith("/market/ticker") else topic.partition(":")[2]
        assert (fast.venue, fast.symbol) == ("kucoin-x", symbol)
        book = store.apply(fast)
        reference = books.setdefault(general.symbol, Book(general.venue, general.symbol))
        assert reference.apply(general)
        assert store.get((fast.venue, fast.symbol)) is book
        assert _state(book) == _state(reference)
    assert len(store) == len(books)


def test_a_snapshot_after_a_gap_heals_the_book_through_the_store():
    store = BookStore()
    store.apply(BookUpdate("v", "A-B", ((100.0, 1.0),), ((101.0, 1.0),), 10, 1, 1.0))
    delta = BookUpdate("v", "A-B", ((100.5, 2.0),), (), 12, 2, 2.0, snapshot=False, sequence_start=12)
    book = store.apply(delta)  # 11 is missing
    assert book.gapped and book.sequence == 10 and book.received_at == 1.0
    assert store.apply(BookUpdate("v", "A-B", ((99.0, 3.0),), ((102.0, 4.0),), 20, 3, 3.0)) is book
    assert (book.gapped, book.bids, book.asks, book.sequence, book.exchange_ts_ms, book.received_at) == (
        False, ((99.0, 3.0),), ((102.0, 4.0),), 20, 3, 3.0)
    assert book.liveness is store.liveness("v")
    assert store.apply(BookUpdate("v", "A-B", ((99.5, 1.0),), (), 21, 4, 4.0, snapshot=False,
                                  sequence_start=21)) is book
    assert book.bids == [(99.5, 1.0), (99.0, 3.0)] and book.sequence == 21
