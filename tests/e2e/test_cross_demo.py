"""The three-venue demo as a user runs it: a real process, three simulated venues (KuCoin-, Coinbase- and
BL3P-like) whose prices drift apart and back, a real SQLite file. It must find and paper-execute
cross-exchange and mixed cycles, move each venue's inventory, and suggest a rebalance as a buffer drains."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

VENUES = "kucoin,coinbase,bl3p"
SEED = "3"
DETERMINISTIC = ("updates", "opportunities_detected", "opportunities_executed", "rejected_by_reason", "trades",
                 "realized_pnl_usd", "balances", "executed_by_kind", "detected_by_kind", "cycles_by_kind",
                 "notices_by_kind", "rebalance_suggestions", "inventory_low")
RUNNER = """
import asyncio, json, sys
from rich.console import Console
from cryptoarb.config import load_settings
from cryptoarb.demo import run_demo
seed, duration, venues = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split(",")
summary = asyncio.run(run_demo(load_settings(None, **{"sim.seed": seed}), duration, speed=0,
                               console=Console(stderr=True), live_view=True, venues=venues))
print(json.dumps(summary.as_dict(), separators=(",", ":")))
"""


def run(tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "CRYPTOARB_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_demo(tmp_path: Path, duration: str = "60") -> dict:
    return run(tmp_path, sys.executable, "-c", RUNNER, SEED, duration, VENUES)


def test_three_venue_demo_trades_across_venues_and_suggests_a_rebalance(tmp_path):
    summary = run_demo(tmp_path)
    assert summary["venues"] == ["kucoin", "coinbase", "bl3p"]
    assert summary["db_path"].endswith("demo-kucoin-coinbase-bl3p-seed3.sqlite")
    assert set(summary["cycles_by_kind"]) == {"triangular", "cross-exchange", "mixed"}
    executed = summary["executed_by_kind"]
    assert executed.get("cross-exchange", 0) >= 1 and executed.get("mixed", 0) >= 1
    assert sum(executed.values()) == summary["opportunities_executed"] > 0
    assert summary["trades"] > 0

    start, end = summary["inventory_start"], summary["balances"]
    assert set(start) == {"kucoin", "coinbase", "bl3p"}
    for venue in start:  # every venue's inventory moved
        assert any(end.get(venue, {}).get(a, 0.0) != amount for a, amount in start[venue].items()), venue
    low = summary["inventory_low"]
    assert min(f for assets in low.values() for f in assets.values()) < 0.5  # some buffer ran low ...
    assert summary["rebalance_suggestions"] and summary["notices_by_kind"].get("rebalance", 0) >= 1  # ... and
    assert summary["notices_by_kind"].get("inventory", 0) >= 1  # the engine said so and what to move
    assert any("move" in s or "buy" in s or "sell" in s for s in summary["rebalance_suggestions"])

    with sqlite3.connect(summary["db_path"]) as conn:
        legs = [json.loads(row[0]) for row in conn.execute(
            "SELECT o.legs FROM opportunities o JOIN executions e ON e.opportunity_id = o.id")]
        fills = conn.execute("SELECT venue, COUNT(*) FROM fills GROUP BY venue").fetchall()
        rows = conn.execute("SELECT venue, asset, free, at FROM balances ORDER BY at").fetchall()
    assert any(len({leg["venue"] for leg in plan}) >= 2 for plan in legs)  # cross-venue plans were sent
    assert {venue for venue, _ in fills} == {"kucoin", "coinbase", "bl3p"}  # and filled on every venue
    history: dict[tuple[str, str], list[str]] = defaultdict(list)
    for venue, asset, free, _ in rows:
        history[(venue, asset)].append(free)
    assert {v for v, _ in history} == {"kucoin", "coinbase", "bl3p"}
    for venue in ("kucoin", "coinbase", "bl3p"):  # the ledger's inventory over time, per venue
        assert any(len(set(seen)) > 1 for (v, _), seen in history.items() if v == venue), venue


def test_three_venue_demo_is_deterministic(tmp_path):
    first = run_demo(tmp_path, "20")
    second = run_demo(tmp_path, "20")
    assert {k: second[k] for k in DETERMINISTIC} == {k: first[k] for k in DETERMINISTIC}


def test_cli_demo_venues_option(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "cryptoarb.cli", "demo", "--help"], capture_output=True,
                               text=True, timeout=60).stdout
    if "--venues" not in help_text:
        pytest.skip("`cryptoarb demo --venues` is not wired into cli.py yet")
    summary = run(tmp_path, sys.executable, "-m", "cryptoarb.cli", "demo", "--json", "--duration", "20", "--seed",
                  SEED, "--speed", "0", "--venues", VENUES)
    assert summary["venues"] == ["kucoin", "coinbase", "bl3p"] and summary["opportunities_executed"] > 0
    direct = run_demo(tmp_path, "20")  # the command runs exactly what run_demo(venues=...) runs
    assert {k: summary[k] for k in DETERMINISTIC} == {k: direct[k] for k in DETERMINISTIC}
