"""The engine driven by a replayed venue: the loop shared by ``replay`` and ``backtest``, and ``replay``.

As in the demo, the venue's clock drives every decision: the same recording gives the same
opportunities and trades whatever the machine's load or the replay speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.looplag import LoopLagMonitor
from cryptoarb.model import Event
from cryptoarb.notify.base import NotifierHub
from cryptoarb.notify.console import ConsoleNotifier, quiet_on_broken_pipe
from cryptoarb.notify.view import StatusView
from cryptoarb.recording.replay import Recording, ReplayVenue
from cryptoarb.stopsignals import on_stop_signals
from cryptoarb.storage.base import Store
from cryptoarb.storage.writer import StoreWriter


async def drive(engine: Engine, venue: ReplayVenue, *, stop: asyncio.Event | None = None,
                on_step: Callable[[float], None] | None = None) -> tuple[float, bool]:
    """Feed every batch to ``engine`` at the venue's clock; returns (last clock, interrupted).

    When the recording ends, or ``stop`` cuts it short, opportunities still in flight reach the venue on the
    last books, so every detected plan is resolved.
    """
    now = venue.now()
    interrupted = False
    stream = venue.stream_books()
    try:
        async for batch in stream:
            now = venue.now()
            engine.on_batch(batch, now, venue.name)
            engine.run_due(now)
            if on_step is not None:
                on_step(now)
            if stop is not None and stop.is_set():
                interrupted = True
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    # interrupted or not, what is in flight fills on the last books, as at the recording's end
    now = engine.settle(now)
    if on_step is not None:
        on_step(now)
    return now, interrupted


def build_engine(settings: Settings, venue: ReplayVenue, publish: Callable[[Event], None]) -> Engine:
    """The engine a replay or backtest runs. A recording made with ``record --paper`` holds books that already
    show what its own paper fills took (they consumed the simulator's liquidity), so its replay keeps no memory
    of taken liquidity (``paper.taken_liquidity_s``), which would take those fills out a second time; any other
    recording's books never saw a paper fill, and the memory applies."""
    if venue.recording.header.meta.get("paper") and settings.paper.taken_liquidity_s:
        paper = settings.paper.model_copy(update={"taken_liquidity_s": 0.0})
        settings = settings.model_copy(update={"paper": paper})
    return Engine(settings, dict.fromkeys(venue.venue_names, venue), venue.recording.markets, publish)


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    source: str
    complete: bool
    updates: int
    batches: int
    opportunities_detected: int
    opportunities_executed: int
    rejected_by_reason: dict[str, int]
    trades: int
    realized_pnl_usd: float
    recorded_s: float
    wall_s: float
    speed: float
    db: str
    interrupted: bool
    balances: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_replay(settings: Settings, recording: Recording, store: Store, *, db_label: str,
                     speed: float = 1.0, console: Console | None = None,
                     live_view: bool = True) -> ReplaySummary:
    """The paper pipeline (engine, store writer, console notifier, status view) over a recording.

    ``store`` must be open and migrated; its owner closes it.
    """
    from cryptoarb.demo import engine_status  # the demo's status view, shared

    console = quiet_on_broken_pipe(console or Console(stderr=True))
    venue = ReplayVenue(recording, speed=speed)
    writer = StoreWriter(store, settings.storage.batch_size, settings.storage.flush_interval_s)
    hub = NotifierHub([ConsoleNotifier(console)])

    def publish(event: Event) -> None:
        writer.submit(event)
        hub.publish(event)

    engine = build_engine(settings, venue, publish)
    lag = LoopLagMonitor()
    wall_start = time.monotonic()
    view = StatusView(lambda: engine_status(engine, lag, venue.now(), wall_start, db_label, "replay"),
                      console, plain_interval_s=settings.notify.status_interval_s)
    stop = asyncio.Event()
    background = [asyncio.create_task(writer.run(), name="storage-writer"),
                  asyncio.create_task(hub.run(), name="notifiers"),
                  asyncio.create_task(lag.run(), name="loop-lag")]
    if live_view:
        background.append(asyncio.create_task(view.run(), name="status-view"))
    first_clock: float | None = None

    def on_step(now: float) -> None:
        nonlocal first_clock
        if first_clock is None:
            first_clock = now

    try:
        with on_stop_signals(stop.set):
            _, interrupted = await drive(engine, venue, stop=stop, on_step=on_step)
    finally:
        for task in background[2:]:
            task.cancel()
        await hub.close()
        await writer.close()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await venue.close()
    counters = engine.counters
    return ReplaySummary(
        source=str(recording.path), complete=bool(recording.complete), updates=counters.updates,
        batches=venue.batches, opportunities_detected=counters.detected,
        opportunities_executed=counters.executed, rejected_by_reason=dict(sorted(counters.rejected.items())),
        trades=engine.ledger.trades, realized_pnl_usd=round(engine.ledger.realized_pnl_usd, 6),
        recorded_s=round(max(venue.now() - (first_clock or 0.0), 0.0), 3),
        wall_s=round(time.monotonic() - wall_start, 3),
        speed=speed, db=db_label, interrupted=interrupted, balances=engine.ledger.snapshot())


def fresh_sqlite(path: Path) -> Path:
    """Remove a previous run's SQLite file (and its WAL) so a replay starts from an empty store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path
