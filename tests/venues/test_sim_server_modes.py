"""``cryptoarb sim-server`` modes: KuCoin by default, ``coinbase`` and ``bl3p`` by name."""

import typer
from typer.testing import CliRunner

from cryptoarb.venues.sim.servers import sim_server_app


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)
    app.add_typer(sim_server_app(), name="sim-server")
    return app


def test_modes_and_default():
    runner = CliRunner()
    listing = runner.invoke(cli(), ["sim-server", "--help"])
    assert listing.exit_code == 0 and all(m in listing.output for m in ("kucoin", "coinbase", "bl3p"))
    for args, marker in ((["sim-server", "coinbase", "--help"], "level2_batch"),
                         (["sim-server", "bl3p", "--help"], "BTCEUR"),
                         (["sim-server", "kucoin", "--help"], "KuCoin"),
                         (["sim-server", "--port", "1", "--help"], "KuCoin")):  # no mode: KuCoin's options
        result = runner.invoke(cli(), args)
        assert result.exit_code == 0, result.output
        assert marker in result.output
    bad = runner.invoke(cli(), ["sim-server", "coinbase", "--port", "-1"])
    assert bad.exit_code == 2


def test_an_unknown_mode_or_log_level_is_a_usage_error():
    runner = CliRunner()
    unknown = runner.invoke(cli(), ["sim-server", "nope"])
    assert unknown.exit_code == 2 and "'nope' is not a mode: one of kucoin, coinbase, bl3p" in unknown.output
    for mode in ("kucoin", "coinbase", "bl3p"):
        bad = runner.invoke(cli(), ["sim-server", mode, "--log-level", "BOGUS", "--port", "0"])
        assert bad.exit_code == 2 and "--log-level" in bad.output, (mode, bad.output)
