"""``cryptoarb report`` on a database the demo wrote: tables, JSON summary and PNG charts."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cryptoarb.config import Settings
from cryptoarb.reporting import build_report, load_report, report
from cryptoarb.reporting.charts import CHARTS
from cryptoarb.reporting.report import _code, default_db

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    import asyncio

    from cryptoarb.demo import run_demo

    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data)
    quiet = Console(file=io.StringIO())
    summary = asyncio.run(run_demo(settings, 20.0, speed=0, console=quiet, live_view=False))
    return Path(summary.db_path)


def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command("report")(report)

    @cli.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the app into `report`
        pass

    return cli


def test_report_matches_the_database(demo_db):
    rep = load_report(demo_db)
    with sqlite3.connect(demo_db) as conn:
        detected = conn.execute("SELECT COUNT(*) FROM opportunities").fetchone()[0]
        executions = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
        with_fills = conn.execute("SELECT COUNT(DISTINCT opportunity_id) FROM fills").fetchone()[0]
        realized = conn.execute("SELECT SUM(realized_profit_usd) FROM executions").fetchone()[0]
        no_liquidity = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'canceled'").fetchone()[0]
        reasons = dict(conn.execute("SELECT reason, COUNT(*) FROM rejections GROUP BY reason").fetchall())
    assert rep.detected == detected and rep.executed + rep.missed == executions
    assert rep.executed == with_fills and rep.captured + rep.partial == rep.executed
    assert rep.capture_rate == pytest.approx(with_fills / detected)
    assert rep.realized_usd == pytest.approx(realized)
    assert rep.modes == ["paper"]
    for reason, n in reasons.items():
        assert rep.rejects[reason] == n
    assert sum(n for r, n in rep.rejects.items() if r.startswith("order: ")) == no_liquidity
    # paper fills land at detection + 50 ms on the venue's clock
    assert rep.latency_ms["detect_to_send"]["p50"] == pytest.approx(50.0)
    assert rep.latency_ms["send_to_done"]["max"] == pytest.approx(0.0)


def test_realized_pnl_is_explained_by_shortfall_slippage_and_fees(demo_db):
    rep = load_report(demo_db)
    assert rep.executions and rep.leg_slippage_bps
    # the plan's own prices value every execution to within a cent of the engine's marks
    for row in rep.executions:
        explained = row.expected_usd - row.shortfall_usd - row.slippage_usd - row.extra_fees_usd
        assert row.realized_usd == pytest.approx(explained, abs=0.01 + 0.01 * abs(row.expected_usd))
        if row.outcome == "missed":
            assert row.realized_usd == 0 and row.shortfall_usd == pytest.approx(row.expected_usd)
    total = rep.expected_executed_usd - rep.shortfall_usd - rep.slippage_usd - rep.extra_fees_usd + rep.mark_drift_usd
    assert total == pytest.approx(rep.realized_usd, abs=1e-6)


def test_report_command_prints_tables_and_writes_png_charts(demo_db, tmp_path):
    out = tmp_path / "charts"
    result = CliRunner().invoke(app(), ["report", "--db", str(demo_db), "--out", str(out)],
                                env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for title in ("capture rate", "Expected vs realized", "Slippage per leg", "Rejects by reason",
                  "Latency", "cooldown"):
        assert title in result.output
    for name in CHARTS:
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 5_000


def test_report_json_and_default_database(demo_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYPTOARB_DATA_DIR", str(demo_db.parent))
    result = CliRunner().invoke(app(), ["report", "--json", "--no-charts"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["db"] == str(demo_db)  # the configured database is absent: the newest demo one
    assert 0 < summary["capture_rate"] <= 1 and summary["detected"] > 0
    assert summary["leg_slippage_bps"]["n"] > 0 and summary["charts"] == {}


def test_report_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app(), ["report", "--db", str(tmp_path / "nope.sqlite")])
    assert result.exit_code == 1 and "no database" in result.output
    with pytest.raises(FileNotFoundError, match="cryptoarb demo"):
        default_db(tmp_path, tmp_path / "cryptoarb.sqlite")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    result = CliRunner().invoke(app(), ["report", "--db", str(empty)])
    assert result.exit_code == 1 and "not a cryptoarb database" in result.output


def test_build_report_defaults_the_chart_directory_beside_the_database(demo_db):
    rep = build_report(demo_db)
    assert set(rep.charts) == set(CHARTS)
    assert Path(rep.charts["pnl"]).parent == demo_db.with_name(f"{demo_db.stem}-report")


def test_reject_codes():
    assert _code("below_min_funds: funds 0.5 < 1 USDT") == "below_min_funds"
    assert _code("no liquidity at the limit price") == "no liquidity at the limit price"
    assert _code("size 0.001 below minimum 0.01") == "size 0.001 below minimum 0.01"
    assert _code("") == ""
