"""KuCoin frames (reference/exchange-protocols.md §A.2) -> BookUpdate and control frames."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoarb.core.books import Book
from cryptoarb.model import BookUpdate
from cryptoarb.venues.kucoin.codec import (
    Ack,
    CodecError,
    ErrorFrame,
    KucoinCodec,
    OtherMessage,
    Pong,
    Welcome,
    decode_frame,
)

TICKER_ALL = (b'{"topic":"/market/ticker:all","type":"message","subject":"BTC-USDT","data":'
              b'{"bestAsk":"67218.7","bestAskSize":"1.92318539","bestBid":"67218.6","bestBidSize":"0.01045638",'
              b'"price":"67220",'
              b'"sequence":"14691455768","size":"0.00004316","time":1729757723612}}')
TICKER = (b'{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade.ticker","data":{"sequence":'
          b'"1545896668986","price":"0.08","size":"0.011","bestAsk":"0.08","bestAskSize":"0.18","bestBid":"0.049",'
          b'"bestBidSize":"0.036","time":1704873323416}}')
LEVEL1 = (b'{"topic":"/spotMarket/level1:BTC-USDT","type":"message","subject":"level1","data":'
          b'{"asks":["68145.8","0.51987471"],"bids":["68145.7","1.29267802"],"timestamp":1729816058766}}')
LEVEL2 = (b'{"topic":"/market/level2:BTC-USDT","type":"message","subject":"trade.l2update","data":{"changes":'
          b'{"asks":[["67993.3","1.21427407","14701689783"]],"bids":[]},"sequenceEnd":14701689783,'
          b'"sequenceStart":14701689783,"symbol":"BTC-USDT","time":1729816425625}}')


def depth_frame(depth: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: int = 1729822226746,
                symbol: str = "BTC-USDT") -> bytes:
    return json.dumps({"topic": f"/spotMarket/level2Depth{depth}:{symbol}", "type": "message",
                       "subject": "level2", "data": {"asks": [list(a) for a in asks],
                                                     "bids": [list(b) for b in bids], "timestamp": ts}},
                      separators=(",", ":")).encode()


def level2_frame(start: int, end: int, bids: list[list[str]], asks: list[list[str]],
                 symbol: str = "BTC-USDT") -> bytes:
    return json.dumps({"topic": f"/market/level2:{symbol}", "type": "message", "subject": "trade.l2update",
                       "data": {"changes": {"asks": asks, "bids": bids}, "sequenceEnd": end,
                                "sequenceStart": start, "symbol": symbol, "time": 1729816425625}},
                      separators=(",", ":")).encode()


def test_ticker_all_is_a_top_of_book_snapshot():
    u = decode_frame(TICKER_ALL, 5.0)
    assert u == BookUpdate("kucoin", "BTC-USDT", ((67218.6, 0.01045638),), ((67218.7, 1.92318539),),
                           14691455768, 1729757723612, 5.0, snapshot=True, sequence_start=None)
    assert type(u) is BookUpdate


def test_ticker_all_in_another_key_order_decodes_the_same():
    reordered = json.dumps({"type": "message", **json.loads(TICKER_ALL)}).encode()  # spaces, type first
    assert not reordered.startswith(b'{"topic"')
    assert decode_frame(reordered, 5.0) == decode_frame(TICKER_ALL, 5.0)


def test_symbol_ticker_takes_the_symbol_from_the_topic():
    u = decode_frame(TICKER, 1.0)
    assert isinstance(u, BookUpdate)
    assert (u.symbol, u.bids, u.asks, u.sequence, u.exchange_ts_ms) == (
        "BTC-USDT", ((0.049, 0.036),), ((0.08, 0.18),), 1545896668986, 1704873323416)


def test_ticker_with_an_empty_side_has_no_level_there():
    frame = TICKER_ALL.replace(b'"bestBid":"67218.6"', b'"bestBid":null')
    u = decode_frame(frame, 0.0)
    assert isinstance(u, BookUpdate)
    assert u.bids == () and u.asks == ((67218.7, 1.92318539),)


def test_level1_is_a_top_of_book_snapshot():
    u = decode_frame(LEVEL1, 2.0)
    assert u == BookUpdate("kucoin", "BTC-USDT", ((68145.7, 1.29267802),), ((68145.8, 0.51987471),),
                           1729816058766, 1729816058766, 2.0)


@pytest.mark.parametrize("depth", [5, 50])
def test_depth_frames_are_full_snapshots_in_book_order(depth: int):
    bids = [(f"{100 - i * 0.5:g}", f"{1 + i}") for i in range(depth)]
    asks = [(f"{101 + i * 0.5:g}", f"{2 + i}") for i in range(depth)]
    u = decode_frame(depth_frame(depth, bids, asks, ts=77), 3.0)
    assert isinstance(u, BookUpdate)
    assert u.snapshot and u.symbol == "BTC-USDT" and u.received_at == 3.0
    assert u.bids == tuple((float(p), float(s)) for p, s in bids)
    assert u.asks == tuple((float(p), float(s)) for p, s in asks)
    assert len(u.bids) == len(u.asks) == depth
    assert (u.sequence, u.exchange_ts_ms) == (77, 77)


def test_level2_increment_is_a_delta_with_its_sequence_range():
    u = decode_frame(LEVEL2, 4.0)
    assert u == BookUpdate("kucoin", "BTC-USDT", (), ((67993.3, 1.21427407),), 14701689783, 1729816425625,
                           4.0, snapshot=False, sequence_start=14701689783)


def test_level2_size_zero_deletes_and_price_zero_is_skipped():
    book = Book("kucoin", "BTC-USDT")
    book.apply(BookUpdate("kucoin", "BTC-USDT", ((100.0, 1.0), (99.0, 2.0)), ((101.0, 1.0),), 10, 0, 0.0))
    u = decode_frame(level2_frame(11, 13, bids=[["100", "0", "11"], ["0", "5", "12"]],
                                  asks=[["101.5", "3", "13"]]), 1.0)
    assert isinstance(u, BookUpdate)
    assert u.bids == ((100.0, 0.0),)  # the price-0 row is gone, the deletion stays
    assert (u.sequence_start, u.sequence) == (11, 13)  # the skipped row still advanced the sequence
    assert book.apply(u)
    assert book.bids == [(99.0, 2.0)]
    assert book.asks == [(101.0, 1.0), (101.5, 3.0)]
    assert book.sequence == 13


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"id":"hQvf8jkno","type":"welcome"}', Welcome("hQvf8jkno")),
    (b'{"id":"1545910590801","type":"pong"}', Pong("1545910590801")),
    (b'{"id":"1545910660739","type":"ack"}', Ack("1545910660739")),
    (b'{"id":"xxxx","type":"error","code":509,'
     b'"data":"exceed max subscription count limitation of 100 per time"}',
     ErrorFrame("xxxx", 509, "exceed max subscription count limitation of 100 per time")),
    (b'{"id":"1551623050668","type":"error","code":404,"data":"topic /market/level2:BSV-BTC is not found"}',
     ErrorFrame("1551623050668", 404, "topic /market/level2:BSV-BTC is not found")),
    (b'{"id":"1","type":"error","code":415,"data":"type is not supported"}',
     ErrorFrame("1", 415, "type is not supported")),
])
def test_control_frames(raw: bytes, expected: object):
    assert decode_frame(raw) == expected


def test_topics_we_do_not_book_are_reported_not_dropped():
    raw = (b'{"type":"message","topic":"/market/match:BTC-USDT","subject":"trade.l3match",'
           b'"data":{"price":"1","size":"2"}}')
    assert decode_frame(raw) == OtherMessage("/market/match:BTC-USDT", "trade.l3match")


@pytest.mark.parametrize("raw", [
    b"not json",
    b'{"type":"bogus"}',
    b'{"topic":"/market/ticker:all","type":"message","subject":"X"}',  # no data
    b'{"topic":"/spotMarket/level2Depth50:X","type":"message","data":{"asks":[["1"]],"bids":[]}}',
    b'{"topic":"/market/level2:X","type":"message","data":{"changes":{"asks":[["a","1","2"]]},'
    b'"sequenceStart":1,"sequenceEnd":1}}',
])
def test_malformed_frames_raise_codec_error(raw: bytes):
    with pytest.raises(CodecError):
        decode_frame(raw)


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity", "-1.5", "1e400"])
@pytest.mark.parametrize("fast_scan", [True, False], ids=["scanner", "msgspec"])
def test_a_price_or_size_that_is_not_a_finite_non_negative_number_is_a_malformed_frame(bad: str, fast_scan: bool):
    """msgspec reads "nan" and "inf" strings as floats; in a book they would pass every comparison wrongly."""
    frames = [
        TICKER_ALL.replace(b'"bestBidSize":"0.01045638"', b'"bestBidSize":"%s"' % bad.encode()),
        TICKER.replace(b'"bestAsk":"0.08"', b'"bestAsk":"%s"' % bad.encode()),
        LEVEL1.replace(b'"68145.8"', b'"%s"' % bad.encode()),
        depth_frame(50, [("67996.6", bad)], [("67996.7", "1")]),
        depth_frame(5, [("67996.6", "1")], [(bad, "1")]),
        level2_frame(1, 1, [[bad, "1", "1"]], []),
    ]
    codec = KucoinCodec(fast_scan=fast_scan)
    for raw in frames:
        with pytest.raises(CodecError):
            codec.decode(raw, 0.0)


def test_venue_name_is_the_codecs():
    u = KucoinCodec("kucoin-sim").decode(TICKER_ALL, 0.0)
    assert isinstance(u, BookUpdate) and u.venue == "kucoin-sim"


price = st.integers(1, 400).map(lambda i: i / 4)  # exact in binary, so text round-trips
size = st.integers(1, 1000).map(lambda i: i / 8)
side_book = st.dictionaries(price, size, max_size=15)
change = st.tuples(st.one_of(st.just(0.0), price), st.one_of(st.just(0.0), size))  # price 0 skipped, size 0 deletes
delta = st.tuples(st.lists(change, max_size=5), st.lists(change, max_size=5))


def _text(x: float) -> str:
    return "0" if x == 0 else repr(x)


def _apply_reference(side: dict[float, float], changes: list[tuple[float, float]]) -> None:
    for price, size in changes:
        if price == 0:
            continue
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size


@settings(max_examples=200, deadline=None)
@given(bids=side_book, asks=side_book, deltas=st.lists(delta, max_size=25))
def test_random_level2_increments_after_a_snapshot_match_a_dict_book(bids, asks, deltas):
    codec = KucoinCodec()
    book = Book("kucoin", "BTC-USDT")
    seq = 1000
    book.apply(BookUpdate("kucoin", "BTC-USDT", tuple(sorted(bids.items(), reverse=True)),
                          tuple(sorted(asks.items())), seq, 0, 0.0))
    ref_bids, ref_asks = dict(bids), dict(asks)
    for bid_changes, ask_changes in deltas:
        start, end = seq + 1, seq + max(1, len(bid_changes) + len(ask_changes))
        raw = level2_frame(start, end, [[_text(p), _text(s), str(end)] for p, s in bid_changes],
                           [[_text(p), _text(s), str(end)] for p, s in ask_changes])
        u = codec.decode(raw, 1.0)
        assert isinstance(u, BookUpdate)
        assert book.apply(u)
        _apply_reference(ref_bids, bid_changes)
        _apply_reference(ref_asks, ask_changes)
        seq = end
    assert list(book.bids) == sorted(ref_bids.items(), reverse=True)
    assert list(book.asks) == sorted(ref_asks.items())
    assert book.sequence == seq and not book.gapped
