"""``cryptoarb sim-server``: one command, a mode per exchange protocol, KuCoin by default.

``cryptoarb sim-server [OPTIONS]`` runs the KuCoin simulator as before; ``cryptoarb sim-server coinbase
[OPTIONS]`` the Coinbase Exchange feed; ``cryptoarb sim-server bl3p [OPTIONS]`` BL3P's websockets.
Mount it with ``app.add_typer(sim_server_app(), name="sim-server")``. Importing this module is cheap: each
server loads when its mode runs.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

DEFAULT_MODE = "kucoin"


class _DefaultMode(TyperGroup):
    """A group whose first argument may be omitted: anything that is not a mode runs the default one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            raise typer.BadParameter(f"{args[0]!r} is not a mode: one of {', '.join(self.commands)}", ctx=ctx,
                                     param_hint="MODE")
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = [DEFAULT_MODE, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # kucoin first, as registered


def sim_server_app(**typer_kwargs: Any) -> typer.Typer:
    from cryptoarb.venues.bl3p.sim_cli import bl3p_sim_server
    from cryptoarb.venues.coinbase.sim_cli import coinbase_sim_server
    from cryptoarb.venues.kucoin.sim_cli import sim_server as kucoin_sim_server

    app = typer.Typer(cls=_DefaultMode, no_args_is_help=False, add_completion=False, **{
        "help": "Loopback exchange simulators speaking each exchange's real protocol, with faults on demand. "
                "The mode defaults to kucoin: `cryptoarb sim-server --port 18999` is the KuCoin one.",
        **typer_kwargs})
    app.command("kucoin")(kucoin_sim_server)
    app.command("coinbase")(coinbase_sim_server)
    app.command("bl3p")(bl3p_sim_server)
    return app
