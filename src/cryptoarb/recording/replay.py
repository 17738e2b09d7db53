"""A recording read back, and ``ReplayVenue``: the recording behind the ``Venue`` protocol.

The stream is pull-based like ``SimVenue``'s: the next batch is read only when the consumer asks for
it, and ``now()`` is the recorded clock of the batch just handed out, so an engine fed by a replay
makes exactly the decisions it would make on the same batches live. ``speed`` paces batches against
the wall clock (recorded seconds per wall second); ``0`` replays as fast as the consumer pulls.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Collection, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from cryptoarb.core.books import BookStore
from cryptoarb.model import Balance, BookUpdate, Market, Order, OrderResult, Ticker
from cryptoarb.recording.format import (
    RecordingError,
    RecordingHeader,
    open_read,
    parse_header,
    update_from_json,
)
from cryptoarb.venues.base import VenueError

Batch = tuple[float, list[BookUpdate]]
_TRUNCATED = (EOFError, gzip.BadGzipFile, zlib.error, orjson.JSONDecodeError, KeyError, TypeError)
_BAD_LINE = (orjson.JSONDecodeError, KeyError, TypeError, IndexError, ValueError)


class Recording:
    """A recording file: its header now, its batches on demand (streamed, never all in memory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"{self.path}: no such recording")
        try:
            with open_read(self.path) as f:
                first = f.readline()
        except (*_TRUNCATED, OSError) as exc:
            raise RecordingError(f"{self.path}: unreadable: {exc}") from None
        self.header: RecordingHeader = parse_header(first, str(self.path))
        self.complete: bool | None = None
        """After a full read: whether the file ended with its trailer (a killed recorder leaves none)."""
        self.summary: dict[str, Any] = {}

    @property
    def markets(self) -> list[Market]:
        return [m for markets in self.header.markets.values() for m in markets]

    def batches(self) -> Iterator[Batch]:
        """``(clock, updates)`` per recorded batch, in order. A file cut short (a killed recorder: its last line
        partial, or its compressed stream ended early) yields every batch that is certainly whole and sets
        :attr:`complete` to False; damage anywhere else raises :class:`RecordingError` naming the line."""
        self.complete = None
        current: int | None = None
        clock = 0.0
        updates: list[BookUpdate] = []
        number = 1
        with open_read(self.path) as f:
            f.readline()
            try:
                for line in f:
                    number += 1
                    try:
                        d = orjson.loads(line)
                        if "end" in d:
                            self.complete, self.summary = True, d["end"]
                            break
                        n = d["n"]
                        if n != current:
                            if current is not None:
                                yield clock, updates
                            current, clock, updates = n, d["c"], []
                        if "s" in d:
                            updates.append(update_from_json(d))
                    except _BAD_LINE as exc:
                        if _more_lines(f):
                            raise RecordingError(f"{self.path}: line {number} is damaged "
                                                 f"({type(exc).__name__}: {exc}); lines after it follow") from None
                        break  # the last line, cut short
            except EOFError:
                pass  # the compressed stream ends early: cut short
            except (gzip.BadGzipFile, zlib.error) as exc:
                raise RecordingError(f"{self.path}: compressed data damaged after line {number}: {exc}") from None
        if self.complete is None:
            self.complete = False  # no trailer: the batch being read may be partial, so it is dropped
        elif current is not None:
            yield clock, updates


def _more_lines(f: IO[bytes]) -> bool:
    """Whether anything follows in ``f`` (a truncated compressed stream counts as nothing)."""
    try:
        return bool(f.readline())
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return False


class ReplayVenue:
    """Replays a :class:`Recording` as a venue. It cannot trade: pair it with the paper executor."""

    def __init__(self, recording: Recording, *, speed: float = 0.0, track_books: bool = True) -> None:
        self.recording = recording
        self.venue_names: tuple[str, ...] = recording.header.venues
        if not self.venue_names:
            raise RecordingError(f"{recording.path}: the recording names no venue")
        self.name = self.venue_names[0]
        self.speed = speed
        self.batches = 0
        self.updates = 0
        self._clock = 0.0
        self._books = BookStore() if track_books else None
        self._streaming = False
        self._closed = False

    def now(self) -> float:
        """The recorded clock of the batch most recently handed out (0 before the first)."""
        return self._clock

    async def load_markets(self) -> list[Market]:
        return self.recording.markets

    async def fetch_tickers(self) -> list[Ticker]:
        if self._books is None:
            return []
        return [Ticker(b.venue, b.symbol, b.bids[0][0], b.bids[0][1], b.asks[0][0], b.asks[0][1],
                       b.exchange_ts_ms) for b in self._books if b.bids and b.asks and not b.gapped]

    async def fetch_book(self, symbol: str, depth: int = 20) -> BookUpdate:
        book = self._books.get((self.name, symbol)) if self._books is not None else None
        if book is None or book.gapped:
            raise VenueError(f"no replayed book for {symbol!r} on {self.name} yet")
        return BookUpdate(book.venue, book.symbol, tuple(book.bids[:depth]), tuple(book.asks[:depth]),
                          book.sequence, book.exchange_ts_ms, book.received_at)

    async def stream_books(self, symbols: Collection[str] | None = None) -> AsyncIterator[list[BookUpdate]]:
        if self._streaming:
            raise VenueError("a ReplayVenue serves one book stream at a time")
        wanted = None if symbols is None else frozenset(symbols)
        self._streaming = True
        loop = asyncio.get_running_loop()
        start: tuple[float, float] | None = None  # (wall, recorded clock) of the first batch
        try:
            for clock, batch in self.recording.batches():
                if self._closed:
                    return
                if self.speed > 0:
                    if start is None:
                        start = (loop.time(), clock)
                    await asyncio.sleep(max(0.0, start[0] + (clock - start[1]) / self.speed - loop.time()))
                else:
                    await asyncio.sleep(0)  # let the writer, notifiers and views run between batches
                if self._closed:
                    return
                self._clock = clock
                self.batches += 1
                self.updates += len(batch)
                if self._books is not None:
                    for update in batch:
                        self._books.apply(update)
                yield batch if wanted is None else [u for u in batch if u.symbol in wanted]
        finally:
            self._streaming = False

    async def fetch_balances(self) -> list[Balance]:
        return []

    async def place_order(self, order: Order) -> OrderResult:
        raise VenueError("a replayed venue cannot take orders; trade it with the paper executor")

    async def cancel_order(self, symbol: str, client_oid: str) -> None:
        raise VenueError("a replayed venue has no orders")

    async def fetch_order(self, symbol: str, client_oid: str) -> OrderResult:
        raise VenueError("a replayed venue has no orders")

    async def close(self) -> None:
        self._closed = True
