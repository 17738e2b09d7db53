"""`cryptoarb scan` on saved KuCoin REST responses: real files, a real subprocess, exact expectations."""

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

T_MS = 1_729_173_207_043


def symbol(sym: str, base_inc: str, price_inc: str, min_size: str = "0.0001", min_funds: str = "0.1") -> dict:
    base, quote = sym.split("-")
    return {"symbol": sym, "name": sym, "baseCurrency": base, "quoteCurrency": quote, "feeCurrency": quote,
            "market": "USDS", "baseMinSize": min_size, "quoteMinSize": min_funds, "baseMaxSize": "10000000000",
            "quoteMaxSize": "99999999", "baseIncrement": base_inc, "quoteIncrement": "0.000001",
            "priceIncrement": price_inc, "priceLimitRate": "0.1", "minFunds": min_funds, "isMarginEnabled": True,
            "enableTrading": True, "feeCategory": 1, "makerFeeCoefficient": "1.00", "takerFeeCoefficient": "1.00",
            "st": False, "callauctionIsEnabled": False, "tradingStartTime": None}


def ticker(sym: str, bid: str, bid_size: str, ask: str, ask_size: str) -> dict:
    return {"symbol": sym, "symbolName": sym, "buy": bid, "bestBidSize": bid_size, "sell": ask,
            "bestAskSize": ask_size, "changeRate": "0", "changePrice": "0", "high": ask, "low": bid, "vol": "1",
            "volValue": "1", "last": bid, "averagePrice": bid, "takerFeeRate": "0.001", "makerFeeRate": "0.001",
            "takerCoefficient": "1", "makerCoefficient": "1"}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """BTC-USDT 60000/60001, ETH-USDT 3000/3000.3, ETH-BTC bid 0.0505: selling ETH for BTC is 1% rich."""
    (tmp_path / "symbols.json").write_text(json.dumps({"code": "200000", "data": [
        symbol("BTC-USDT", "0.00000001", "0.1"), symbol("ETH-USDT", "0.0000001", "0.01"),
        symbol("ETH-BTC", "0.0000001", "0.000001", min_funds="0.00001")]}))
    (tmp_path / "allTickers.json").write_text(json.dumps({"code": "200000", "data": {"time": T_MS, "ticker": [
        ticker("BTC-USDT", "60000", "0.5", "60001", "0.4"), ticker("ETH-USDT", "3000", "2", "3000.3", "0.1"),
        ticker("ETH-BTC", "0.0505", "3", "0.0506", "3")]}}))
    (tmp_path / "fees.json").write_text(json.dumps({"code": "200000", "data": [
        {"symbol": s, "takerFeeRate": "0.001", "makerFeeRate": "0.001"}
        for s in ("BTC-USDT", "ETH-USDT", "ETH-BTC")]}))
    books = tmp_path / "books"
    books.mkdir()
    (books / "ETH-USDT.json").write_text(json.dumps({"code": "200000", "data": {
        "time": T_MS, "sequence": "14610502970", "bids": [["3000", "2"]],
        "asks": [["3000.3", "0.1"], ["3000.6", "0.9"], ["3030", "50"]]}}))
    return tmp_path


def scan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptoarb.cli", "scan", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60,
                          env={**os.environ, "CRYPTOARB_DETECTOR__START_ASSETS": '["USDT"]', "COLUMNS": "200"})


def files(d: Path, *extra: str) -> list[str]:
    return ["--symbols", str(d / "symbols.json"), "--tickers", str(d / "allTickers.json"), *extra]


def test_top_of_book_scan_finds_the_triangle_and_sizes_it_to_the_ticker_sizes(saved):
    result = scan(*files(saved, "--fees", str(saved / "fees.json"), "--json"), cwd=saved)
    assert result.returncode == 0, result.stderr
    (opp,) = json.loads(result.stdout)
    assert opp["path"] == ["USDT", "ETH", "BTC", "USDT"]
    assert [(leg["symbol"], leg["side"]) for leg in opp["legs"]] == [
        ("ETH-USDT", "buy"), ("ETH-BTC", "sell"), ("BTC-USDT", "sell")]
    # top of book only: the ETH-USDT ask has 0.1 ETH, so no more than 0.1 ETH can be bought
    assert Decimal(opp["legs"][0]["size"]) <= Decimal("0.1")
    assert Decimal(opp["profit"]) > 0 and opp["profit_usd"] > 0
    assert Decimal(opp["output"]) - Decimal(opp["input"]) == Decimal(opp["profit"])
    exact_bps = (Decimal("0.0505") * Decimal("60000") * Decimal("0.999") ** 2 / (Decimal("3000.3") * Decimal("1.001"))
                 - 1) * 10_000
    assert abs(opp["net_return_bps"] - float(exact_bps)) < 0.01


