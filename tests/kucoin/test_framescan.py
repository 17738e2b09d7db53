"""The C frame scanner (``_framescan``) gives what msgspec gives, or steps aside.

``KucoinCodec`` reads ``ticker:all`` and depth frames with the scanner first and decodes with msgspec only
what the scanner returns None for. So for any bytes at all, the codec with the scanner must return what the
codec without it returns, or raise where it raises. These tests hold the two equal on KuCoin's frames, on
frames written in every way JSON allows, and on those frames with bytes cut, doubled or changed; the
numbers against ``float()`` (correct rounding, the oracle) over decimals of every length.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cryptoarb.model import BookUpdate
from cryptoarb.venues.kucoin.codec import FAST_SCAN, CodecError, KucoinCodec

pytestmark = pytest.mark.skipif(
    not FAST_SCAN, reason="cryptoarb.venues.kucoin._framescan was not built (no C compiler at install time); "
                          "msgspec decodes every frame")

if FAST_SCAN:
    from cryptoarb.venues.kucoin import _framescan

FAST, SLOW = KucoinCodec(), KucoinCodec(fast_scan=False)

KUCOIN_TICKER = (b'{"topic":"/market/ticker:all","type":"message","subject":"BTC-USDT","data":{"bestAsk":"67218.7",'
                 b'"bestAskSize":"1.92318539","bestBid":"67218.6","bestBidSize":"0.01045638","price":"67220",'
                 b'"sequence":"14691455768","size":"0.00004316","time":1729757723612}}')
KUCOIN_DEPTH = (b'{"topic":"/spotMarket/level2Depth5:BTC-USDT","type":"message","subject":"level2","data":{"asks":'
                b'[["67996.7","1.14213262"],["67996.8","0.21748212"]],"bids":[["67996.6","0.37969491"],'
                b'["67995.3","0.20779746"]],"timestamp":1729822226746}}')


def _outcome(codec: KucoinCodec, raw: bytes) -> Any:
    try:
        return codec.decode(raw, 12.5)
    except CodecError:
        return CodecError


def _same(raw: bytes) -> Any:
    fast, slow = _outcome(FAST, raw), _outcome(SLOW, raw)
    assert fast == slow, raw
    return fast


# -- numbers as KuCoin writes them, and as JSON allows ---------------------------------------------------
digits = st.text("0123456789", min_size=1, max_size=30)
plain_decimal = st.builds(lambda neg, i, f: ("-" if neg else "") + str(int(i)) + (f".{f}" if f else ""),
                          st.booleans(), digits, st.one_of(st.just(""), digits))
kucoin_decimal = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("99999999"), places=8,
                             allow_nan=False, allow_infinity=False).map(lambda d: format(d.normalize(), "f"))
odd_number = st.sampled_from(["0", "-0", "00.5", "1.", ".5", "1e5", "1E-3", "+1", "01", "-", "", " 1", "1 ",
                              "nan", "inf", "1" * 400, "0." + "0" * 400 + "1", "9" * 17 + ".5",
                              "0.1000000000000000055511151231257827", "123456789012345678901234567890"])
number_text = st.one_of(kucoin_decimal, plain_decimal, odd_number)


@st.composite
def json_number(draw: st.DrawFn) -> str:
    """A number's JSON: quoted (KuCoin's way), bare, or null."""
    text = draw(number_text)
    form = draw(st.sampled_from(("quoted", "quoted", "bare", "null")))
    return "null" if form == "null" else json.dumps(text) if form == "quoted" else text or "0"


@st.composite
def ticker_frame(draw: st.DrawFn) -> bytes:
    data = {"bestAsk": draw(json_number()), "bestAskSize": draw(json_number()), "bestBid": draw(json_number()),
            "bestBidSize": draw(json_number()), "price": draw(json_number()),
            "sequence": draw(st.sampled_from(["14691455768", '"14691455768"', '"0"', "0", '"-5"', '"007"',
                                              '"1.5"', "null", '"' + "9" * 19 + '"'])),
            "size": draw(json_number()), "time": draw(st.sampled_from(["1729757723612", '"1729757723612"', "-1"]))}
    keys = draw(st.permutations(list(data)).map(lambda ks: ks[:draw(st.integers(0, len(ks)))]))
    body = ",".join(f'"{k}":{data[k]}' for k in keys)
    subject = draw(st.sampled_from(['"BTC-USDT"', '"ETH-BTC"', '"A\\u00e9-USDT"', '"é-USDT"', "7", "null"]))
    head = ['"type":"message"', f'"subject":{subject}', f'"data":{{{body}}}']
    extra = draw(st.sampled_from(["", ',"extra":1', ',"extra":{"a":1}', ',"type":"message"', ',"data":{}']))
    tail = ",".join(draw(st.permutations(head))) + extra
    return ('{"topic":"/market/ticker:all",' + tail + "}").encode()


@st.composite
def depth_frame(draw: st.DrawFn) -> bytes:
    def side() -> str:
        n = draw(st.integers(0, 12))
        rows = [f"[{draw(json_number())},{draw(json_number())}]" for _ in range(n)]
        if n and draw(st.integers(0, 9)) == 0:
            rows[-1] = draw(st.sampled_from(['["1"]', '["1","2","3"]', '"x"', "[]", "null"]))
        return "[" + ",".join(rows) + "]"

    data = {"asks": side(), "bids": side(), "timestamp": draw(st.sampled_from(["1729822226746", '"17"', "null"])),
            "extra": draw(st.sampled_from(['"x"', "1.5", "null", "[1]"]))}
    keys = draw(st.permutations(list(data)).map(lambda ks: ks[:draw(st.integers(0, len(ks)))]))
    body = ",".join(f'"{k}":{data[k]}' for k in keys)
    depth = draw(st.sampled_from(("5", "50")))
    symbol = draw(st.sampled_from(("BTC-USDT", "ETH-BTC", "", "A:B")))
    return (f'{{"topic":"/spotMarket/level2Depth{depth}:{symbol}","type":"message","subject":"level2",'
            f'"data":{{{body}}}}}').encode()


@settings(max_examples=1500, deadline=None)
@given(ticker_frame())
def test_a_ticker_all_frame_decodes_alike_with_and_without_the_scanner(raw: bytes) -> None:
    _same(raw)


@settings(max_examples=1000, deadline=None)
@given(depth_frame())
def test_a_depth_frame_decodes_alike_with_and_without_the_scanner(raw: bytes) -> None:
    _same(raw)


OTHER_FRAMES = [
    b'{"topic":"/market/level2:BTC-USDT","type":"message","subject":"trade.l2update","data":{"changes":{"asks":'
    b'[["67993.3","1.21427407","14701689783"]],"bids":[]},"sequenceEnd":14701689783,"sequenceStart":14701689783,'
    b'"symbol":"BTC-USDT","time":1729816425625}}',
    b'{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade.ticker","data":{"sequence":"1545896668986",'
    b'"price":"0.08","size":"0.011","bestAsk":"0.08","bestAskSize":"0.18","bestBid":"0.049","bestBidSize":"0.036",'
    b'"time":1704873323416}}',
    b'{"topic":"/spotMarket/level1:BTC-USDT","type":"message","subject":"level1","data":{"asks":["68145.8",'
    b'"0.51987471"],"bids":["68145.7","1.29267802"],"timestamp":1729816058766}}',
    b'{"id":"1545910590801","type":"pong"}',
    b'{"topic":"/spotMarket/level2Depth500:BTC-USDT","type":"message","subject":"level2","data":{"asks":[],'
    b'"bids":[],"timestamp":1}}',
]


@settings(max_examples=1500, deadline=None)
@given(st.one_of(ticker_frame(), depth_frame(), st.sampled_from(OTHER_FRAMES)), st.randoms(use_true_random=False))
def test_a_frame_with_bytes_cut_doubled_or_changed_decodes_alike_or_fails_alike(raw: bytes,
                                                                                  rng: random.Random) -> None:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data))
        op = rng.randrange(3)
        if op == 0:
            del data[i]
        elif op == 1:
            data.insert(i, data[i])
        else:
            data[i] = rng.choice(b'{}[]",:0123456789.-e nul\\\x00\xc3')
    _same(bytes(data))


def _ticker_with(value: str) -> bytes:
    return ('{"topic":"/market/ticker:all","type":"message","subject":"X-Y","data":{"bestAsk":' + value +
            ',"bestAskSize":"1","bestBid":"1","bestBidSize":' + value + ',"sequence":"5","time":7}}').encode()


@settings(max_examples=3000, deadline=None)
@given(number_text, st.booleans())
@example("0.1000000000000000055511151231257827", True)
@example("9007199254740993", True)  # 2^53 + 1: one past the fast path's exact mantissas
@example("123456789012345.6", False)
def test_prices_and_sizes_are_the_floats_float_makes_of_their_text(text: str, quoted: bool) -> None:
    """float() rounds correctly: the oracle. A number the scanner does not take is msgspec's to read."""
    update = _framescan.scan(_ticker_with(json.dumps(text) if quoted else text), "kucoin", 1.0, BookUpdate)
    if update is None:
        return
    expected = float(text)
    assert update.asks == (((expected, 1.0),) if expected else ())
    assert update.bids == (((1.0, expected),) if expected else ())


