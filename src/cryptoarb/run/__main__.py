"""``python -m cryptoarb.run run|watch ...``: the two commands without the main ``cryptoarb`` app."""

from __future__ import annotations

import typer

from cryptoarb.run.cli import run_command, watch_command

app = typer.Typer(name="cryptoarb-run", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="cryptoarb run / watch.")
app.command("run")(run_command)
app.command("watch")(watch_command)

if __name__ == "__main__":
    app()
