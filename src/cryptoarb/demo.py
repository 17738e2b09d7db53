"""``cryptoarb demo``: the whole pipeline on the simulated exchange, offline, on one event loop.

The simulated venue's clock drives every decision, so the same seed gives the same opportunities and
trades however busy the machine is; wall time only paces the run and measures loop lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from cryptoarb.commands import EventHistory
from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.looplag import LoopLagMonitor
from cryptoarb.model import Event
from cryptoarb.notify.base import NotifierHub
from cryptoarb.notify.console import ConsoleNotifier
from cryptoarb.notify.view import StatusView
from cryptoarb.remote import RemoteSession
from cryptoarb.status import EngineStatus
from cryptoarb.storage.sqlite import SqliteStore
from cryptoarb.storage.writer import StoreWriter
from cryptoarb.venues.sim.venue import SimVenue


@dataclass(frozen=True, slots=True)
class DemoSummary:
    updates: int
    opportunities_detected: int
    opportunities_executed: int
    rejected_by_reason: dict[str, int]
    trades: int
    realized_pnl_usd: float
    loop_lag_ms_p99: float
    db_path: str
    seed: int
    simulated_s: float
    wall_s: float
    interrupted: bool
    balances: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def demo_db_path(settings: Settings) -> Path:
    return settings.data_dir / f"demo-seed{settings.sim.seed}.sqlite"


def _fresh_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def engine_status(engine: Engine, lag: LoopLagMonitor, now: float, wall_start: float, db_path: str,
                  mode: str) -> EngineStatus:
    wall = max(time.monotonic() - wall_start, 1e-9)
    counters = engine.counters
    return EngineStatus(
        mode=mode, venues=tuple(engine.venues), uptime_s=wall, updates=counters.updates,
        updates_per_s=counters.updates / wall, books_tradeable=engine.books_tradeable(now),
        books_total=len(engine.books), opportunities_detected=counters.detected,
        opportunities_executed=counters.executed, rejected_by_reason=dict(counters.rejected),
        trades=engine.ledger.trades, realized_pnl_usd=engine.ledger.realized_pnl_usd,
        loop_lag_ms_p50=lag.percentile(50), loop_lag_ms_p99=lag.percentile(99), loop_lag_ms_max=lag.max_ms,
        db_path=db_path, best=engine.best(now), balances=engine.ledger.snapshot())


async def run_demo(settings: Settings, duration_s: float, *, speed: float = 1.0,
                   console: Console | None = None, live_view: bool = True) -> DemoSummary:
    console = console or Console(stderr=True)
    venue = SimVenue(settings.sim, name="kucoin", speed=speed, balances=settings.balances.get("kucoin", {}))
    markets = await venue.load_markets()
    db_path = demo_db_path(settings)
    _fresh_db(db_path)
    store = SqliteStore(db_path)
    await store.open()
    await store.migrate()
    writer = StoreWriter(store, settings.storage.batch_size, settings.storage.flush_interval_s)
    hub = NotifierHub([ConsoleNotifier(console)])
    history = EventHistory()

    def publish(event: Event) -> None:
        writer.submit(event)
        history.record(event)
        hub.publish(event)

    engine = Engine(settings, {venue.name: venue}, markets, publish)
    lag = LoopLagMonitor()
    wall_start = time.monotonic()
    clock = {"now": 0.0}

    def status() -> EngineStatus:
        return engine_status(engine, lag, clock["now"], wall_start, str(db_path), "paper")

    view = StatusView(status, console, plain_interval_s=settings.notify.status_interval_s)
    remote = RemoteSession(settings, engine, hub, history, status, venue.now)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    background = [asyncio.create_task(writer.run(), name="storage-writer"),
                  asyncio.create_task(hub.run(), name="notifiers"),
                  asyncio.create_task(lag.run(), name="loop-lag")]
    if live_view:
        background.append(asyncio.create_task(view.run(), name="status-view"))
    await remote.start()
    try:
        async for batch in venue.stream_books():
            now = clock["now"] = venue.now()
            engine.on_batch(batch, now, venue.name)
            engine.run_due(now)
            if stop.is_set() or (now >= duration_s and engine.pending == 0):
                break
            if now >= duration_s:
                engine.accepting = False  # no new opportunities; let in-flight ones fill
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for task in background[2:]:
            task.cancel()
        await remote.close()
        await hub.close()
        await writer.close()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
        await venue.close()
    counters = engine.counters
    return DemoSummary(
        updates=counters.updates, opportunities_detected=counters.detected,
        opportunities_executed=counters.executed, rejected_by_reason=dict(sorted(counters.rejected.items())),
        trades=engine.ledger.trades, realized_pnl_usd=round(engine.ledger.realized_pnl_usd, 6),
        loop_lag_ms_p99=round(lag.percentile(99), 3), db_path=str(db_path), seed=settings.sim.seed,
        simulated_s=round(clock["now"], 3), wall_s=round(time.monotonic() - wall_start, 3),
        interrupted=stop.is_set(), balances=engine.ledger.snapshot())
