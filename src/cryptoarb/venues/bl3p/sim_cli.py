"""The BL3P mode of ``cryptoarb sim-server``: loopback BL3P websockets (``/1/{MARKET}/{orderbook|trades}``).

Mount it on the main typer app (see docs/venues.md), or run it alone with
``python -m cryptoarb.venues.bl3p.sim_cli --port 0``. Once listening it prints
``cryptoarb sim-server listening on ws://127.0.0.1:PORT`` and flushes stdout.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cryptoarb.config import SimSettings
from cryptoarb.venues.sim_command import LISTENING, SIM_PANEL, Depth, Host, LogLevel, Port, Speed, StepMs, run_server

__all__ = ["LISTENING", "bl3p_sim_server"]


def bl3p_sim_server(
    port: Port = 18997,
    host: Host = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the market (same seed, same prices).",
                                      rich_help_panel=SIM_PANEL)] = 7,
    speed: Speed = 1.0,
    step_ms: StepMs = 50,
    depth: Depth = 50,
    interval_ms: Annotated[int, typer.Option(min=1, help="How often changed books are pushed.")] = 100,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run loopback BL3P websockets (BTCEUR and LTCEUR, orderbook and trades) on simulated books.

    Admin API on the same port: GET /_sim/stats, POST /_sim/faults {"drop_connections": true, "silence":
    {"BTC-EUR": true}}, POST /_sim/step {"steps": N}, GET /_sim/book/{MARKET}.
    """
    from cryptoarb.venues.bl3p.sim_server import Bl3pSimConfig, serve

    config = Bl3pSimConfig(host=host, port=port, speed=speed, interval_s=interval_ms / 1000,
                           sim=SimSettings(seed=seed, step_ms=step_ms, depth_levels=depth))
    run_server(serve, config, log_level)


def main() -> None:
    typer.run(bl3p_sim_server)


if __name__ == "__main__":
    main()
