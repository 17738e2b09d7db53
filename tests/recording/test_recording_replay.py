"""Recordings round-trip exactly, and ReplayVenue serves them back as a venue on the recorded clock."""

from __future__ import annotations

import asyncio
import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from cryptoarb.config import Settings
from cryptoarb.model import BookUpdate, Order, Side
from cryptoarb.recording import JsonlSink, Recording, RecordingError, ReplayVenue, record
from cryptoarb.recording import replay as replay_module
from cryptoarb.venues.base import Venue, VenueError
from cryptoarb.venues.sim.venue import SimVenue

SMALL_SIM = {"pairs": 60, "assets": 30, "hot_pairs": 10, "seed": 11}


def sim_venue() -> SimVenue:
    return SimVenue(Settings(sim=SMALL_SIM).sim, speed=0)


async def record_sim(path: Path, batches: int = 60) -> list[tuple[float, list[BookUpdate]]]:
    """Record ``batches`` batches of a small simulated market; returns what the stream handed out."""
    venue = sim_venue()
    seen: list[tuple[float, list[BookUpdate]]] = []
    stats = await record(venue, JsonlSink(path), max_batches=batches,
                         on_batch=lambda clock, batch: seen.append((clock, list(batch))))
    assert stats.batches == batches == len(seen) and stats.updates == sum(len(b) for _, b in seen)
    return seen


@pytest.mark.parametrize("name", ["rec.jsonl.gz", "rec.jsonl"])
async def test_a_recording_reads_back_identically(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    seen = await record_sim(path)
    recording = Recording(path)
    assert recording.markets == await sim_venue().load_markets()  # the same rules, Decimals exact
    assert recording.header.venues == ("kucoin",)
    replayed = list(recording.batches())
    assert replayed == seen  # every BookUpdate equal: floats, sequences, timestamps, snapshot flags
    assert recording.complete is True and recording.summary["batches"] == 60
    if name.endswith(".gz"):
        with gzip.open(path) as f:
            assert f.readline().startswith(b'{"format":"cryptoarb-recording"')


async def test_empty_batches_keep_their_clock(tmp_path: Path) -> None:
    class Quiet:
        name = "quiet"
        clock = 0.0

        def now(self) -> float:
            return self.clock

        async def load_markets(self) -> list:
            return []

        async def stream_books(self, symbols=None):
            for i in range(3):
                self.clock = i * 0.5
                yield []

    path = tmp_path / "quiet.jsonl.gz"
    await record(Quiet(), JsonlSink(path))  # type: ignore[arg-type]
    assert list(Recording(path).batches()) == [(0.0, []), (0.5, []), (1.0, [])]


async def test_replay_venue_serves_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.gz"
    seen = await record_sim(path)
    venue = ReplayVenue(Recording(path))
    assert isinstance(venue, Venue)
    assert venue.name == "kucoin" and venue.now() == 0.0
    assert await venue.load_markets() == await sim_venue().load_markets()
    clocks = []
    got = []
    async for batch in venue.stream_books():
        clocks.append(venue.now())
        got.append(batch)
    assert clocks == [c for c, _ in seen] and got == [b for _, b in seen]
    assert venue.batches == len(seen)
    last = {}
    for _, batch in seen:
        for update in batch:
            last[update.symbol] = update
    symbol, update = sorted(last.items())[0]
    book = await venue.fetch_book(symbol, depth=3)
    assert (book.bids, book.asks, book.sequence) == (update.bids[:3], update.asks[:3], update.sequence)
    tickers = {t.symbol: t for t in await venue.fetch_tickers()}
    assert tickers[symbol].bid == update.bids[0][0] and tickers[symbol].ask == update.asks[0][0]
    with pytest.raises(VenueError):
        await venue.place_order(Order("x", "o", 0, "kucoin", symbol, Side.BUY, Decimal(1), Decimal(1), 0.0))


async def test_replay_filters_symbols_and_serves_one_stream(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.gz"
    seen = await record_sim(path, batches=30)
    venue = ReplayVenue(Recording(path))
    wanted = {seen[0][1][0].symbol, seen[0][1][1].symbol}
    stream = venue.stream_books(wanted)
    first = await anext(stream)
    assert {u.symbol for u in first} == wanted
    with pytest.raises(VenueError):
        await anext(venue.stream_books())
    rest = [b async for b in stream]
    assert all(u.symbol in wanted for b in rest for u in b)
    assert len(rest) == 29


async def test_speed_paces_batches_on_the_recorded_clock(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "rec.jsonl.gz"
    seen = await record_sim(path, batches=21)  # 1 s of recorded time in 50 ms steps
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(replay_module.asyncio, "sleep", fake_sleep)
    venue = ReplayVenue(Recording(path), speed=4.0)
    async for _ in venue.stream_books():
        pass
    wanted = [(clock - seen[0][0]) / 4.0 for clock, _ in seen]
    # Each wait is what is left until the batch's recorded time at 4x: no real sleep ran, so the
    # only difference is the little wall time the replay itself took.
    assert len(delays) == len(wanted)
    assert all(w - 0.2 <= d <= w + 1e-9 for d, w in zip(delays, wanted, strict=True))
    assert delays[-1] > delays[len(delays) // 2] > delays[1]


async def test_a_truncated_recording_replays_its_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.gz"
    seen = await record_sim(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    recording = Recording(cut)
    got = list(recording.batches())
    assert recording.complete is False
    assert 0 < len(got) < len(seen) and got == seen[: len(got)]


async def test_a_recording_without_its_end_marker_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    seen = await record_sim(path, batches=10)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # the trailer is gone, as after a crash at a line boundary
    recording = Recording(path)
    got = list(recording.batches())
    assert recording.complete is False and got == seen[:9]  # the last batch may be partial: dropped


def test_files_that_are_not_recordings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such recording"):
        Recording(tmp_path / "missing.jsonl.gz")
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(RecordingError, match="not a cryptoarb recording"):
        Recording(other)
    binary = tmp_path / "x.jsonl.gz"
    binary.write_bytes(b"\x00\x01garbage")
    with pytest.raises(RecordingError):
        Recording(binary)
    future = tmp_path / "future.jsonl"
    future.write_text('{"format": "cryptoarb-recording", "version": 99, "venues": {}}\n')
    with pytest.raises(RecordingError, match="version 99"):
        Recording(future)


@pytest.mark.parametrize("paper", [True, False])
async def test_a_replay_takes_liquidity_out_again_only_where_the_recorded_books_never_saw_it_go(
        tmp_path: Path, paper: bool) -> None:
    """``record --paper`` recorded books its own paper fills had consumed: its replay must not take those fills
    out of them a second time. Books recorded with no trading never saw a paper fill, and keep the memory."""
    from cryptoarb.recording.pipeline import build_engine

    path = tmp_path / "rec.jsonl"
    await record(sim_venue(), JsonlSink(path), max_batches=5, meta={"paper": paper})
    settings = Settings(sim=SMALL_SIM)
    engine = build_engine(settings, ReplayVenue(Recording(path)), lambda _e: None)
    assert engine.executor.taken.memory_s == (0.0 if paper else 5.0)  # 5 s: the default
