"""What every ``cryptoarb sim-server`` mode's command shares: the options every simulator takes, and running
a server until SIGINT or SIGTERM with the line a parent process waits for.

Cheap to import (no aiohttp, no numpy), like the commands that use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from cryptoarb.stopsignals import on_stop_signals

LISTENING = "cryptoarb sim-server listening on "
"""Printed, then the server's URL, once it accepts connections (stdout, flushed)."""
SIM_PANEL = "Simulated market"

Port = Annotated[int, typer.Option(help="TCP port; 0 picks a free one.", min=0, max=65535)]
Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Speed = Annotated[float, typer.Option(min=0, help="Simulated seconds per wall second; 0 freezes the market "
                                                  "(step it with POST /_sim/step).", rich_help_panel=SIM_PANEL)]
StepMs = Annotated[int, typer.Option(min=1, help="Market step.", rich_help_panel=SIM_PANEL)]
Depth = Annotated[int, typer.Option(min=20, max=200, help="Book levels per side.", rich_help_panel=SIM_PANEL)]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)} (any case), not {value!r}")
    return value.upper()


LogLevel = Annotated[str, typer.Option(help="Python log level: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
                                       callback=_log_level)]

C = TypeVar("C")
Serve = Callable[[C, Callable[[str], None]], Awaitable[None]]


def run_server(serve: Serve[C], config: C, log_level: str) -> None:
    """Log at ``log_level`` and run ``serve(config, on_listening)`` until SIGINT or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_until_signalled(serve, config))


def _announce(url: str) -> None:
    print(f"{LISTENING}{url}", flush=True)


async def _until_signalled(serve: Serve[C], config: C) -> None:
    main = asyncio.current_task()
    assert main is not None
    with on_stop_signals(main.cancel), contextlib.suppress(asyncio.CancelledError):
        await serve(config, _announce)
