"""``cryptoarb run`` / ``watch`` as a user runs them: real processes against the KuCoin simulator (its own
process), the status endpoint, the watchlist file, the database, SIGTERM; and against the real KuCoin URL
with no network."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rich.console import Console
from run_helpers import command_argv
from run_helpers import parse_prometheus as parse

from cryptoarb.config import RunSettings, Settings
from cryptoarb.run.runner import RunApp
from cryptoarb.run.scanner import Ranking
from cryptoarb.run.watchlist import read_watchlist
from cryptoarb.venues.kucoin.codec import FAST_SCAN

pytestmark = pytest.mark.slow

STATUS_LINE = re.compile(r"status on (http://127\.0\.0\.1:\d+)")


class Proc:
    """A command in a subprocess whose stderr lines are collected as they come (for waiting on them)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOARB_")}
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_line(self, pattern: re.Pattern[str] | str, timeout: float, after: int = 0) -> tuple[int, re.Match[str]]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for i in range(after, len(self.lines)):
                    if m := regex.search(self.lines[i]):
                        return i, m
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {regex.pattern!r} within {timeout}s:\n"
                                         + "\n".join(self.lines[-30:]))
                self.changed.wait(remaining)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        stdout, _ = self.proc.communicate(timeout=timeout)
        self._reader.join(timeout=10)
        return self.proc.returncode, stdout, "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


