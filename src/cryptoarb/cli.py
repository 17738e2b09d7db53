"""The ``cryptoarb`` command line. Exit codes: 0 success, 2 bad usage or bad config, 1 runtime failure."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cryptoarb import __version__
from cryptoarb.config import ConfigError, Settings, load_settings, masked

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
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


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
    duration: Annotated[float, typer.Option(min=0.5, help="Simulated seconds to run.")] = 60.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulated market (same seed, same run).")] = None,
    speed: Annotated[float, typer.Option(
        help="Simulated seconds per wall second; 0 runs as fast as the machine allows.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on the "
                                          "last line of stdout.")] = False,
    config: ConfigOption = None,
) -> None:
    """Run the whole pipeline offline on the simulated KuCoin-like exchange, paper trading.

    Markets stream, cycles are detected, sized on depth, risk-checked, paper-filled, stored in
    SQLite (data/demo-seed<N>.sqlite, recreated each run) and reported. Ctrl-C ends early and cleanly.
    """
    from cryptoarb.demo import run_demo

    settings = settings_or_exit(config, **{"sim.seed": seed})
    if settings.mode != "paper":
        raise fail("the demo only paper-trades; set mode = \"paper\"", EXIT_USAGE)
    summary = asyncio.run(run_demo(settings, duration, speed=speed, console=err,
                                   live_view=True))
    if as_json:
        print(json.dumps(summary.as_dict(), separators=(",", ":")))
    else:
        _print_summary(summary)
    if summary.interrupted:
        err.print("[yellow]interrupted: summary covers the part that ran[/]")


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
    table.add_row("event-loop lag p99", f"{summary.loop_lag_ms_p99:.2f} ms")
    table.add_row("database", summary.db_path)
    out.print(table)


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML-like text.")] = False,
) -> None:
    """Print the effective configuration (file + environment), every secret masked."""
    data = masked(settings_or_exit(config))
    if as_json:
        print(json.dumps(data, indent=2))
        return
    _print_toml(data)


def _print_toml(data: dict[str, Any], prefix: str = "") -> None:
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key not in tables:
            print(f"{key} = {json.dumps(value)}")
    for key, value in tables.items():
        name = f"{prefix}{key}"
        print(f"\n[{name}]")
        _print_toml(value, prefix=f"{name}.")


def main() -> None:
    """Console entry point: no traceback for runtime failures unless CRYPTOARB_DEBUG is set."""
    try:
        app()  # standalone: bad usage prints a message and exits 2
    except Exception as exc:
        if os.environ.get("CRYPTOARB_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(EXIT_RUNTIME)


if __name__ == "__main__":
    main()
