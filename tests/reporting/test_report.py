"""``cryptoarb report`` on a database the demo wrote: tables, JSON summary and PNG charts."""

from __future__ import annotations

import io
import json
import shutil
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
        fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert rep.detected == detected and rep.executed + rep.missed == executions
    assert rep.fills == fills > 0  # the demo summary's trades
    assert rep.executed == with_fills and rep.captured + rep.partial == rep.executed
    assert rep.capture_rate == pytest.approx(with_fills / detected)
    assert rep.realized_usd == pytest.approx(realized)
    assert rep.modes == ["paper"]
    for reason, n in reasons.items():
        assert rep.rejects[reason] == n
    assert sum(n for r, n in rep.rejects.items() if r.startswith("order: ")) == no_liquidity
    # paper: the first orders land at detection + 50 ms on the venue's clock, each later leg (or unwind) 50 ms
    # after the answer it waited for: a three-leg cycle is done 100 ms after its first order, 150 with an unwind
    assert rep.latency_ms["detect_to_send"]["max"] == pytest.approx(50.0)
    assert rep.latency_ms["send_to_done"]["p50"] == pytest.approx(100.0)
    assert rep.latency_ms["send_to_done"]["max"] <= 200.0


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


def test_report_errors_are_one_line(tmp_path, monkeypatch):
    missing = tmp_path / "nope.sqlite"
    result = CliRunner().invoke(app(), ["report", "--db", str(missing)])
    # a missing input file is bad usage (exit 2), as for replay, backtest and scan
    assert result.exit_code == 2 and result.stderr.strip() == f"error: no database at {missing}"
    with pytest.raises(FileNotFoundError, match="cryptoarb demo"):
        default_db(tmp_path, tmp_path / "cryptoarb.sqlite")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYPTOARB_DATA_DIR", str(tmp_path / "data"))  # no database, no demo one
    result = CliRunner().invoke(app(), ["report"])
    assert result.exit_code == 2 and "cryptoarb demo" in result.stderr
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    result = CliRunner().invoke(app(), ["report", "--db", str(empty)])
    assert result.exit_code == 1 and "not a cryptoarb database" in result.output


def test_report_on_a_file_that_is_not_sqlite_names_the_file(tmp_path):
    path = tmp_path / "notdb.sqlite"
    path.write_bytes(b"this is not a database, " * 10)
    result = CliRunner().invoke(app(), ["report", "--db", str(path)])
    assert result.exit_code == 1 and result.stderr.strip() == f"error: {path}: file is not a database"
    assert path.read_bytes() == b"this is not a database, " * 10 and sorted(tmp_path.iterdir()) == [path]


def _wal_copy(demo_db: Path, directory: Path, name: str = "demo.sqlite") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / name
    shutil.copyfile(demo_db, db)
    assert db.read_bytes()[18:20] == b"\x02\x02"  # WAL mode, as the demo and every run write it
    return db


def test_report_leaves_the_directory_as_it_found_it(demo_db, tmp_path):
    db = _wal_copy(demo_db, tmp_path / "data")
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    result = CliRunner().invoke(app(), ["report", "--db", str(db), "--json", "--no-charts"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["detected"] > 0
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before  # no -wal, no -shm, no change


def test_report_reads_paths_that_uris_would_misread(demo_db, tmp_path):
    db = _wal_copy(demo_db, tmp_path / "a dir #1", "demo ?mode=rw #2 %41.sqlite")
    rep = load_report(db)
    assert rep.detected == load_report(demo_db).detected > 0 and rep.db == str(db)
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]


def test_report_beside_a_live_writer(demo_db, tmp_path):
    """The report reads what a writer has committed, leaves the writer's -wal/-shm alone while it is
    open, and the writer carries on; when it closes, SQLite removes them."""
    db = _wal_copy(demo_db, tmp_path / "live")
    detected = load_report(db).detected
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        columns = [r[1] for r in writer.execute("PRAGMA table_info(opportunities)")]

        def add(suffix: str) -> None:
            select = ", ".join(f"id || '{suffix}'" if c == "id" else c for c in columns)
            writer.execute(f"INSERT INTO opportunities ({', '.join(columns)}) SELECT {select} FROM opportunities "
                           "ORDER BY id LIMIT 1")

        add("-a")  # committed, in the writer's WAL only
        wal = db.with_name(db.name + "-wal")
        assert wal.stat().st_size > 0
        assert load_report(db).detected == detected + 1
        assert wal.exists() and db.with_name(db.name + "-shm").exists()
        add("-b")
        assert load_report(db).detected == detected + 2
    finally:
        writer.close()
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]
    assert load_report(db).detected == detected + 2


def test_build_report_defaults_the_chart_directory_beside_the_database(demo_db):
    rep = build_report(demo_db)
    assert set(rep.charts) == set(CHARTS)
    assert Path(rep.charts["pnl"]).parent == demo_db.with_name(f"{demo_db.stem}-report")


def test_reject_codes():
    assert _code("below_min_funds: funds 0.5 < 1 USDT") == "below_min_funds"
    assert _code("no liquidity at the limit price") == "no liquidity at the limit price"
    assert _code("size 0.001 below minimum 0.01") == "size 0.001 below minimum 0.01"
    assert _code("") == ""
