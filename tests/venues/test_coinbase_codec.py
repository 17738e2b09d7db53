"""The Coinbase ws-feed codec on the documented frames (reference/exchange-protocols.md §C)."""

import pytest

from cryptoarb.venues.coinbase.codec import (
    CodecError,
    Error,
    Heartbeat,
    L2Update,
    Other,
    Snapshot,
    Subscriptions,
    Ticker,
    decode,
    encode,
    iso_time,
    l2update_update,
    snapshot_update,
    subscribe_message,
    time_ms,
)

TICKER = (b'{"type":"ticker","sequence":7388547310,"product_id":"BTC-USDT","price":"22345.67","open_24h":"22308.13",'
          b'"volume_24h":"470.21123644","low_24h":"22150","high_24h":"22495.15","volume_30d":"25713.98401605",'
          b'"best_bid":"22345.67","best_bid_size":"0.10647825","best_ask":"22349.68","best_ask_size":"0.03131702",'
          b'"side":"sell","time":"2023-03-04T03:37:20.799258Z","trade_id":11586478,"last_size":"0.00352175"}')


def test_decodes_every_documented_frame():
    t = decode(TICKER)
    assert isinstance(t, Ticker)
    assert (t.product_id, t.sequence, t.trade_id, t.best_bid, t.best_ask) == (
        "BTC-USDT", 7388547310, 11586478, 22345.67, 22349.68)
    assert t.best_bid_size == 0.10647825 and time_ms(t.time) == 1677901040799
    snap = decode(b'{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.45054140"]],'
                  b'"asks":[["10102.55","0.57753524"]]}')
    assert isinstance(snap, Snapshot) and snap.bids == ((10101.10, 0.4505414),)
    assert snap.asks == ((10102.55, 0.57753524),)
    upd = decode(b'{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z",'
                 b'"changes":[["buy","10101.80000000","0.162567"],["sell","10102.0","0"]]}')
    assert isinstance(upd, L2Update) and upd.changes == [("buy", 10101.8, 0.162567), ("sell", 10102.0, 0.0)]
    hb = decode(b'{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD",'
                b'"time":"2014-11-07T08:19:28.464459Z"}')
    assert isinstance(hb, Heartbeat) and (hb.sequence, hb.last_trade_id) == (90, 20)
    subs = decode(b'{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["BTC-EUR"]}]}')
    assert isinstance(subs, Subscriptions) and subs.channels[0].name == "ticker"
    err = decode(b'{"type":"error","message":"Failed to subscribe","reason":"FOO-BAR is not a valid product"}')
    assert isinstance(err, Error) and "FOO-BAR" in err.reason
    assert decode(b'{"type":"status","products":[]}') == Other("status")


@pytest.mark.parametrize("raw", [b"not json", b'{"type":"ticker"}', b'{"type":"l2update","product_id":"X",'
                                 b'"changes":[["buy","abc","1"]]}', b"[]"])
def test_malformed_frames_raise_codec_error(raw):
    with pytest.raises(CodecError):
        decode(raw)


def test_book_updates_carry_the_clients_sequence():
    snap = snapshot_update(Snapshot("BTC-USD", ((100.0, 1.0), (99.0, 0.0)), ((101.0, 2.0),)), 7, 1.5)
    assert (snap.venue, snap.symbol, snap.sequence, snap.snapshot, snap.received_at) == ("coinbase", "BTC-USD", 7,
                                                                                         True, 1.5)
    assert snap.bids == ((100.0, 1.0),)  # a zero-size level is no level
    delta = l2update_update(L2Update("BTC-USD", [("buy", 100.0, 0.0), ("sell", 101.5, 3.0)],
                                     "2019-08-14T20:42:27.265Z"), 8, 2.0)
    assert (delta.snapshot, delta.sequence, delta.sequence_start) == (False, 8, 8)
    assert delta.bids == ((100.0, 0.0),) and delta.asks == ((101.5, 3.0),)
    assert delta.exchange_ts_ms == 1565815347265


def test_encoding_and_times():
    assert encode(subscribe_message(["BTC-USD"], ["level2_batch", "heartbeat"])) == (
        b'{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2_batch","heartbeat"]}')
    assert subscribe_message(["A-B"], ["ticker"], unsubscribe=True)["type"] == "unsubscribe"
    assert iso_time(1565815347265) == "2019-08-14T20:42:27.265000Z"
    assert time_ms(iso_time(1565815347265)) == 1565815347265 and time_ms("") == 0


@pytest.mark.parametrize("bad", ["nan", "inf", "-2", "1e400"])
def test_a_price_or_size_that_is_not_a_finite_non_negative_number_is_a_malformed_frame(bad: str):
    """msgspec reads "nan" and "inf" strings as floats; in a book they would pass every comparison wrongly."""
    frames = [TICKER.replace(b'"best_bid":"22345.67"', b'"best_bid":"%s"' % bad.encode()),
              b'{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","%s"]],"asks":[]}' % bad.encode(),
              b'{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z",'
              b'"changes":[["buy","%s","0.162567"]]}' % bad.encode()]
    for raw in frames:
        with pytest.raises(CodecError):
            decode(raw)
