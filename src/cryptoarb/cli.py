"""The ``cryptoarb`` command line. Exit codes: 0 success, 2 bad usage or bad config, 1 runtime failure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cryptoarb import __version__
from cryptoarb.config import (
    SECRET_MASK,
    ConfigError,
    Settings,
    check_http_url,
    environment_secrets,
    load_settings,
    masked,
)
from cryptoarb.recording.cli import backtest_command, record_command, replay_command
from cryptoarb.reporting import report
from cryptoarb.run.cli import run_command, watch_command
from cryptoarb.storage.cli import db_app
from cryptoarb.venues.sim.servers import sim_server_app

EXIT_RUNTIME = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="cryptoarb", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    help="Asyncio arbitrage engine for centralized crypto exchanges: detect, size, trade (paper by "
         "default), store and report.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective configuration.")
app.add_typer(config_app, name="config")

err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML settings file (default: ./cryptoarb.toml when present).",
    dir_okay=False)]


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _not_nan(value: float) -> float:
    # typer releases that use click's FloatRange let NaN through min= (every comparison with NaN is false)
    if math.isnan(value):
        raise typer.BadParameter("must be a number, not nan")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value


def settings_or_exit(path: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(path, **overrides)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _version(value: bool) -> None:
    if value:
        print(f"cryptoarb {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """cryptoarb: arbitrage across every market of an exchange, offline or live."""


@app.command()
def demo(
    duration: Annotated[float, typer.Option(min=0.5, callback=_not_nan, help="Simulated seconds to run.")] = 60.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated market (same seed, same run).")] = None,
    speed: Annotated[float, typer.Option(
        min=0, callback=_not_nan,
        help="Simulated seconds per wall second; 0 runs as fast as the machine allows.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on the "
                                          "last line of stdout.")] = False,
    venues: Annotated[str | None, typer.Option(
        help="Comma-separated simulated venues, e.g. kucoin,coinbase,bl3p: one world of fair values whose "
             "venues drift apart and back, per-venue inventory, cross-exchange and mixed cycles.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the whole pipeline offline on the simulated KuCoin-like exchange, paper trading.

    Markets stream, cycles are detected, sized on depth, risk-checked, paper-filled, stored in
    SQLite (data/demo-seed<N>.sqlite, recreated each run) and reported. Ctrl-C ends early and cleanly.
    """
    from cryptoarb.demo import parse_venues, run_demo

    settings = settings_or_exit(config, **{"sim.seed": seed})
    if settings.mode != "paper":
        raise fail("the demo only paper-trades; set mode = \"paper\"", EXIT_USAGE)
    try:
        names = parse_venues(venues, settings)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    from cryptoarb.storage import resolve_dsn

    if resolve_dsn(settings):
        err.print("[yellow]note: the demo stores into its own SQLite file (recreated each run); the PostgreSQL "
                  "DSN set applies to run, replay, record and db[/]")
    summary = asyncio.run(run_demo(settings, duration, speed=speed, console=err, live_view=True, venues=names))
    if as_json:
        print(json.dumps(summary.as_dict(), separators=(",", ":")))
    else:
        _print_summary(summary)
    if summary.interrupted:
        err.print("[yellow]interrupted: summary covers the part that ran[/]" + (
            f"[yellow]; {summary.in_flight} opportunities were still in flight[/]" if summary.in_flight else ""))


