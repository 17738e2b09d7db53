"""Record any venue's book stream: to a JSON Lines file (gzip) or to the store's ``ticks`` table.

:func:`record` pulls ``Venue.stream_books()`` and hands every batch, with the venue's clock, to a sink
and (optionally) to a callback, so a recording can be taken while an engine trades on the same
stream (a demo run). The clock is the venue's ``now()`` when it has one (simulated and replayed
venues), otherwise the latest ``received_at`` of the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from cryptoarb.core.books import BookStore
from cryptoarb.model import BookUpdate
from cryptoarb.recording.format import (
    RecordingHeader,
    batch_lines,
    header_line,
    market_to_json,
    open_write,
    trailer_line,
)
from cryptoarb.storage.writer import StoreWriter, book_snapshot_row
from cryptoarb.venues.base import Venue

_FLUSH_BYTES = 1 << 20


@dataclass(slots=True)
class RecordStats:
    batches: int = 0
    updates: int = 0
    bytes_out: int = 0
    first_clock: float | None = None
    last_clock: float = 0.0
    wall_s: float = 0.0
    dropped: int = 0

    @property
    def span_s(self) -> float:
        return 0.0 if self.first_clock is None else self.last_clock - self.first_clock

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "span_s": self.span_s}


class RecordingSink(Protocol):
    async def start(self, header: RecordingHeader) -> None:
        ...

    async def write(self, n: int, clock: float, batch: list[BookUpdate]) -> int:
        """Record one batch; returns the bytes it added (0 when unknown)."""
        ...

    async def finish(self, stats: RecordStats) -> None:
        """The recording ended normally."""
        ...

    def abort(self) -> None:
        """The recording failed or was cancelled: release what the sink holds, mark nothing complete."""
        ...


class JsonlSink:
    """A ``.jsonl.gz`` (or plain ``.jsonl``) file, written in ~1 MB chunks."""

    def __init__(self, path: Path, compresslevel: int = 6) -> None:
        self.path = path
        self._compresslevel = compresslevel
        self._file: IO[bytes] | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0

    async def start(self, header: RecordingHeader) -> None:
        self._file = open_write(self.path, self._compresslevel)
        self._file.write(header_line(header))

    async def write(self, n: int, clock: float, batch: list[BookUpdate]) -> int:
        data = batch_lines(n, clock, batch)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _FLUSH_BYTES:
            # Compressing a chunk takes milliseconds; zlib releases the GIL, so the loop keeps running.
            await asyncio.to_thread(self._flush)
        return len(data)

    async def finish(self, stats: RecordStats) -> None:
        if self._file is None:
            return
        self._buffer.append(trailer_line(stats.as_dict()))
        await asyncio.to_thread(self._flush)
        self._file.close()
        self._file = None

    def abort(self) -> None:
        """Close without a trailer: the file reads back as an incomplete recording."""
        if self._file is not None:
            self._flush()
            self._file.close()
            self._file = None

    def _flush(self) -> None:
        assert self._file is not None
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._file.write(data)


class StoreSink:
    """Top of book of every update into ``ticks`` (and full snapshots into ``book_snapshots`` when
    ``snapshots``), through a :class:`StoreWriter` that may sample ticks under overload."""

    def __init__(self, writer: StoreWriter, recording_id: str, *, snapshots: bool = False) -> None:
        self.writer = writer
        self.recording_id = recording_id
        self.snapshots = snapshots
        self._books = BookStore()
        self._header: RecordingHeader | None = None

    async def start(self, header: RecordingHeader) -> None:
        self._header = header
        self.writer.submit_rows([("recordings", self._recording_row(None, None, 0))])

    async def write(self, n: int, clock: float, batch: list[BookUpdate]) -> int:
        rows: list[tuple[str, tuple[Any, ...]]] = []
        for update in batch:
            book = self._books.apply(update)
            if not book.gapped and book.bids and book.asks:
                rows.append(("ticks", (update.venue, update.symbol, book.bids[0][0], book.bids[0][1],
                                       book.asks[0][0], book.asks[0][1], update.received_at)))
            if self.snapshots and update.snapshot:
                rows.append(("book_snapshots", book_snapshot_row(update)))
        self.writer.submit_rows(rows)
        return 0

    async def finish(self, stats: RecordStats) -> None:
        self.writer.submit_rows([("recordings", self._recording_row(stats.first_clock, stats.last_clock,
                                                                    stats.updates))])
        await self.writer.flush()
        stats.dropped = sum(self.writer.dropped.values())

    def abort(self) -> None:
        """Rows already queued stay with the writer (its owner closes it); the recording keeps no end."""

    def _recording_row(self, started: float | None, ended: float | None, updates: int) -> tuple[Any, ...]:
        assert self._header is not None
        h = self._header
        markets = {venue: [market_to_json(m) for m in ms] for venue, ms in h.markets.items()}
        return (self.recording_id, h.source, orjson.dumps(list(h.venues)).decode(),
                orjson.dumps(markets).decode(), started if started is not None else 0.0, ended, updates)


def venue_clock(venue: Venue, batch: list[BookUpdate], previous: float) -> float:
    now = getattr(venue, "now", None)
    if callable(now):
        return float(now())
    return max((u.received_at for u in batch), default=previous)


async def record(venue: Venue, sink: RecordingSink, *, source: str = "", duration_s: float | None = None,
                 max_batches: int | None = None, symbols: Collection[str] | None = None,
                 on_batch: Callable[[float, list[BookUpdate]], None] | None = None,
                 on_progress: Callable[[RecordStats], None] | None = None,
                 stop: asyncio.Event | None = None, meta: dict[str, Any] | None = None) -> RecordStats:
    """Record ``venue``'s stream until ``duration_s`` of its clock, ``max_batches``, ``stop`` or its end.

    ``on_batch(clock, batch)`` runs on every batch before the next is pulled (e.g. an engine trading
    on the stream being recorded); ``on_progress`` gets the running totals.
    """
    markets = await venue.load_markets()
    header = RecordingHeader({venue.name: list(markets)}, source=source or venue.name,
                             created_at=time.time(), meta=meta or {})
    stats = RecordStats()
    wall0 = time.monotonic()
    await sink.start(header)
    stream = venue.stream_books(symbols)
    try:
        async for batch in stream:
            clock = venue_clock(venue, batch, stats.last_clock)
            if stats.first_clock is None:
                stats.first_clock = clock
            stats.bytes_out += await sink.write(stats.batches, clock, batch)
            stats.batches += 1
            stats.updates += len(batch)
            stats.last_clock = clock
            if on_batch is not None:
                on_batch(clock, batch)
            if on_progress is not None:
                stats.wall_s = time.monotonic() - wall0
                on_progress(stats)
            if ((duration_s is not None and stats.span_s >= duration_s)
                    or (max_batches is not None and stats.batches >= max_batches)
                    or (stop is not None and stop.is_set())):
                break
    except BaseException:
        sink.abort()
        raise
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    stats.wall_s = time.monotonic() - wall0
    await sink.finish(stats)
    return stats
