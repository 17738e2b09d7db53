"""``cryptoarb run`` and ``cryptoarb watch``: typer command functions, mounted on the main app with::

    from cryptoarb.run.cli import run_command, watch_command
    app.command("run")(run_command)
    app.command("watch")(watch_command)

(``python -m cryptoarb.run run|watch ...`` runs them without the main app.) Exit codes: 0 after a clean
stop (signal or ``--duration``), 2 for bad usage or configuration (``--live`` refused included), 1 when
the engine could not run. Every failure is one line on stderr; ``CRYPTOARB_DEBUG=1`` adds tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cryptoarb.config import ConfigError, Settings, environment_secrets, load_settings
from cryptoarb.notify.console import quiet_on_broken_pipe

EXIT_RUNTIME = 1
EXIT_USAGE = 2

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML settings file (default: ./cryptoarb.toml when present).", dir_okay=False)]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the summary as one JSON object on the last line of stdout.")]
DurationOption = Annotated[float | None, typer.Option(
    min=0.1, help="Stop cleanly after this many seconds (default: run until SIGINT / SIGTERM).")]


class OneLineFormatter(logging.Formatter):
    """``error: message`` on one line; an attached exception becomes ``(Type: text)``, its traceback only
    with ``CRYPTOARB_DEBUG`` set."""

    def __init__(self, debug: bool, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.debug = debug
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = self._format(record)
        for secret in self.secrets:  # whatever a library logs (a request's signed headers, a DSN in an error)
            if secret in line:
                line = line.replace(secret, "********")
        return line

    def _format(self, record: logging.LogRecord) -> str:
        level = ("error" if record.levelno >= logging.ERROR else "warning" if record.levelno >= logging.WARNING
                 else "info" if record.levelno >= logging.INFO else "debug")
        text = record.getMessage()
        if not record.name.startswith("cryptoarb"):
            text = f"{record.name}: {text}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if self.debug:
                return f"{level}: {text}\n{self.formatException(record.exc_info)}"
            summary = f"{type(exc).__name__}: {exc}"
            if str(exc) not in text:
                text = f"{text} ({summary})"
        return f"{level}: {' '.join(text.split())}" if not self.debug else f"{level}: {text}"


class ConsoleHandler(logging.Handler):
    """Log records through the rich console, so they print above the live view instead of through it."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(Text(self.format(record)), soft_wrap=True, highlight=False)
        except Exception:  # pragma: no cover - never let logging take the engine down
            self.handleError(record)


QUIET_LIBRARIES = ("ccxt", "aiohttp", "asyncio", "websockets", "discord", "urllib3")
"""Kept at WARNING under ``CRYPTOARB_DEBUG``: ccxt logs every request with its signed key headers at DEBUG."""


