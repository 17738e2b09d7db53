"""`cryptoarb scan --rest-url`: one REST snapshot of a KuCoin-protocol server (the simulator, in its own process)."""

import json
import os
import subprocess
import sys
from decimal import Decimal


def scan(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptoarb.cli", "scan", "--rest-url", url, *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_rest_snapshot_loads_every_market_and_sizes_what_it_finds(sim):
    table = scan(sim.url, "--min-profit-bps", "0")
    assert table.returncode == 0, table.stderr
    assert "1250 markets" in table.stdout
    result = scan(sim.url, "--min-profit-bps", "0", "--json")
    assert result.returncode == 0, result.stderr
    for opportunity in json.loads(result.stdout):
        assert opportunity["path"][0] == opportunity["path"][-1]
        assert Decimal(opportunity["profit"]) > 0


def test_unreachable_host_is_one_line_and_exit_1():
    result = scan("http://127.0.0.1:9")  # nothing listens on the discard port
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
