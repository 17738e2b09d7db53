"""``cryptoarb demo``: the whole pipeline on the simulated exchange, offline, on one event loop.

The simulated venue's clock drives every decision, so the same seed gives the same opportunities and
trades however busy the machine is; wall time only paces the run and measures loop lag.

With several venues (``venues=["kucoin", "coinbase", "bl3p"]``) the demo runs a ``SimWorld``: the venues
quote one set of hidden fair values with premiums that drift apart and back, every venue holds its own
paper inventory (configured, or ``world.DEFAULT_BALANCES``), and the engine's inventory edges join the
venues, so triangular, cross-exchange and mixed cycles are found by the one detector and paper-executed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from rich.console import Console

from cryptoarb.commands import EventHistory
from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.looplag import LoopLagMonitor
from cryptoarb.model import Balance, BookUpdate, Cycle, Event, Execution, Notice, Opportunity
from cryptoarb.notify.base import NotifierHub
from cryptoarb.notify.console import ConsoleNotifier, quiet_on_broken_pipe
from cryptoarb.notify.view import StatusView
from cryptoarb.remote import RemoteSession
from cryptoarb.status import EngineStatus
from cryptoarb.stopsignals import on_stop_signals
from cryptoarb.storage.sqlite import SqliteStore
from cryptoarb.storage.writer import StoreWriter
from cryptoarb.venues.base import Venue
from cryptoarb.venues.sim.venue import SimVenue
from cryptoarb.venues.sim.world import VENUE_KINDS, SimWorld, venue_kind, world_balances

Steps = AsyncIterator[list[tuple[str, list[BookUpdate]]]]
BALANCE_SNAPSHOT_S = 1.0
DRAIN_LIMIT_S = 30.0
"""After a stop signal, how long (simulated seconds) opportunities in flight get to fill before the run ends."""
MULTI_VENUE_START_ASSETS = ["USDT", "EUR"]
"""Where multi-venue cycles start unless ``detector.start_assets`` is set: the cash of every venue (BL3P
holds EUR, not USDT), so EUR cross-exchange cycles (BTC-EUR on BL3P against Coinbase) exist too."""
MULTI_VENUE_LEG_MODE = "inventory"
"""How multi-venue cycles execute unless ``execution.leg_mode`` is set: every leg from the inventory held
on its own venue (an asset cannot travel between venues within a cycle)."""


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
    venues: list[str] = field(default_factory=lambda: ["kucoin"])
    cycles_by_kind: dict[str, int] = field(default_factory=dict)
    detected_by_kind: dict[str, int] = field(default_factory=dict)
    executed_by_kind: dict[str, int] = field(default_factory=dict)
    notices_by_kind: dict[str, int] = field(default_factory=dict)
    inventory_start: dict[str, dict[str, float]] = field(default_factory=dict)
    inventory_low: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per venue, the lowest fraction of its starting amount each held asset fell to (1.0: never spent)."""
    rebalance_suggestions: list[str] = field(default_factory=list)
    in_flight: int = 0
    """Opportunities still unresolved when the run ended (only after a second stop signal or the drain limit)."""

    def as_dict(self) -> dict:
        return asdict(self)


def venue_rows(summary: DemoSummary) -> list[tuple[str, str]]:
    """Extra summary rows for a multi-venue run (none for the single-venue demo): opportunities executed by
    kind, each venue's inventory from start to end, and the last rebalance suggestions."""
    if len(summary.venues) < 2:
        return []
    rows = [(f"  executed: {kind}", f"{n:,}") for kind, n in summary.executed_by_kind.items()]
    for venue in summary.venues:
        start, end = summary.inventory_start.get(venue, {}), summary.balances.get(venue, {})
        moved = [f"{a} {start[a]:g}->{end.get(a, 0.0):.6g}" for a in sorted(start)]
        rows.append((f"inventory {venue}", ", ".join(moved)))
    if summary.rebalance_suggestions:
        rows.append(("rebalance suggestions", f"{summary.notices_by_kind.get('rebalance', 0):,}"))
        rows += [("  ", text.removeprefix("suggested rebalance: ")) for text in summary.rebalance_suggestions[-3:]]
    return rows


def path_kind(venues: Sequence[str], path: Sequence[str]) -> str:
    """triangular / multi-leg (one venue), cross-exchange (one asset bought on one venue and sold on
    another: two assets), mixed (a path through three or more assets that spans venues)."""
    if len(set(venues)) == 1:
        return "triangular" if len(path) == 4 else "multi-leg"
    return "cross-exchange" if len(set(path)) == 2 else "mixed"


