"""Saved KuCoin REST responses (``/api/v2/symbols``, ``/api/v1/market/allTickers``,
``/api/v1/trade-fees``, ``level2_100``) read into the engine's types, for offline scans and tests.

Every problem is a :class:`ResponseFileError` naming the file and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from cryptoarb.model import BookUpdate, Market

VENUE = "kucoin"
DEFAULT_TAKER_FEE = Decimal("0.001")


class ResponseFileError(ValueError):
    """A saved response is missing, not JSON, or not the shape KuCoin returns."""


def _load(path: Path) -> Any:
    try:
        payload = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ResponseFileError(f"{path}: file not found") from None
    except orjson.JSONDecodeError as exc:
        raise ResponseFileError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(payload, dict) and "data" in payload:
        if payload.get("code") not in (None, "200000"):
            raise ResponseFileError(f"{path}: an error response (code {payload.get('code')}: {payload.get('msg')})")
        return payload["data"]
    return payload


def _decimal(path: Path, where: str, value: Any) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ResponseFileError(f"{path}: {where} is not a number: {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ResponseFileError(f"{path}: {where} must be a finite non-negative number, got {value!r}")
    return result


def _field(path: Path, row: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in row:
        raise ResponseFileError(f"{path}: {where} has no {key!r}")
    return row[key]


def read_symbols(path: Path, fees: Mapping[str, Decimal] | None = None) -> list[Market]:
    """Markets from a ``/api/v2/symbols`` response; taker fees from ``fees`` (symbol -> rate) if given."""
    rows = _load(path)
    if not isinstance(rows, list) or not rows:
        raise ResponseFileError(f"{path}: expected a non-empty list of symbols (the /api/v2/symbols shape)")
    markets = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ResponseFileError(f"{path}: entry {n} is not an object")
        symbol = _field(path, row, "symbol", f"entry {n}")
        where = f"symbol {symbol}"
        taker = (fees or {}).get(symbol, DEFAULT_TAKER_FEE)
        increment = _decimal(path, f"{where} baseIncrement", _field(path, row, "baseIncrement", where))
        tick = _decimal(path, f"{where} priceIncrement", _field(path, row, "priceIncrement", where))
        if increment == 0 or tick == 0:
            raise ResponseFileError(f"{path}: {where} has a zero increment")
        min_funds = row.get("minFunds") or row.get("quoteMinSize") or "0"
        markets.append(Market(
            venue=VENUE, symbol=symbol, base=_field(path, row, "baseCurrency", where),
            quote=_field(path, row, "quoteCurrency", where), price_tick=tick, size_increment=increment,
            min_size=_decimal(path, f"{where} baseMinSize", row.get("baseMinSize", "0")),
            min_funds=_decimal(path, f"{where} minFunds", min_funds), taker_fee=taker, maker_fee=taker,
            fee_currency="quote", enabled=bool(row.get("enableTrading", True))))
    return markets


def read_fees(path: Path) -> dict[str, Decimal]:
    """Taker fee per symbol from a ``/api/v1/trade-fees`` response."""
    rows = _load(path)
    if not isinstance(rows, list):
        raise ResponseFileError(f"{path}: expected a list of fees (the /api/v1/trade-fees shape)")
    out = {}
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ResponseFileError(f"{path}: entry {n} is not an object")
        symbol = _field(path, row, "symbol", f"entry {n}")
        out[symbol] = _decimal(path, f"{symbol} takerFeeRate", _field(path, row, "takerFeeRate", symbol))
    return out


def ticker_fees(path: Path) -> dict[str, Decimal]:
    """Taker fee per symbol as allTickers states it (rate times coefficient), when present."""
    data = _load(path)
    out = {}
    for row in data.get("ticker", []) if isinstance(data, dict) else []:
        if isinstance(row, dict) and row.get("takerFeeRate") is not None:
            rate = _decimal(path, f"{row.get('symbol')} takerFeeRate", row["takerFeeRate"])
            coefficient = _decimal(path, f"{row.get('symbol')} takerCoefficient", row.get("takerCoefficient", "1"))
            out[row["symbol"]] = rate * coefficient
    return out


def read_tickers(path: Path, received_at: float | None = None) -> tuple[float, list[BookUpdate]]:
    """(snapshot time in s, one-level books) from an ``/api/v1/market/allTickers`` response."""
    data = _load(path)
    if not isinstance(data, dict) or not isinstance(data.get("ticker"), list):
        raise ResponseFileError(f"{path}: expected {{'time': ..., 'ticker': [...]}} (the allTickers shape)")
    ts_ms = int(data.get("time") or 0)
    at = ts_ms / 1000 if received_at is None else received_at
    books = []
    for n, row in enumerate(data["ticker"]):
        if not isinstance(row, dict):
            raise ResponseFileError(f"{path}: ticker {n} is not an object")
        symbol = _field(path, row, "symbol", f"ticker {n}")
        if row.get("buy") in (None, "") or row.get("sell") in (None, ""):
            continue  # a pair with an empty side has no top of book to trade
        bid = float(_decimal(path, f"{symbol} buy", row["buy"]))
        ask = float(_decimal(path, f"{symbol} sell", row["sell"]))
        bid_size = float(_decimal(path, f"{symbol} bestBidSize", row.get("bestBidSize", "0")))
        ask_size = float(_decimal(path, f"{symbol} bestAskSize", row.get("bestAskSize", "0")))
        books.append(BookUpdate(VENUE, symbol, ((bid, bid_size),), ((ask, ask_size),), 0, ts_ms, at))
    return at, books


def read_book(path: Path, symbol: str, received_at: float) -> BookUpdate:
    """A ``level2_20``/``level2_100`` response for ``symbol``; levels must be sorted as KuCoin sends them."""
    data = _load(path)
    if not isinstance(data, dict) or "bids" not in data or "asks" not in data:
        raise ResponseFileError(f"{path}: expected {{'sequence', 'bids', 'asks'}} (the level2_100 shape)")
    sides = []
    for side in ("bids", "asks"):
        levels = []
        for n, level in enumerate(data[side]):
            if not isinstance(level, list | tuple) or len(level) < 2:
                raise ResponseFileError(f"{path}: {side}[{n}] is not a [price, size] pair")
            levels.append((float(_decimal(path, f"{side}[{n}] price", level[0])),
                           float(_decimal(path, f"{side}[{n}] size", level[1]))))
        prices = [p for p, _ in levels]
        if prices != sorted(prices, reverse=side == "bids") or len(set(prices)) != len(prices):
            order = "descending" if side == "bids" else "ascending"
            raise ResponseFileError(f"{path}: {side} are not strictly {order} by price")
        sides.append(tuple(levels))
    bids, asks = sides
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise ResponseFileError(f"{path}: crossed book (best bid {bids[0][0]} >= best ask {asks[0][0]})")
    sequence = int(data.get("sequence") or 0)
    return BookUpdate(VENUE, symbol, bids, asks, sequence, int(data.get("time") or 0), received_at)
