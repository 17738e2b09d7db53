"""The ``sim-server`` command: run the KuCoin simulator until interrupted.

Mount it on the main typer app with ``app.command("sim-server")(sim_server)``, or run it alone with
``python -m cryptoarb.venues.kucoin.sim_cli --port 0``. Once listening it prints one line,
``cryptoarb sim-server listening on http://127.0.0.1:PORT``, and flushes stdout, so a parent process
can wait for it. Importing this module is cheap: the server (aiohttp, numpy) loads when the command runs.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from cryptoarb.config import SimSettings
from cryptoarb.venues.kucoin.signing import Credentials
from cryptoarb.venues.kucoin.sim_config import (
    DEFAULT_API_KEY,
    DEFAULT_API_PASSPHRASE,
    DEFAULT_API_SECRET,
    DEFAULT_BALANCES,
    RestQuotas,
    SimServerConfig,
    WsLimits,
)
from cryptoarb.venues.kucoin.sim_faults import Faults
from cryptoarb.venues.sim_command import LISTENING, SIM_PANEL, Depth, Host, LogLevel, Port, StepMs, run_server

__all__ = ["LISTENING", "sim_server"]
_API = "KuCoin API and limits"
_FAULT = "Fault injection (also at runtime: POST /_sim/faults)"


def sim_server(
    port: Port = 18999,
    host: Host = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the market (same seed, same universe).",
                                      rich_help_panel=SIM_PANEL)] = 7,
    pairs: Annotated[int, typer.Option(min=10, help="Spot pairs.", rich_help_panel=SIM_PANEL)] = 1250,
    assets: Annotated[int | None, typer.Option(min=10, help="Base assets (default: about pairs/3).",
                                               rich_help_panel=SIM_PANEL)] = None,
    speed: Annotated[float, typer.Option(min=0, help="Simulated seconds per wall second; 0 freezes the "
                                                    "market.", rich_help_panel=SIM_PANEL)] = 1.0,
    step_ms: StepMs = 50,
    depth: Depth = 50,
    balance: Annotated[list[str] | None, typer.Option(
        help="Starting balance CUR=AMOUNT, repeatable (default: 100000 USDT, 2 BTC, 40 ETH, ...).",
        rich_help_panel=SIM_PANEL)] = None,
    api_key: Annotated[str, typer.Option(help="API key the server accepts.", rich_help_panel=_API)]
    = DEFAULT_API_KEY,
    api_secret: Annotated[str, typer.Option(help="API secret the server verifies signatures with.",
                                            rich_help_panel=_API)] = DEFAULT_API_SECRET,
    api_passphrase: Annotated[str, typer.Option(help="API passphrase the server accepts.",
                                                rich_help_panel=_API)] = DEFAULT_API_PASSPHRASE,
    hf: Annotated[bool, typer.Option("--hf/--classic", help="High-frequency (trade_hf) or classic account.",
                                     rich_help_panel=_API)] = False,
    fee_discount: Annotated[float, typer.Option(min=0, max=1, help="Account fee discount in trade-fees.",
                                                rich_help_panel=_API)] = 0.0,
    ticker_hz: Annotated[float, typer.Option(min=0.1, help="Ticker pushes per second per symbol.",
                                             rich_help_panel=_API)] = 10.0,
    ticker_always: Annotated[bool, typer.Option(help="Push every symbol's ticker each round, changed or not "
                                                     "(load tests).", rich_help_panel=_API)] = False,
    level2_prime: Annotated[int, typer.Option(min=0, help="No-op level2 deltas pushed on subscribe so "
                                                          "clients sync on quiet pairs (0 = KuCoin).",
                                              rich_help_panel=_API)] = 6,
    topics_per_message: Annotated[int, typer.Option(min=1, rich_help_panel=_API)] = 100,
    topics_per_connection: Annotated[int, typer.Option(min=1, rich_help_panel=_API)] = 300,
    client_messages: Annotated[int, typer.Option(min=1, help="Client messages per window.",
                                                 rich_help_panel=_API)] = 100,
    client_window: Annotated[float, typer.Option(min=0.1, help="Client message window, seconds.",
                                                 rich_help_panel=_API)] = 10.0,
    ping_interval_ms: Annotated[int, typer.Option(min=100, rich_help_panel=_API)] = 18_000,
    ping_timeout_ms: Annotated[int, typer.Option(min=100, rich_help_panel=_API)] = 10_000,
    token_ttl: Annotated[float, typer.Option(min=0.1, help="Token lifetime, seconds.",
                                             rich_help_panel=_API)] = 86_400.0,
    quota_public: Annotated[int, typer.Option(min=1, help="Public pool weight per window (per IP).",
                                              rich_help_panel=_API)] = 2000,
    quota_spot: Annotated[int, typer.Option(min=1, help="Spot pool weight per window.",
                                            rich_help_panel=_API)] = 4000,
    quota_management: Annotated[int, typer.Option(min=1, help="Management pool weight per window.",
                                                  rich_help_panel=_API)] = 2000,
    quota_window: Annotated[float, typer.Option(min=0.1, help="Rate-limit window, seconds.",
                                                rich_help_panel=_API)] = 30.0,
    fault_drop_every: Annotated[float, typer.Option(min=0, help="Abort every websocket every N s.",
                                                    rich_help_panel=_FAULT)] = 0.0,
    fault_ignore_pings: Annotated[bool, typer.Option(help="Never answer pings.",
                                                     rich_help_panel=_FAULT)] = False,
    fault_stall_depth: Annotated[bool, typer.Option(
        help="Stop pushing level2Depth5/50 and level2 deltas while pongs and ticker:all go on.",
        rich_help_panel=_FAULT)] = False,
    fault_expire_tokens_every: Annotated[float, typer.Option(min=0, help="Expire all tokens every N s.",
                                                             rich_help_panel=_FAULT)] = 0.0,
    fault_level2_gap_every: Annotated[int, typer.Option(min=0, help="Skip a sequence every Nth level2 delta.",
                                                        rich_help_panel=_FAULT)] = 0,
    fault_malformed_every: Annotated[float, typer.Option(min=0, help="Send a non-JSON frame every N s.",
                                                         rich_help_panel=_FAULT)] = 0.0,
    fault_429_burst: Annotated[int, typer.Option(min=0, help="Answer the next N REST requests with 429.",
                                                 rich_help_panel=_FAULT)] = 0,
    fault_reject_orders: Annotated[bool, typer.Option(help="Refuse every order (400200).",
                                                      rich_help_panel=_FAULT)] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run a loopback exchange speaking KuCoin's spot REST and websocket protocols, with faults on demand.

    Credentials default to sim-key / sim-secret / sim-passphrase. Point a client's REST URLs at the
    printed base URL; its websocket endpoint comes from POST /api/v1/bullet-public as on KuCoin.
    """
    from cryptoarb.venues.kucoin.sim_server import serve

    try:
        balances = dict(DEFAULT_BALANCES) | _parse_balances(balance or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--balance") from None
    config = SimServerConfig(
        host=host, port=port, speed=speed, hf=hf, balances=balances, fee_discount=Decimal(str(fee_discount)),
        sim=SimSettings(seed=seed, pairs=pairs, assets=assets or max(10, pairs // 3), step_ms=step_ms,
                        hot_pairs=min(60, pairs // 4), depth_levels=depth),
        credentials=Credentials(api_key, api_secret, api_passphrase),
        ticker_hz=ticker_hz, ticker_always=ticker_always, level2_prime=level2_prime,
        ws=WsLimits(topics_per_message=topics_per_message, topics_per_connection=topics_per_connection,
                    client_messages=client_messages, client_window_s=client_window,
                    ping_interval_ms=ping_interval_ms, ping_timeout_ms=ping_timeout_ms,
                    token_ttl_s=token_ttl),
        quotas=RestQuotas(public=quota_public, spot=quota_spot, management=quota_management,
                          window_s=quota_window),
        faults=Faults(drop_every_s=fault_drop_every, ignore_pings=fault_ignore_pings, stall_depth=fault_stall_depth,
                      expire_tokens_every_s=fault_expire_tokens_every,
                      level2_gap_every=fault_level2_gap_every,
                      malformed_every_s=fault_malformed_every, http_429_burst=fault_429_burst,
                      reject_orders=fault_reject_orders))
    run_server(serve, config, log_level)


def _parse_balances(items: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in items:
        currency, sep, amount = item.partition("=")
        try:
            if not sep or not currency:
                raise InvalidOperation
            out[currency.strip().upper()] = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"expected CUR=AMOUNT, got {item!r}") from None
    return out


def main() -> None:
    typer.run(sim_server)


if __name__ == "__main__":
    main()
