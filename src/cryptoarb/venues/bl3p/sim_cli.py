"""The BL3P mode of ``cryptoarb sim-server``: loopback BL3P websockets (``/1/{MARKET}/{orderbook|trades}``).

Mount it on the main typer app (see docs/venues.md), or run it alone with
``python -m cryptoarb.venues.bl3p.sim_cli --port 0``. Once listening it prints
``cryptoarb sim-server listening on ws://127.0.0.1:PORT`` and flushes stdout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from cryptoarb.config import SimSettings
from cryptoarb.venues.coinbase.sim_cli import LISTENING, _run

__all__ = ["LISTENING", "bl3p_sim_server"]
_SIM = "Simulated market"


def bl3p_sim_server(
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.", min=0, max=65535)] = 18997,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the market (same seed, same prices).",
                                      rich_help_panel=_SIM)] = 7,
    speed: Annotated[float, typer.Option(min=0, help="Simulated seconds per wall second; 0 freezes the market "
                                                    "(step it with POST /_sim/step).", rich_help_panel=_SIM)] = 1.0,
    step_ms: Annotated[int, typer.Option(min=1, help="Market step.", rich_help_panel=_SIM)] = 50,
    depth: Annotated[int, typer.Option(min=20, max=200, help="Book levels per side.", rich_help_panel=_SIM)] = 50,
    interval_ms: Annotated[int, typer.Option(min=1, help="How often changed books are pushed.")] = 100,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "WARNING",
) -> None:
    """Run loopback BL3P websockets (BTCEUR and LTCEUR, orderbook and trades) on simulated books.

    Admin API on the same port: GET /_sim/stats, POST /_sim/faults {"drop_connections": true, "silence":
    {"BTC-EUR": true}}, POST /_sim/step {"steps": N}, GET /_sim/book/{MARKET}.
    """
    from cryptoarb.venues.bl3p.sim_server import Bl3pSimConfig, serve

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Bl3pSimConfig(host=host, port=port, speed=speed, interval_s=interval_ms / 1000,
                           sim=SimSettings(seed=seed, step_ms=step_ms, depth_levels=depth))
    asyncio.run(_run(serve, config))


def main() -> None:
    typer.run(bl3p_sim_server)


if __name__ == "__main__":
    main()