def cycle_kind(cycle: Cycle) -> str:
    return path_kind([leg.venue for leg in cycle.legs], cycle.path)


def opportunity_kind(opportunity: Opportunity) -> str:
    return path_kind([leg.venue for leg in opportunity.legs], opportunity.path)


class _Tally:
    """What the summary reports beyond the engine's counters: opportunities by kind, notices, inventory."""

    def __init__(self) -> None:
        self.detected: Counter[str] = Counter()
        self.executed: Counter[str] = Counter()
        self.notices: Counter[str] = Counter()
        self.rebalances: list[str] = []
        self.low: dict[tuple[str, str], float] = {}

    def record(self, event: Event) -> None:
        if isinstance(event, Opportunity):
            self.detected[opportunity_kind(event)] += 1
        elif isinstance(event, Execution):
            if any(r.fills for r in event.results):
                self.executed[opportunity_kind(event.opportunity)] += 1
        elif isinstance(event, Notice):
            self.notices[event.kind] += 1
            if "rebalance" in event.kind and len(self.rebalances) < 50:
                self.rebalances.append(event.message)

    def watch(self, start: Mapping[str, Mapping[str, float]], now: Mapping[str, Mapping[str, float]]) -> None:
        for venue, assets in start.items():
            for asset, amount in assets.items():
                if amount > 0:
                    left = now.get(venue, {}).get(asset, 0.0) / amount
                    key = (venue, asset)
                    self.low[key] = min(self.low.get(key, 1.0), left)

    def low_by_venue(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for (venue, asset), left in sorted(self.low.items()):
            out.setdefault(venue, {})[asset] = round(left, 4)
        return out


def demo_db_path(settings: Settings, venues: Sequence[str] | None = None) -> Path:
    if not venues or list(venues) == ["kucoin"]:
        return settings.data_dir / f"demo-seed{settings.sim.seed}.sqlite"
    return settings.data_dir / f"demo-{'-'.join(venues)}-seed{settings.sim.seed}.sqlite"


def parse_venues(text: str | Sequence[str] | None, settings: Settings | None = None) -> list[str] | None:
    """``"kucoin,coinbase,bl3p"`` -> the list, checked against the simulated venue kinds."""
    if text is None:
        return None
    names = [v.strip() for v in (text.split(",") if isinstance(text, str) else text) if v.strip()]
    if not names:
        raise ValueError("--venues: name at least one venue")
    if len(set(names)) != len(names):
        raise ValueError(f"--venues: a venue is listed twice in {','.join(names)}")
    for name in names:
        try:
            venue_kind(name, settings.sim if settings is not None else _default_sim())
        except ValueError:
            raise ValueError(f"--venues: {name!r} is not a simulated venue (known: {', '.join(VENUE_KINDS)})") \
                from None
    return names


def _default_sim():
    from cryptoarb.config import SimSettings

    return SimSettings()


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
                   console: Console | None = None, live_view: bool = True,
                   venues: Sequence[str] | None = None) -> DemoSummary:
    """Run the demo for ``duration_s`` simulated seconds on the KuCoin-like venue, or with ``venues``
    (two or more, or any other than ``kucoin`` alone) on a multi-venue ``SimWorld``."""
    if venues is None or list(venues) == ["kucoin"]:
        venue = SimVenue(settings.sim, name="kucoin", speed=speed, balances=settings.balances.get("kucoin", {}))
        return await _run(settings, duration_s, {venue.name: venue}, _single(venue), venue.now,
                          demo_db_path(settings), console=console, live_view=live_view, multi=False)
    names = parse_venues(list(venues), settings) or []
    balances = world_balances(settings.balances, names, settings.sim)
    update: dict = {"balances": {v: balances[v] for v in names}}
    if "start_assets" not in settings.detector.model_fields_set:
        update["detector"] = settings.detector.model_copy(update={"start_assets": list(MULTI_VENUE_START_ASSETS)})
    if "leg_mode" in type(settings.execution).model_fields and "leg_mode" not in settings.execution.model_fields_set:
        update["execution"] = settings.execution.model_copy(update={"leg_mode": MULTI_VENUE_LEG_MODE})
    settings = settings.model_copy(update=update)
    world = SimWorld(settings.sim, names, speed=speed, balances=settings.balances)
    try:
        return await _run(settings, duration_s, dict(world.venues), world.stream(), world.now,
                          demo_db_path(settings, names), console=console, live_view=live_view, multi=True)
    finally:
        await world.close()


async def _single(venue: SimVenue) -> Steps:
    async for batch in venue.stream_books():
        yield [(venue.name, batch)]