def _print_summary(summary: Any) -> None:
    out = Console()
    table = Table(title=f"cryptoarb demo — seed {summary.seed}, {summary.simulated_s:.0f} s simulated",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("updates processed", f"{summary.updates:,}")
    table.add_row("opportunities detected", f"{summary.opportunities_detected:,}")
    table.add_row("opportunities executed", f"{summary.opportunities_executed:,}")
    for reason, count in summary.rejected_by_reason.items():
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    table.add_row("trades (fills)", f"{summary.trades:,}")
    table.add_row("realized PnL (USD, after fees)", f"{summary.realized_pnl_usd:,.4f}")
    from cryptoarb.demo import venue_rows

    for label, value in venue_rows(summary):
        table.add_row(label, value)
    table.add_row("event-loop lag p99", f"{summary.loop_lag_ms_p99:.2f} ms")
    table.add_row("database", summary.db_path)
    out.print(table)


@app.command()
def scan(
    symbols: Annotated[Path | None, typer.Option(help="Saved /api/v2/symbols response (JSON).", dir_okay=False)] = None,
    tickers: Annotated[Path | None, typer.Option(help="Saved /api/v1/market/allTickers response.",
                                                 dir_okay=False)] = None,
    fees: Annotated[Path | None, typer.Option(help="Saved /api/v1/trade-fees response (per-pair taker fees).",
                                              dir_okay=False)] = None,
    books: Annotated[Path | None, typer.Option(help="Directory of level2_100 responses named SYMBOL.json; "
                                               "without it sizes are limited to top-of-book sizes.",
                                               exists=True, file_okay=False)] = None,
    sim: Annotated[bool, typer.Option("--sim", help="Scan the simulated exchange instead of files.")] = False,
    rest_url: Annotated[str | None, typer.Option(
        help="Scan one REST snapshot of KuCoin at this base URL (https://api.kucoin.com, or a sim-server's URL); "
             "the books of the candidate cycles' markets are fetched to size them on depth.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated exchange (with --sim).")] = None,
    at: Annotated[float, typer.Option(min=0, callback=_finite,
                                      help="Simulated seconds to run before the snapshot (with --sim).")]
    = 10.0,
    min_profit_bps: Annotated[float | None, typer.Option(
        help="Top-of-book net return after fees (bps) a cycle needs to be sized; default detector.min_return_bps.")]
    = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show in the table.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout, one object per opportunity.")]
    = False,
    config: ConfigOption = None,
) -> None:
    """Evaluate every cycle on one snapshot and size the profitable ones on depth (no trading).

    Offline from saved KuCoin REST responses (--symbols and --tickers, optionally --fees and --books), or
    from the simulated exchange with --sim.
    """
    from cryptoarb.scan import opportunity_json, scan_snapshot

    settings = settings_or_exit(config, **{"sim.seed": seed})
    sources = [sim, rest_url is not None, symbols is not None or tickers is not None]
    if sum(sources) != 1:
        raise fail("give one source: --symbols and --tickers (saved responses), --sim, or --rest-url", EXIT_USAGE)
    if rest_url is not None:
        try:
            check_http_url(rest_url)
        except ValueError as exc:
            raise fail(f"--rest-url {rest_url}: {exc}", EXIT_USAGE) from None
        result = asyncio.run(_rest_scan(settings, rest_url, min_profit_bps))
        if as_json:
            print(json.dumps([opportunity_json(o) for o in result.opportunities], separators=(",", ":")))
        else:
            _print_scan(result, limit)
        return
    if sim:
        markets, snapshot, now = _sim_snapshot(settings, at)
    else:
        if symbols is None or tickers is None:
            raise fail("--symbols and --tickers are both needed", EXIT_USAGE)
        markets, snapshot, now = _file_snapshot(symbols, tickers, fees, books)
    result = scan_snapshot(markets, snapshot, now, settings, min_profit_bps)
    if as_json:
        print(json.dumps([opportunity_json(o) for o in result.opportunities], separators=(",", ":")))
        return
    _print_scan(result, limit)


def _file_snapshot(symbols: Path, tickers: Path, fees: Path | None, books: Path | None):
    from cryptoarb.venues.kucoin import files

    try:
        fee_rates = files.ticker_fees(tickers)
        if fees is not None:
            fee_rates.update(files.read_fees(fees))
        markets = files.read_symbols(symbols, fee_rates)
        now, snapshot = files.read_tickers(tickers)
        known = {m.symbol for m in markets}
        if not known & {b.symbol for b in snapshot}:
            raise files.ResponseFileError(f"{tickers}: no ticker matches a symbol in {symbols}")
        if books is not None:
            for path in sorted(books.glob("*.json")):
                if path.stem not in known:
                    raise files.ResponseFileError(f"{path}: {path.stem} is not a symbol in {symbols}")
                snapshot.append(files.read_book(path, path.stem, now))
    except files.ResponseFileError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    return markets, snapshot, now


async def _rest_scan(settings: Settings, url: str, min_profit_bps: float | None):
    """Top of book for every pair, then full books for the markets of the cycles that cleared it."""
    import time

    from cryptoarb.model import BookUpdate
    from cryptoarb.scan import scan_snapshot
    from cryptoarb.venues.base import VenueError
    from cryptoarb.venues.kucoin.rest import KucoinRest

    rest = KucoinRest(base_url=url, clock=time.time)
    try:
        markets = await rest.load_markets()
        now = time.time()
        snapshot = [BookUpdate(t.venue, t.symbol, ((t.bid, t.bid_size),) if t.bid else (),
                               ((t.ask, t.ask_size),) if t.ask else (), 0, t.ts_ms, now)
                    for t in await rest.fetch_tickers()]
        first = scan_snapshot(markets, snapshot, now, settings, min_profit_bps)
        wanted = sorted({leg.symbol for o in first.opportunities for leg in o.legs})[:MAX_SCAN_BOOKS]
        books = {symbol: await rest.fetch_book(symbol, 100) for symbol in wanted}
    except VenueError as exc:
        raise fail(f"{url}: {exc}", EXIT_RUNTIME) from None
    finally:
        await rest.close()
    if not books:
        return first
    now = time.time()
    deep = [u for u in snapshot if u.symbol not in books] + [
        BookUpdate(b.venue, b.symbol, b.bids, b.asks, b.sequence, b.exchange_ts_ms, now) for b in books.values()]
    return scan_snapshot(markets, deep, now, settings, min_profit_bps)


MAX_SCAN_BOOKS = 60
"""Level-2 snapshots a REST scan fetches (2 weight each in KuCoin's public pool of 2,000 per 30 s)."""


def _sim_snapshot(settings: Settings, at: float):
    from cryptoarb.venues.sim import SimMarket, build_universe

    universe = build_universe(settings.sim)
    market = SimMarket(universe, settings.sim)
    while market.time < at:
        market.step()
    return universe.markets, [market.book(symbol) for symbol in universe.symbols], market.time


def _print_scan(result: Any, limit: int) -> None:
    from cryptoarb.scan import text

    out = Console()
    table = Table(title=f"{len(result.opportunities)} opportunities: {result.markets} markets, {result.cycles} cycles, "
                        f"{result.candidates} above the threshold")
    for column in ("path", "legs", "bps", "input", "profit", "USD"):
        table.add_column(column, justify="right" if column in ("bps", "input", "profit", "USD") else "left")
    for o in result.opportunities[:limit]:
        legs = ", ".join(f"{leg.side.value} {text(leg.size)} {leg.symbol} @ {text(leg.limit_price)}" for leg in o.legs)
        table.add_row(" > ".join(o.path), legs, f"{o.net_return_bps:.1f}", f"{o.input:.6g}", f"{o.profit:.6g}",
                      f"{o.profit_usd:.4f}")
    out.print(table)
    if result.rejected:
        out.print("rejected: " + ", ".join(f"{k} {v}" for k, v in result.rejected.most_common()))


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on one line instead of TOML.")] = False,
) -> None:
    """Print the effective configuration (file + environment), every secret masked."""
    data = masked(settings_or_exit(config))
    if as_json:
        print(json.dumps(data, separators=(",", ":")))
        return
    _print_toml(data)


