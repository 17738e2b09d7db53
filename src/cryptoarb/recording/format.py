"""The recording file format: one JSON object per line, exact for every float and Decimal.

``{"format": "cryptoarb-recording", "version": 1, "venues": {venue: [market, ...]}, ...}`` first;
then ``{"n": batch, "c": clock, "v": venue, "s": symbol, "b": bids, "a": asks, "q": sequence,
"t": exchange_ts_ms, "r": received_at, "x": snapshot}`` per update (``"qs"`` when the update carries
a ``sequence_start``); a batch with no update is ``{"n": batch, "c": clock}``; last ``{"end": {...}}``.
Floats are written in their shortest round-trip form, so a replayed book equals the recorded one.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from cryptoarb.model import BookUpdate, Market

FORMAT = "cryptoarb-recording"
VERSION = 1

_DECIMAL_FIELDS = frozenset(f.name for f in dataclasses.fields(Market) if f.type in ("Decimal", Decimal))


class RecordingError(Exception):
    """A file that is not a (readable) recording; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    markets: dict[str, list[Market]]
    source: str = ""
    created_at: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def venues(self) -> tuple[str, ...]:
        return tuple(self.markets)


def market_to_json(market: Market) -> dict[str, Any]:
    return {f.name: (str(v) if isinstance(v := getattr(market, f.name), Decimal) else v)
            for f in dataclasses.fields(Market)}


def market_from_json(data: Mapping[str, Any]) -> Market:
    return Market(**{k: (Decimal(v) if k in _DECIMAL_FIELDS else v) for k, v in data.items()})


def header_line(header: RecordingHeader) -> bytes:
    return orjson.dumps({
        "format": FORMAT, "version": VERSION, "source": header.source, "created_at": header.created_at,
        "meta": header.meta,
        "venues": {venue: [market_to_json(m) for m in markets] for venue, markets in header.markets.items()},
    }) + b"\n"


def parse_header(line: bytes, name: str) -> RecordingHeader:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise RecordingError(f"{name}: the first line is not JSON; not a cryptoarb recording") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecordingError(f"{name}: not a cryptoarb recording (no {FORMAT!r} header)")
    if data.get("version") != VERSION:
        raise RecordingError(f"{name}: recording format version {data.get('version')} is not supported "
                             f"(this build reads version {VERSION})")
    try:
        markets = {venue: [market_from_json(m) for m in ms] for venue, ms in data["venues"].items()}
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise RecordingError(f"{name}: bad market rules in the header: {exc}") from None
    return RecordingHeader(markets, data.get("source", ""), data.get("created_at", 0.0), data.get("meta", {}))


def batch_lines(n: int, clock: float, batch: Iterable[BookUpdate]) -> bytes:
    lines = []
    for u in batch:
        item: dict[str, Any] = {"n": n, "c": clock, "v": u.venue, "s": u.symbol, "b": u.bids, "a": u.asks,
                                "q": u.sequence, "t": u.exchange_ts_ms, "r": u.received_at, "x": u.snapshot}
        if u.sequence_start is not None:
            item["qs"] = u.sequence_start
        lines.append(orjson.dumps(item))
    if not lines:
        lines.append(orjson.dumps({"n": n, "c": clock}))
    return b"\n".join(lines) + b"\n"


def trailer_line(summary: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"end": dict(summary)}) + b"\n"


def update_from_json(d: Mapping[str, Any]) -> BookUpdate:
    return BookUpdate(
        venue=d["v"], symbol=d["s"], bids=tuple((b[0], b[1]) for b in d["b"]),
        asks=tuple((a[0], a[1]) for a in d["a"]), sequence=d["q"], exchange_ts_ms=d["t"],
        received_at=d["r"], snapshot=d["x"], sequence_start=d.get("qs"))


def open_read(path: Path) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror or exc}") from None


def open_write(path: Path, compresslevel: int = 6) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=compresslevel)
    return path.open("wb")
