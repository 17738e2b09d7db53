"""``cryptoarb record | replay | backtest``. Exit codes: 0 done, 2 bad usage, config or recording file,
1 a runtime failure (database, disk). Machine-readable output (``--json``) is one line on stdout;
progress and status go to stderr."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cryptoarb.config import ConfigError, Settings, load_settings
from cryptoarb.notify.console import quiet_on_broken_pipe
from cryptoarb.stopsignals import on_stop_signals

if TYPE_CHECKING:  # the commands import their machinery when run, keeping `cryptoarb --help` fast
    from cryptoarb.model import BookUpdate
    from cryptoarb.recording.recorder import RecordStats
    from cryptoarb.recording.replay import Recording

EXIT_RUNTIME = 1
EXIT_USAGE = 2
RECORDER_BATCH_ROWS = 10_000

err = quiet_on_broken_pipe(Console(stderr=True))

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML settings file (default: ./cryptoarb.toml when present).", dir_okay=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on the last "
                                                        "line of stdout.")]
SourceArgument = Annotated[Path, typer.Argument(help="A recording made by `cryptoarb record` (.jsonl.gz).",
                                                dir_okay=False, show_default=False)]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings(path: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(path, **overrides)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _recording(path: Path) -> Recording:
    from cryptoarb.recording.format import RecordingError
    from cryptoarb.recording.replay import Recording

    try:
        return Recording(path)
    except RecordingError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _run(coro: Any) -> Any:
    import asyncpg

    from cryptoarb.recording.format import RecordingError
    from cryptoarb.storage import StoreError

    try:
        return asyncio.run(coro)
    except RecordingError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except (StoreError, OSError, asyncpg.PostgresError) as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", EXIT_RUNTIME) from None


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table


# -- record --------------------------------------------------------------------------------------


def record_command(
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Recording file; .jsonl.gz is gzip-compressed (default: "
        "<data_dir>/recordings/sim-seed<N>.jsonl.gz).", dir_okay=False)] = None,
    to_store: Annotated[bool, typer.Option(
        "--store", help="Write top of book into the store's ticks table instead of a file (PostgreSQL when "
        "a DSN is configured, else SQLite).")] = False,
    snapshots: Annotated[bool, typer.Option(
        help="With --store: also keep every full book in book_snapshots.")] = False,
    duration: Annotated[float, typer.Option(
        min=0.05, help="Seconds to record, on the venue's clock.")] = 60.0,
    speed: Annotated[float, typer.Option(
        help="Simulated seconds per wall second; 0 records as fast as the machine allows.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated market.")] = None,
    paper: Annotated[bool, typer.Option(
        "--paper/--no-paper", help="Paper-trade on the stream while recording it, as the demo does "
        "(its fills consume simulated liquidity, so the recording is of a demo run).")] = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Record market data (every book update of the simulated KuCoin-like exchange) with a progress view.

    To a compressed JSON Lines file that `cryptoarb replay` and `cryptoarb backtest` read, or with
    --store into the database (top of book per update; ticks may be sampled under overload, and
    the number dropped is reported).
    """
    settings = _settings(config, **{"sim.seed": seed})
    if out is not None and to_store:
        raise _fail("--out and --store are exclusive: record to a file or to the store", EXIT_USAGE)
    if snapshots and not to_store:
        raise _fail("--snapshots applies to --store recordings (files always keep full books)", EXIT_USAGE)
    target = out or settings.data_dir / "recordings" / f"sim-seed{settings.sim.seed}.jsonl.gz"
    stats, extra = _run(_record(settings, None if to_store else target, snapshots, duration, speed, paper))
    summary = {**stats.as_dict(), **extra}
    if extra["interrupted"]:
        err.print("[yellow]interrupted: the recording ends where it was stopped, with its end marker[/]")
    if as_json:
        print(json.dumps(summary, separators=(",", ":")))
        return
    Console().print(_table("cryptoarb record", [
        ("destination", str(summary["destination"])), ("batches", f"{stats.batches:,}"),
        ("book updates", f"{stats.updates:,}"), ("recorded seconds", f"{stats.span_s:,.2f}"),
        ("bytes written (uncompressed / on disk)",
         f"{stats.bytes_out:,} / {summary['file_bytes']:,}" if not to_store else "-"),
        ("ticks dropped (overload)", f"{stats.dropped:,}"), ("wall seconds", f"{stats.wall_s:,.2f}"),
        *([("opportunities detected / executed",
            f"{summary['opportunities_detected']:,} / {summary['opportunities_executed']:,}"),
           ("trades", f"{summary['trades']:,}"), ("realized PnL (USD)", f"{summary['realized_pnl_usd']:,.6f}")]
          if "trades" in summary else [])]))