@settings(max_examples=500, deadline=None)
@given(kucoin_decimal)
def test_every_number_kucoin_writes_is_read_by_the_scanner(text: str) -> None:
    update = _framescan.scan(_ticker_with(json.dumps(text)), "kucoin", 1.0, BookUpdate)
    assert update is not None and update.asks == ((float(text), 1.0),)


def test_kucoin_frames_are_read_by_the_scanner_not_handed_to_msgspec() -> None:
    """The speed claim rests on this: KuCoin's documented frames are the scanner's, not the fallback's."""
    t = _framescan.scan(KUCOIN_TICKER, "kucoin", 3.5, BookUpdate)
    d = _framescan.scan(KUCOIN_DEPTH, "kucoin", 3.5, BookUpdate)
    assert t == BookUpdate("kucoin", "BTC-USDT", ((67218.6, 0.01045638),), ((67218.7, 1.92318539),),
                           14691455768, 1729757723612, 3.5)
    assert d == BookUpdate("kucoin", "BTC-USDT", ((67996.6, 0.37969491), (67995.3, 0.20779746)),
                           ((67996.7, 1.14213262), (67996.8, 0.21748212)), 1729822226746, 1729822226746, 3.5)
    assert FAST.decode(KUCOIN_TICKER, 3.5) == t == SLOW.decode(KUCOIN_TICKER, 3.5)
    assert FAST.decode(KUCOIN_DEPTH, 3.5) == d == SLOW.decode(KUCOIN_DEPTH, 3.5)