async def _run(settings: Settings, duration_s: float, venues: Mapping[str, Venue], steps: Steps,
               now_fn: Callable[[], float], db_path: Path, *, console: Console | None, live_view: bool,
               multi: bool) -> DemoSummary:
    console = quiet_on_broken_pipe(console or Console(stderr=True))
    markets = [m for venue in venues.values() for m in await venue.load_markets()]
    _fresh_db(db_path)
    store = SqliteStore(db_path)
    await store.open()
    await store.migrate()
    writer = StoreWriter(store, settings.storage.batch_size, settings.storage.flush_interval_s)
    hub = NotifierHub([ConsoleNotifier(console)])
    history = EventHistory()
    tally = _Tally()

    def publish(event: Event) -> None:
        writer.submit(event)
        history.record(event)
        hub.publish(event)
        tally.record(event)

    engine = Engine(settings, venues, markets, publish)
    inventory_start = engine.ledger.snapshot()
    if multi:
        _snapshot_balances(writer, engine, 0.0)
    lag = LoopLagMonitor()
    wall_start = time.monotonic()
    clock = {"now": 0.0}

    def status() -> EngineStatus:
        return engine_status(engine, lag, clock["now"], wall_start, str(db_path), "paper")

    view = StatusView(status, console, plain_interval_s=settings.notify.status_interval_s)
    remote = RemoteSession(settings, engine, hub, history, status, now_fn)
    stop, force = asyncio.Event(), asyncio.Event()  # a first signal ends the run, a second its drain

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    signals = contextlib.ExitStack()
    signals.enter_context(on_stop_signals(on_signal))
    background = [asyncio.create_task(writer.run(), name="storage-writer"),
                  asyncio.create_task(hub.run(), name="notifiers"),
                  asyncio.create_task(lag.run(), name="loop-lag")]
    if live_view:
        background.append(asyncio.create_task(view.run(), name="status-view"))
    await remote.start()
    try:
        executed = trades = 0
        last_snapshot = 0.0
        stopped_at: float | None = None
        async for step in steps:
            now = clock["now"] = now_fn()
            for name, batch in step:
                engine.on_batch(batch, now, name)
            engine.run_due(now)
            if multi and engine.ledger.trades != trades:
                trades = engine.ledger.trades
                tally.watch(inventory_start, engine.ledger.snapshot())
                if now - last_snapshot >= BALANCE_SNAPSHOT_S or engine.counters.executed != executed:
                    executed, last_snapshot = engine.counters.executed, now
                    _snapshot_balances(writer, engine, now)
            if stop.is_set() and stopped_at is None:
                stopped_at = now
            ending = stopped_at is not None or now >= duration_s
            if ending and engine.pending == 0:
                break
            if stopped_at is not None and (force.is_set() or now > stopped_at + DRAIN_LIMIT_S):
                break  # what is still in flight is reported as such
            if ending:
                engine.accepting = False  # no new opportunities; let in-flight ones fill
    finally:
        signals.close()
        for task in background[2:]:
            task.cancel()
        if multi:
            _snapshot_balances(writer, engine, clock["now"])
        await remote.close()
        await hub.close()
        await writer.close()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
        for venue in venues.values():
            await venue.close()
    counters = engine.counters
    return DemoSummary(
        updates=counters.updates, opportunities_detected=counters.detected,
        opportunities_executed=counters.executed, rejected_by_reason=dict(sorted(counters.rejected.items())),
        trades=engine.ledger.trades, realized_pnl_usd=round(engine.ledger.realized_pnl_usd, 6),
        loop_lag_ms_p99=round(lag.percentile(99), 3), db_path=str(db_path), seed=settings.sim.seed,
        simulated_s=round(clock["now"], 3), wall_s=round(time.monotonic() - wall_start, 3),
        interrupted=stop.is_set(), balances=engine.ledger.snapshot(), venues=list(venues),
        cycles_by_kind=dict(sorted(Counter(cycle_kind(c) for c in engine.cycles).items())),
        detected_by_kind=dict(sorted(tally.detected.items())), executed_by_kind=dict(sorted(tally.executed.items())),
        notices_by_kind=dict(sorted(tally.notices.items())), inventory_start=inventory_start,
        inventory_low=tally.low_by_venue(), rebalance_suggestions=tally.rebalances, in_flight=engine.pending)


def _snapshot_balances(writer: StoreWriter, engine: Engine, at: float) -> None:
    """Every (venue, asset) the ledger holds, into the ``balances`` table: the inventory over time."""
    rows = [Balance(venue, asset, Decimal(repr(amount)), Decimal(repr(amount)))
            for venue, assets in engine.ledger.snapshot().items() for asset, amount in assets.items()]
    writer.submit_balances(rows, at)