async def _record(settings: Settings, path: Path | None, snapshots: bool, duration: float, speed: float,
                  paper: bool) -> tuple[RecordStats, dict[str, Any]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cryptoarb.engine import Engine
    from cryptoarb.recording.recorder import JsonlSink, RecordingSink, StoreSink, record
    from cryptoarb.storage import PostgresStore, SqliteStore, Store, StoreWriter, resolve_dsn
    from cryptoarb.venues.sim.venue import SimVenue

    venue = SimVenue(settings.sim, name="kucoin", speed=speed, balances=settings.balances.get("kucoin", {}))
    on_batch: Callable[[float, list[BookUpdate]], None] | None = None
    engine: Engine | None = None
    if paper:
        trader = engine = Engine(settings, {venue.name: venue}, await venue.load_markets(), lambda _e: None)

        def on_batch(clock: float, batch: list[BookUpdate]) -> None:
            trader.on_batch(batch, clock, venue.name)
            trader.run_due(clock)

    store: Store | None = None
    writer: StoreWriter | None = None
    sink: RecordingSink
    if path is None:
        dsn = resolve_dsn(settings)
        store = PostgresStore(dsn) if dsn else SqliteStore(settings.sqlite_path)
        await store.open()
        await store.migrate()
        # Market data is bulk: large transactions write each index page once per batch, not per row.
        writer = StoreWriter(store, max(settings.storage.batch_size, RECORDER_BATCH_ROWS),
                             settings.storage.flush_interval_s, max_queue=10 * RECORDER_BATCH_ROWS)
        sink = StoreSink(writer, f"rec-{uuid.uuid4().hex[:12]}", snapshots=snapshots)
        destination = store.location if isinstance(store, PostgresStore) else str(settings.sqlite_path)
    else:
        sink = JsonlSink(path)
        destination = str(path)
    runner = asyncio.create_task(writer.run()) if writer is not None else None
    progress = Progress(TextColumn("[bold]recording[/]"), BarColumn(), TextColumn("{task.fields[clock]}"),
                        TextColumn("{task.fields[updates]} updates"), TextColumn("{task.fields[size]}"),
                        TimeElapsedColumn(), console=err)
    task = progress.add_task("record", total=duration, clock="", updates=0, size="")

    def on_progress(s: RecordStats) -> None:
        queued = writer.queued if writer is not None else 0
        size = f"{s.bytes_out / 1e6:,.1f} MB" if path is not None else f"{queued:,} rows queued"
        progress.update(task, completed=min(s.span_s, duration), clock=f"{s.span_s:,.1f}/{duration:g} s",
                        updates=f"{s.updates:,}", size=size)

    stop = asyncio.Event()  # Ctrl-C or SIGTERM: end the recording cleanly, its end marker written
    try:
        with on_stop_signals(stop.set), progress:
            stats = await record(venue, sink, source=f"sim seed {settings.sim.seed}", duration_s=duration,
                                 on_batch=on_batch, on_progress=on_progress, stop=stop,
                                 meta={"seed": settings.sim.seed, "paper": paper})
        if engine is not None:  # what is in flight fills on the last books, as a replay of the recording does
            engine.settle(stats.last_clock)
    finally:
        if writer is not None:
            await writer.close()
        if runner is not None:
            await runner
        if store is not None:
            await store.close()
        await venue.close()
    extra: dict[str, Any] = {"destination": destination, "interrupted": stop.is_set()}
    if path is not None:
        extra["file_bytes"] = path.stat().st_size  # bytes_out counts the JSON lines before compression
    if engine is not None:
        extra.update(opportunities_detected=engine.counters.detected, opportunities_executed=engine.counters.executed,
                     trades=engine.ledger.trades, realized_pnl_usd=round(engine.ledger.realized_pnl_usd, 6))
    return stats, extra


# -- replay --------------------------------------------------------------------------------------


def replay_command(
    source: SourceArgument,
    speed: Annotated[float, typer.Option(
        help="Recorded seconds per wall second; 0 replays as fast as the machine allows.")] = 1.0,
    db: Annotated[Path | None, typer.Option(
        help="SQLite file for what the engine records (default: <data_dir>/replay-<name>.sqlite, "
        "recreated each run).", dir_okay=False)] = None,
    dsn: Annotated[str | None, typer.Option(help="Record into PostgreSQL at this DSN instead.")] = None,
    schema: Annotated[str | None, typer.Option(help="With --dsn: the PostgreSQL schema to use.")] = None,
    view: Annotated[bool, typer.Option("--view/--no-view", help="Show the live status view.")] = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Replay a recording as a venue through the same paper pipeline as the demo.

    The engine sees the recorded batches at the recorded clock, so the decisions are the ones it
    would have made on that market; Ctrl-C ends early with a summary of the part that ran.
    """
    settings = _settings(config)
    recording = _recording(source)
    if schema and not dsn:
        raise _fail("--schema needs --dsn", EXIT_USAGE)
    summary = _run(_replay(settings, recording, speed, db, dsn, schema, view))
    if not summary.complete and not summary.interrupted:
        err.print("[yellow]warning: the recording has no end marker (its recorder was cut short); "
                  "replayed every whole batch[/]")
    if as_json:
        print(json.dumps(summary.as_dict(), separators=(",", ":")))
        return
    Console().print(_table(f"cryptoarb replay — {source.name}", [
        ("book updates", f"{summary.updates:,}"), ("recorded seconds", f"{summary.recorded_s:,.2f}"),
        ("opportunities detected", f"{summary.opportunities_detected:,}"),
        ("opportunities executed", f"{summary.opportunities_executed:,}"),
        *((f"  rejected: {k}", f"{v:,}") for k, v in summary.rejected_by_reason.items()),
        ("trades (fills)", f"{summary.trades:,}"), ("realized PnL (USD)", f"{summary.realized_pnl_usd:,.4f}"),
        ("database", summary.db)]))


async def _replay(settings: Settings, recording: Recording, speed: float, db: Path | None, dsn: str | None,
                  schema: str | None, view: bool) -> Any:
    from cryptoarb.recording.pipeline import fresh_sqlite, run_replay
    from cryptoarb.storage import PostgresStore, SqliteStore, Store

    store: Store
    if dsn:
        store = PostgresStore(dsn, schema=schema)
        label = store.location
    else:
        path = fresh_sqlite(db or settings.data_dir / f"replay-{_stem(recording.path)}.sqlite")
        store, label = SqliteStore(path), str(path)
    await store.open()
    try:
        await store.migrate()
        return await run_replay(settings, recording, store, db_label=label, speed=speed, console=err,
                                live_view=view)
    finally:
        await store.close()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl"):
        name = name.removesuffix(suffix)
    return name


# -- backtest ------------------------------------------------------------------------------------


def backtest_command(
    source: SourceArgument,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Directory for spread.png and pnl.png (default: <data_dir>/backtests/<name>).",
        file_okay=False)] = None,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Render the PNG charts.")] = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run the detector and the paper executor over a recording, as fast as possible, deterministically.

    Reports opportunities, how many were captured in full, partly or missed, expected vs realized PnL
    (the slippage), rejections by reason, and renders charts of the cycle spread and PnL over time.
    The same recording and config always give the same result (compare its digest).
    """
    from cryptoarb.recording.backtest import BacktestResult, run_backtest

    settings = _settings(config)
    recording = _recording(source)
    out_dir = (out or settings.data_dir / "backtests" / _stem(source)) if charts else None
    result: BacktestResult = _run(run_backtest(settings, recording, out_dir=out_dir))
    if not result.complete:
        err.print("[yellow]warning: the recording has no end marker (its recorder was cut short); "
                  "backtested every whole batch[/]")
    if as_json:
        print(json.dumps(result.as_dict(), separators=(",", ":")))
        return
    rows = [
        ("book updates", f"{result.updates:,}"), ("recorded seconds", f"{result.recorded_s:,.2f}"),
        ("opportunities", f"{result.opportunities:,}"),
        ("captured (all legs filled)", f"{result.captured:,}"),
        ("partly filled", f"{result.partial:,}"), ("missed (nothing filled)", f"{result.missed:,}"),
        *((f"  rejected: {k}", f"{v:,}") for k, v in result.rejected_by_reason.items()),
        ("trades (fills)", f"{result.trades:,}"), ("expected PnL (USD)", f"{result.expected_pnl_usd:,.4f}"),
        ("realized PnL (USD)", f"{result.realized_pnl_usd:,.4f}"),
        ("slippage (USD)", f"{result.slippage_usd:,.4f}"),
        ("slippage mean / worst (bps)",
         f"{result.slippage_bps_mean:,.2f} / {result.slippage_bps_worst:,.2f}"),
        ("digest", result.digest), *((f"chart: {k}", v) for k, v in result.charts.items()),
    ]
    Console().print(_table(f"cryptoarb backtest — {source.name}", rows))