@pytest.mark.parametrize("tail", [b"}", b"x", b",{}", b" ", b"\n", b"\x00"])
@pytest.mark.parametrize("frame", [KUCOIN_TICKER, KUCOIN_DEPTH], ids=["ticker", "depth"])
def test_bytes_after_the_frame_are_msgspecs_to_judge(frame: bytes, tail: bytes) -> None:
    assert _framescan.scan(frame + tail, "kucoin", 1.0, BookUpdate) is None
    _same(frame + tail)


def test_frames_of_other_topics_are_left_to_msgspec() -> None:
    for raw in OTHER_FRAMES:
        assert _framescan.scan(raw, "kucoin", 1.0, BookUpdate) is None
        _same(raw)


def test_a_depth_push_over_the_scanners_level_cap_is_msgspecs_to_read() -> None:
    rows = ",".join(f'["{100 + i}","1"]' for i in range(600))
    raw = ('{"topic":"/spotMarket/level2Depth50:X-Y","type":"message","subject":"level2","data":{"asks":[' + rows +
           '],"bids":[],"timestamp":1}}').encode()
    assert _framescan.scan(raw, "kucoin", 1.0, BookUpdate) is None
    assert len(_same(raw).asks) == 600


def test_the_scanner_refuses_what_is_not_bytes() -> None:
    with pytest.raises(TypeError, match="raw: bytes"):
        _framescan.scan("{}", "kucoin", 1.0, BookUpdate)


def test_running_out_of_memory_while_building_an_update_raises_memory_error() -> None:
    """Every allocation the scanner makes may fail: the error must propagate as itself, not as a SystemError
    ("returned a result with an exception set") from a None returned with the error still set."""
    testcapi = pytest.importorskip("_testcapi", reason="CPython's _testcapi injects allocation failures")
    raw = (b'{"topic":"/market/ticker:all","type":"message","subject":"BTC-USDT","data":{"bestAsk":"x",'
           b'"bestAskSize":"1","bestBid":"67218.6","bestBidSize":"0.5"}}')
    outcomes = []
    for k in range(12):
        # empty the float and small-tuple free lists, so that the scanner's objects come from the allocator
        drained = [float(i) + 0.5 for i in range(500)] + [(i, i) for i in range(2500)] + [(i,) for i in range(2500)]
        testcapi.set_nomemory(k, k + 1)
        try:
            outcomes.append(_framescan.scan(raw, "kucoin", 1.25, BookUpdate))
        except MemoryError:
            outcomes.append(MemoryError)
        finally:
            testcapi.remove_mem_hooks()
        del drained
    assert MemoryError in outcomes  # the failing allocations were the scanner's
    assert all(o is None or o is MemoryError for o in outcomes)