def test_depth_from_book_files_lets_the_plan_grow(saved):
    top = json.loads(scan(*files(saved, "--json"), cwd=saved).stdout)[0]
    deep = json.loads(scan(*files(saved, "--books", str(saved / "books"), "--json"), cwd=saved).stdout)[0]
    assert Decimal(deep["legs"][0]["size"]) > Decimal("0.1")
    assert Decimal(deep["legs"][0]["price"]) == Decimal("3000.6")  # the worst level walked
    assert Decimal(deep["profit"]) > Decimal(top["profit"])


def test_threshold_above_the_edge_finds_nothing(saved):
    result = scan(*files(saved, "--min-profit-bps", "500", "--json"), cwd=saved)
    assert result.returncode == 0 and json.loads(result.stdout) == []


def test_table_output(saved):
    result = scan(*files(saved), cwd=saved)
    assert result.returncode == 0 and "USDT > ETH > BTC > USDT" in result.stdout


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda d: (d / "allTickers.json").write_text("{not json"), "allTickers.json: not valid JSON"),
    (lambda d: (d / "symbols.json").write_text('{"code":"200000","data":{"oops":1}}'), "symbols.json: expected"),
    (lambda d: (d / "symbols.json").write_text(
        (d / "symbols.json").read_text().replace('"priceIncrement": "0.1"', '"priceIncrement": "abc"')),
     "symbols.json: symbol BTC-USDT priceIncrement is not a number"),
    (lambda d: (d / "books" / "XRP-USDT.json").write_text("{}"), "XRP-USDT.json: XRP-USDT is not a symbol"),
    (lambda d: (d / "books" / "ETH-USDT.json").write_text(
        '{"data":{"sequence":"1","bids":[["2990","1"],["2995","1"]],"asks":[["3001","1"]]}}'),
     "ETH-USDT.json: bids are not strictly descending"),
])
def test_malformed_or_inconsistent_files_exit_2_naming_the_file(saved, damage, expected):
    damage(saved)
    result = scan(*files(saved, "--books", str(saved / "books")), cwd=saved)
    assert result.returncode == 2
    assert expected in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr


def test_needs_a_source(saved):
    assert scan(cwd=saved).returncode == 2
    assert scan("--symbols", str(saved / "symbols.json"), cwd=saved).returncode == 2


def test_scan_on_the_simulator_finds_sized_opportunities(tmp_path):
    result = scan("--sim", "--seed", "7", "--at", "5", "--min-profit-bps", "0", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found and all(Decimal(o["profit"]) > 0 for o in found)
    assert all(o["path"][0] == o["path"][-1] == "USDT" for o in found)


def test_kcs_fee_discount_raises_the_return_by_the_fees_saved(saved):
    plain = json.loads(scan(*files(saved, "--json"), cwd=saved).stdout)[0]
    env_args = ("--json",)
    result = subprocess.run([sys.executable, "-m", "cryptoarb.cli", "scan", *files(saved, *env_args)],
                            capture_output=True, text=True, cwd=saved, timeout=60,
                            env={**os.environ, "CRYPTOARB_DETECTOR__START_ASSETS": '["USDT"]',
                                 "CRYPTOARB_DETECTOR__FEE_DISCOUNT": "0.2"})
    discounted = json.loads(result.stdout)[0]
    exact = (Decimal("0.0505") * Decimal("60000") * Decimal("0.9992") ** 2 / (Decimal("3000.3") * Decimal("1.0008"))
             - 1) * 10_000
    assert abs(discounted["net_return_bps"] - float(exact)) < 0.01
    assert discounted["net_return_bps"] > plain["net_return_bps"]