def setup_logging(console: Console, secrets: Iterable[str] = ()) -> None:
    debug = bool(os.environ.get("CRYPTOARB_DEBUG"))
    handler = ConsoleHandler(console)
    handler.setFormatter(OneLineFormatter(debug, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("cryptoarb").setLevel(logging.DEBUG if debug else logging.INFO)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def _fail(console: Console, message: str, code: int) -> typer.Exit:
    console.print(Text(f"error: {message}"), soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _settings(console: Console, path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise _fail(console, str(exc), EXIT_USAGE) from None


def live_refusal(settings: Settings) -> str | None:
    """Why ``--live`` may not trade, or None when the live gate passes."""
    try:
        from cryptoarb.config import live_gate
    except ImportError:
        return ("--live refused: this build has no live gate (cryptoarb.config.live_gate), so nothing checks "
                "the mode, the --live flag and the API keys together")
    try:
        import cryptoarb.execution.live  # noqa: F401
    except ImportError:
        return "--live refused: this build has no live executor (cryptoarb/execution/live.py)"
    # run trades run.venue, whichever venues the demo's settings list: its keys are the ones that must be there
    missing = live_gate(settings.model_copy(update={"venues": [settings.run.venue]}), True)
    if missing:
        return "--live refused; missing: " + "; ".join(missing)
    return None


def _execute(command: str, config: Path | None, live: bool, as_json: bool, duration: float | None) -> None:
    from cryptoarb.run.runner import RunApp, RunError, run_app

    console = quiet_on_broken_pipe(Console(stderr=True))
    settings = _settings(console, config)
    if live and (refusal := live_refusal(settings)) is not None:
        raise _fail(console, refusal, EXIT_USAGE)
    setup_logging(console, environment_secrets())
    log = logging.getLogger("cryptoarb.run")
    if not live and command == "run" and settings.mode == "live":
        log.warning('mode = "live" in the configuration but --live not given: paper trading')
    if settings.run.venue not in settings.venues:
        log.warning("run.venue %s is not in venues %s; streaming %s", settings.run.venue, settings.venues,
                    settings.run.venue)
    app = RunApp(settings, command=command, live=live, console=console, live_view=True,  # type: ignore[arg-type]
                 duration_s=duration)
    try:
        summary = run_app(app)
    except RunError as exc:
        raise _fail(console, str(exc), EXIT_RUNTIME) from None
    except KeyboardInterrupt:  # a second Ctrl-C before the handlers were installed
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(summary.as_dict(), separators=(",", ":")), flush=True)
    else:
        _print_summary(summary)


def run_command(
    config: ConfigOption = None,
    live: Annotated[bool, typer.Option(
        "--live", help='Send real orders. Also needs mode = "live" in the configuration and the venue\'s API '
                       "keys in the environment; refused otherwise.")] = False,
    as_json: JsonOption = False,
    duration: DurationOption = None,
) -> None:
    """Stream a venue and trade it: paper by default, live with --live.

    One event loop (asyncio, or uvloop: run.event_loop) runs the REST scanner (every run.scan_interval_s), the market
    data (ticker:all for every pair, depth for the watchlist), detection, risk, the executor, storage,
    notifiers, the live view and a local status endpoint (127.0.0.1:run.status_port: /status, /metrics).
    The watchlist is written atomically to run.watchlist_file. SIGINT / SIGTERM stop cleanly: no new
    orders, in-flight ones resolved, storage flushed, summary printed.
    """
    _execute("run", config, live, as_json, duration)


def watch_command(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    duration: DurationOption = None,
) -> None:
    """Stream a venue and detect opportunities without trading, with the live terminal view.

    The same scanner, watchlist, market data, detection and sizing as `run`; every opportunity is shown
    and counted, none is executed, nothing is stored. The status endpoint runs as in `run`.
    """
    _execute("watch", config, False, as_json, duration)


def _print_summary(summary: Any) -> None:
    out = Console()
    title = f"cryptoarb {summary.command} ({summary.mode}) on {summary.venue}: {summary.uptime_s:.0f} s, " \
            f"stopped by {summary.reason}"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, str]] = [
        ("connected", "yes" if summary.connected else f"no ({summary.last_error or 'stopped first'})"),
        ("market-data messages", f"{summary.messages:,} ({summary.messages_per_s:,.0f}/s)"),
        ("book updates applied", f"{summary.updates:,}"),
        ("dropped / reconnects / resyncs", f"{summary.dropped} / {summary.reconnects} / {summary.resyncs}"),
        ("scans (errors)", f"{summary.scans} ({summary.scan_errors})"),
        ("watchlist", f"{summary.watchlist_symbols} markets in {summary.watchlist_file}"),
        ("opportunities detected", f"{summary.opportunities_detected:,}"),
        ("opportunities executed", f"{summary.opportunities_executed:,}"),
    ]
    rows += [(f"  rejected: {r}", f"{n:,}") for r, n in summary.rejected_by_reason.items()]
    rows += [
        ("orders (rejected)", f"{summary.orders:,} ({summary.order_rejects:,})"),
        ("trades (fills)", f"{summary.trades:,}"),
        ("realized PnL (USD, after fees)", f"{summary.realized_pnl_usd:,.4f}"),
        ("event-loop lag p50 / p99 / max", f"{summary.loop_lag_ms_p50:.2f} / {summary.loop_lag_ms_p99:.2f} / "
                                           f"{summary.loop_lag_ms_max:.1f} ms"),
        ("  start-up held the loop", f"{summary.loop_lag_ms_startup:.1f} ms (before any stream was read)"),
        ("task restarts", f"{summary.task_restarts}"),
    ]
    if summary.mode == "live":
        rows += [
            ("order state: pushed / REST lookup", f"{summary.resolved_by_push:,} / {summary.resolved_by_rest:,}"),
            ("  sent while the private stream was down", f"{summary.placed_rest:,}"),
            ("private pushes (reconnects)", f"{summary.private_updates:,} ({summary.private_reconnects})"),
        ]
    rows += [
        ("in flight at exit", f"{summary.unresolved}"),
        ("database", summary.db_path or "-"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    out.print(table)