async def wait_status(url: str, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    """Poll /status until ``predicate`` holds (each poll is a real request: no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    doc: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            async with http.get(url + "/status") as resp:
                doc = await resp.json()
            if predicate(doc):
                return doc
            await asyncio.sleep(0.2)
    raise AssertionError(f"status never satisfied the condition; last: {json.dumps(doc)[:1500]}")


def write_config(tmp_path: Path, **run: Any) -> Path:
    lines = ["[run]"] + [f"{k} = {json.dumps(v)}" for k, v in run.items()]
    path = tmp_path / "cryptoarb.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_run_paper_against_the_simulator_then_sigterm(sim: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, rest_url=sim.url, status_port=0, watchlist_size=30, scan_interval_s=1.0)
    proc = Proc([*command_argv("run"), "--config", str(config), "--json"], tmp_path)
    try:
        _, m = proc.wait_line(STATUS_LINE, 60)
        url = m.group(1)
        doc = await wait_status(url, lambda d: d["state"] == "running" and d["scanner"].get("scans", 0) >= 2
                                and d["watchlist"]["depth_streamed"] > 0
                                and d["venues"]["kucoin"]["state"] == "live"
                                and d["market_data"]["messages"] > 5000, 90)
        # /status: venue and connections, books, loop lag, opportunities, PnL, risk
        kucoin = doc["venues"]["kucoin"]
        assert kucoin["markets"] == 1250
        assert {c["kind"] for c in kucoin["websocket"]["connections"]} == {"tickers", "depth"}
        assert kucoin["websocket"]["reads"]["sliced_connections"] >= 2
        assert doc["books"]["total"] == 1250 and doc["books"]["tradeable"] > 1000
        assert doc["market_data"]["frame_scanner"] is FAST_SCAN  # the C scanner reads the hot frames where built
        assert doc["loop_lag_ms"]["samples"] > 0 and doc["loop_lag_ms"]["p99"] >= doc["loop_lag_ms"]["p50"]
        assert {"detected", "executed", "rejected_by_reason"} <= set(doc["opportunities"])
        assert {"realized_usd", "trades"} <= set(doc["pnl"])
        assert doc["risk"]["killed"] is False and "limits" in doc["risk"]
        assert doc["mode"] == "paper" and doc["storage"]["path"] == "data/cryptoarb.sqlite"
        # /metrics
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
            families = parse(await resp.text())
        for name in ("messages_per_second", "book_age_seconds", "book_resyncs_total", "ws_reconnects_total",
                     "loop_lag_seconds", "opportunities_total", "orders_total", "order_rejects_total",
                     "rest_ratelimit_remaining", "ws_client_messages_headroom", "messages_dropped_total"):
            assert f"cryptoarb_{name}" in families, name
        assert families["cryptoarb_up"] == [({}, 1.0)]
        assert families["cryptoarb_messages_total"][0][1] > 5000
        # the watchlist file
        wl = read_watchlist(tmp_path / "data" / "watchlist.json")
        assert wl.venue == "kucoin" and 25 <= len(wl.symbols) <= 30
        ids = {c.id for c in wl.cycles}
        assert all(wl.by_symbol[s] and set(wl.by_symbol[s]) <= ids for s in wl.symbols)
        assert abs(wl.generated_at - time.time()) < 30
        assert not list((tmp_path / "data").glob(".watchlist.json.*"))
        code, stdout, stderr = proc.stop(signal.SIGTERM)
    finally:
        proc.kill()
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "Traceback" not in stdout
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["reason"] == "signal" and summary["connected"] and summary["unresolved"] == 0
    assert summary["dropped"] == 0 and summary["scans"] >= 2 and summary["messages"] > 5000
    with sqlite3.connect(tmp_path / "data" / "cryptoarb.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        executions = db.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
        opportunities = db.execute("SELECT COUNT(DISTINCT id) FROM opportunities").fetchone()[0]
        balances = db.execute("SELECT COUNT(*) FROM balances").fetchone()[0]
    assert fills == summary["trades"]  # flushed: every fill of the run is in the database
    assert executions <= summary["opportunities_detected"] == opportunities
    assert balances > 0  # the starting and final inventory


async def test_watch_detects_without_trading(sim: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, rest_url=sim.url, status_port=0, watchlist_size=20, scan_interval_s=1.0)
    done = subprocess.run([*command_argv("watch"), "--config", str(config), "--json", "--duration", "6"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("CRYPTOARB_")})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["command"] == "watch" and summary["mode"] == "watch" and summary["reason"] == "duration"
    assert summary["connected"] and summary["messages"] > 1000 and summary["scans"] >= 2
    assert summary["opportunities_executed"] == 0 and summary["orders"] == 0 and summary["trades"] == 0
    assert summary["rejected_by_reason"].get("paused", 0) == summary["opportunities_detected"]
    assert summary["db_path"] is None and not (tmp_path / "data" / "cryptoarb.sqlite").exists()
    assert read_watchlist(tmp_path / "data" / "watchlist.json").symbols
    assert "Traceback" not in done.stderr


def _kucoin_resolves() -> bool:
    try:
        socket.getaddrinfo("api.kucoin.com", 443)
    except OSError:
        return False
    return True


@pytest.mark.skipif(_kucoin_resolves(), reason="this machine can reach api.kucoin.com: the test needs no network")
async def test_no_network_to_kucoin_one_line_error_and_backoff(tmp_path: Path) -> None:
    """The default configuration points at https://api.kucoin.com; this machine has no route to it."""
    config = write_config(tmp_path, status_port=0)
    started = time.monotonic()
    proc = Proc([*command_argv("run"), "--config", str(config), "--json"], tmp_path)
    try:
        _, m = proc.wait_line(STATUS_LINE, 60)
        line = re.compile(r"^error: kucoin: cannot reach api\.kucoin\.com: .+; retrying in (\d+\.\d) s$")
        first, m1 = proc.wait_line(line, 20)
        assert time.monotonic() - started < 20  # within seconds (interpreter start included)
        _, m2 = proc.wait_line(line, 30, after=first + 1)  # it retries, waiting longer each time
        assert float(m2.group(1)) > float(m1.group(1))
        doc = await wait_status(m.group(1), lambda d: d["state"] == "connecting", 10)
        assert doc["venues"]["kucoin"]["state"] == "unreachable"
        assert "api.kucoin.com" in doc["venues"]["kucoin"]["rest"]["last_error"]
        code, stdout, stderr = proc.stop(signal.SIGTERM)
    finally:
        proc.kill()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout
    failures = [ln for ln in stderr.splitlines() if "cannot reach" in ln]
    assert all(line.match(ln) for ln in failures) and len(failures) >= 2
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["connected"] is False and "api.kucoin.com" in summary["last_error"]


class FlakyEvaluator:
    """Raises on its first scan (a bug, not a venue failure), then ranks nothing."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    async def evaluate(self, raw: bytes) -> Ranking:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("evaluator bug")
        return Ranking([], 0, 0, 0)

    async def close(self) -> None:
        return None


async def test_a_failed_task_is_restarted_and_reported(sim: Any, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", run=RunSettings(
        rest_url=sim.url, status_port=0, watchlist_file=tmp_path / "wl.json", scan_interval_s=0.2,
        restart_backoff_s=0.05))
    flaky = FlakyEvaluator()
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    app = RunApp(settings, command="watch", console=console, live_view=False, install_signals=False,
                 evaluator_factory=lambda cycles, rs: flaky)
    task = asyncio.create_task(app.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (app.scanner is not None and app.scanner.stats.scans >= 2):
            assert loop.time() < deadline and not task.done(), app.status()["tasks"]
            await asyncio.sleep(0.05)
        state = app.supervisor.tasks["scanner"]
        assert state.restarts == 1 and state.failures == 1 and state.state == "running"
        assert "evaluator bug" in app.last_error
        assert app.orders.events["Notice"] >= 1  # reported through the notifiers
        assert app.status()["tasks"]["scanner"]["restarts"] == 1
    finally:
        app.request_stop("test")
        summary = await asyncio.wait_for(task, 60)
        console.file.close()
    assert summary.task_restarts >= 1 and summary.reason == "test"


class SlowStartEvaluator(FlakyEvaluator):
    """Holds the loop for ``block_s`` while the run starts up, as building a large engine does."""

    def __init__(self, block_s: float) -> None:
        super().__init__()
        self.block_s = block_s

    async def start(self) -> None:
        time.sleep(self.block_s)  # blocking on purpose: start-up work that holds the loop

    async def evaluate(self, raw: bytes) -> Ranking:
        return Ranking([], 0, 0, 0)


async def test_start_up_holding_the_loop_is_reported_apart_from_the_running_lag(sim: Any, tmp_path: Path) -> None:
    """The lag figures are what a socket reader waits once streams flow; a one-off start-up block, before any
    stream is read, is its own figure instead of the run's maximum for ever after."""
    settings = Settings(data_dir=tmp_path / "data", run=RunSettings(
        rest_url=sim.url, status_port=0, watchlist_file=tmp_path / "wl.json", scan_interval_s=0.2))
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    app = RunApp(settings, command="watch", console=console, live_view=False, install_signals=False,
                 evaluator_factory=lambda cycles, rs: SlowStartEvaluator(0.6))
    task = asyncio.create_task(app.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (app.state == "running" and app.lag.samples >= 30 and app.messages > 0):
            assert loop.time() < deadline and not task.done(), app.status()["tasks"]
            await asyncio.sleep(0.05)
        assert app.status()["loop_lag_ms"]["startup"] >= 550
    finally:
        app.request_stop("test")
        summary = await asyncio.wait_for(task, 60)
        console.file.close()
    assert summary.loop_lag_ms_startup >= 550
    assert summary.loop_lag_ms_max < 400, summary


async def test_live_run_passes_the_gate_and_trades_on_the_simulator(sim: Any, tmp_path: Path) -> None:
    """--live with mode = "live" and the keys in the environment: real orders, through REST, to the simulator
    (which checks KuCoin's signatures); every order the engine reports is in the database and the server."""
    config = tmp_path / "cryptoarb.toml"
    config.write_text(f'mode = "live"\n[run]\nrest_url = "{sim.url}"\nstatus_port = 0\nscan_interval_s = 1.0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOARB_")}
    env |= {"CRYPTOARB_SECRETS__KUCOIN_API_KEY": "sim-key", "CRYPTOARB_SECRETS__KUCOIN_API_SECRET": "sim-secret",
            "CRYPTOARB_SECRETS__KUCOIN_API_PASSPHRASE": "sim-passphrase"}
    done = subprocess.run([*command_argv("run"), "--config", str(config), "--live", "--json", "--duration", "12"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "live" and summary["connected"] and summary["unresolved"] == 0
    assert summary["orders"] > 0, "no opportunity in 12 s on the simulator"
    with sqlite3.connect(tmp_path / "data" / "cryptoarb.sqlite") as db:
        rows = db.execute("SELECT client_oid, status, reason FROM orders").fetchall()
        modes = {m for (m,) in db.execute("SELECT DISTINCT mode FROM executions")}
    final = [oid for oid, status, _ in rows if status != "new"]
    assert len(final) == summary["orders"] and modes == {"live"}
    async with aiohttp.ClientSession() as http, http.get(sim.url + "/_sim/orders") as resp:
        on_server = {o["clientOid"] for o in (await resp.json())}
    # every order booked was sent to the server, except those the executor refused to send (exchange rules)
    unsent = {oid: (status, reason) for oid, status, reason in rows if oid not in on_server}
    assert all(status == "rejected" and reason.endswith("(not sent)") for status, reason in unsent.values()), unsent
    assert len(unsent) < len(final)