def _print_toml(data: dict[str, Any], prefix: str = "") -> None:
    """``data`` as TOML; a key left unset (None, which TOML cannot say) is shown as a comment."""
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key in tables:
            continue
        if value is None:
            print(f"# {_toml_key(key)}: not set")
        else:
            print(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        name = f"{prefix}{_toml_key(key)}"
        print(f"\n[{name}]")
        _print_toml(value, prefix=f"{name}.")


def _toml_key(key: Any) -> str:
    key = str(key)
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML wants DEL escaped too."""
    quoted = json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
    try:
        quoted.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (undecodable bytes from the environment): escape everything
        quoted = json.dumps(text).replace("\x7f", "\\u007f")
    return quoted


# Commands that live beside the code they drive, listed after the ones defined above.
app.command("run")(run_command)
app.command("watch")(watch_command)
app.add_typer(sim_server_app(), name="sim-server")
app.command("record")(record_command)
app.command("replay")(replay_command)
app.command("backtest")(backtest_command)
app.command("report")(report)
app.add_typer(db_app, name="db")


def main() -> None:
    """Console entry point: no traceback for runtime failures unless CRYPTOARB_DEBUG is set.

    A reader that goes away (``cryptoarb config show | head -1``) ends the process quietly with exit 1: the
    standard streams are flushed here, where the BrokenPipeError can be caught, then pointed at /dev/null so
    that Python's own flush at exit has nothing left to fail on (docs.python.org, "Note on SIGPIPE").
    """
    try:
        try:
            app()  # standalone: bad usage prints a message and exits 2
        except BrokenPipeError:
            raise
        except Exception as exc:
            if os.environ.get("CRYPTOARB_DEBUG"):
                raise
            message = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever the exception says
            for secret in environment_secrets():
                message = message.replace(secret, SECRET_MASK)
            err.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False, soft_wrap=True)
            sys.exit(EXIT_RUNTIME)
        finally:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
    except BrokenPipeError:
        _silence_standard_streams()
        sys.exit(EXIT_RUNTIME)


def _silence_standard_streams() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # no stream, or no file descriptor
            os.dup2(devnull, stream.fileno())


if __name__ == "__main__":
    main()
