"""A recording of a demo run, replayed and backtested twice, gives identical results."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.recording import JsonlSink, Recording, record
from cryptoarb.recording.backtest import run_backtest
from cryptoarb.recording.pipeline import ReplaySummary, run_replay
from cryptoarb.storage import SqliteStore
from cryptoarb.venues.sim.venue import SimVenue

SETTINGS = {"sim": {"pairs": 120, "assets": 50, "hot_pairs": 20, "seed": 3}}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(**SETTINGS)


@pytest.fixture
async def demo_recording(tmp_path: Path, settings: Settings) -> Path:
    """A demo run recorded: the paper engine trades on the simulated stream while it is recorded."""
    venue = SimVenue(settings.sim, speed=0, balances=settings.balances["kucoin"])
    engine = Engine(settings, {venue.name: venue}, await venue.load_markets(), lambda _e: None)

    def trade(clock: float, batch: list) -> None:
        engine.on_batch(batch, clock, venue.name)
        engine.run_due(clock)

    path = tmp_path / "demo.jsonl.gz"
    await record(venue, JsonlSink(path), duration_s=10.0, on_batch=trade)
    assert engine.counters.executed > 0  # the recorded run did trade
    return path


async def test_backtest_is_deterministic_and_consistent(demo_recording: Path, settings: Settings,
                                                        tmp_path: Path) -> None:
    first = await run_backtest(settings, Recording(demo_recording), out_dir=tmp_path / "a")
    second = await run_backtest(settings, Recording(demo_recording), out_dir=tmp_path / "b")
    assert first.deterministic() == second.deterministic() and first.digest == second.digest
    assert first.complete and first.updates > 1000 and first.recorded_s == pytest.approx(10.0, abs=0.11)
    assert first.opportunities > 0 and first.executed > 0 and first.trades > 0
    assert first.captured + first.partial + first.missed == first.opportunities  # every plan was resolved
    assert first.rejected_by_reason.get("gone_before_fill", 0) == first.missed
    assert first.slippage_usd == pytest.approx(first.expected_pnl_usd - first.realized_pnl_usd, abs=1e-5)
    assert first.slippage_bps_worst >= first.slippage_bps_mean
    for name in ("spread", "pnl"):
        a, b = Path(first.charts[name]).read_bytes(), Path(second.charts[name]).read_bytes()
        assert a.startswith(b"\x89PNG") and a == b

    stricter = settings.model_copy(update={"detector": settings.detector.model_copy(
        update={"min_return_bps": 40.0})})
    other = await run_backtest(stricter, Recording(demo_recording))
    assert other.digest != first.digest and other.opportunities < first.opportunities
    assert other.charts == {}


async def replay_once(settings: Settings, source: Path, db: Path) -> ReplaySummary:
    async with SqliteStore(db) as store:
        await store.migrate()
        return await run_replay(settings, Recording(source), store, db_label=str(db), speed=0,
                                console=Console(stderr=True, quiet=True), live_view=False)


async def test_replay_twice_gives_the_same_run_and_store(demo_recording: Path, settings: Settings,
                                                         tmp_path: Path) -> None:
    runs = [await replay_once(settings, demo_recording, tmp_path / f"r{i}.sqlite") for i in range(2)]
    a, b = (r.as_dict() for r in runs)
    for volatile in ("wall_s", "db"):
        a.pop(volatile), b.pop(volatile)
    assert a == b
    assert runs[0].opportunities_executed > 0 and not runs[0].interrupted and runs[0].complete

    def contents(db: str) -> dict[str, list]:
        """Every row, with each run's own id taken out of opportunity and order ids (``op<run>-...``): ids
        are unique per run so that runs kept in one store never collide; everything else must repeat."""
        def same_run(value: object) -> object:
            return re.sub(r"\bop[0-9a-f]{8}-", "op-", value) if isinstance(value, str) else value

        with sqlite3.connect(db) as conn:
            return {t: sorted(tuple(map(same_run, row)) for row in conn.execute(f"SELECT * FROM {t}"))
                    for t in ("opportunities", "orders", "fills", "executions")}

    assert contents(runs[0].db) == contents(runs[1].db)
    assert len(contents(runs[0].db)["fills"]) == runs[0].trades

    # The backtest drives the very same engine over the very same batches.
    backtest = await run_backtest(settings, Recording(demo_recording))
    assert (backtest.opportunities, backtest.trades, backtest.rejected_by_reason) == (
        runs[0].opportunities_detected, runs[0].trades, runs[0].rejected_by_reason)
    assert backtest.realized_pnl_usd == pytest.approx(runs[0].realized_pnl_usd, abs=1e-5)


async def test_an_incomplete_recording_still_backtests(demo_recording: Path, settings: Settings,
                                                       tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl.gz"
    data = demo_recording.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = await run_backtest(settings, Recording(cut))
    assert not result.complete and 0 < result.recorded_s < 10.0
