"""The Coinbase mode of ``cryptoarb sim-server``: a loopback Coinbase Exchange websocket feed.

Mount it on the main typer app (see docs/venues.md), or run it alone with
``python -m cryptoarb.venues.coinbase.sim_cli --port 0``. Once listening it prints one line,
``cryptoarb sim-server listening on ws://127.0.0.1:PORT``, and flushes stdout, so a parent process can wait
for it. Importing this module is cheap: the server (aiohttp, numpy) loads when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cryptoarb.config import SimSettings
from cryptoarb.venues.sim_command import LISTENING, SIM_PANEL, Depth, Host, LogLevel, Port, Speed, StepMs, run_server

__all__ = ["LISTENING", "coinbase_sim_server"]
_API = "Coinbase feed"


def coinbase_sim_server(
    port: Port = 18998,
    host: Host = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the market (same seed, same products and prices).",
                                      rich_help_panel=SIM_PANEL)] = 7,
    speed: Speed = 1.0,
    step_ms: StepMs = 50,
    depth: Depth = 50,
    batch_ms: Annotated[int, typer.Option(min=1, help="level2_batch period.", rich_help_panel=_API)] = 50,
    heartbeat_s: Annotated[float, typer.Option(min=0.05, help="Heartbeat period per product.",
                                               rich_help_panel=_API)] = 1.0,
    subscribe_timeout_s: Annotated[float, typer.Option(min=0.1, help="Close a socket that has not subscribed "
                                                                     "by then.", rich_help_panel=_API)] = 5.0,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run a loopback Coinbase Exchange websocket feed (ticker, level2_batch, heartbeat) on simulated books.

    Admin API on the same port: GET /_sim/stats, POST /_sim/faults {"drop_connections": true, "skip":
    {"BTC-USD": 1}}, POST /_sim/step {"steps": N}, GET /_sim/book/{product}.
    """
    from cryptoarb.venues.coinbase.sim_server import CoinbaseSimConfig, serve

    config = CoinbaseSimConfig(host=host, port=port, speed=speed,
                               sim=SimSettings(seed=seed, step_ms=step_ms, depth_levels=depth),
                               batch_interval_s=batch_ms / 1000, heartbeat_interval_s=heartbeat_s,
                               subscribe_timeout_s=subscribe_timeout_s)
    run_server(serve, config, log_level)


def main() -> None:
    typer.run(coinbase_sim_server)


if __name__ == "__main__":
    main()
