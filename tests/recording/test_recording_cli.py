"""``record``, ``replay`` and ``backtest`` as a user runs them, mounted the way the main app mounts them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cryptoarb.recording.cli import backtest_command, record_command, replay_command

app = typer.Typer()
app.command("record")(record_command)
app.command("replay")(replay_command)
app.command("backtest")(backtest_command)

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRYPTOARB_DATA_DIR", "CRYPTOARB_DB_DSN", "CRYPTOARB_SECRETS__DB_DSN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cryptoarb.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n\n[sim]\npairs = 120\nassets = 50\nhot_pairs = 20\n'
                    "seed = 4\n")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_record_replay_backtest(config: Path, tmp_path: Path) -> None:
    rec = tmp_path / "run.jsonl.gz"
    code, out, err = run("record", "--config", str(config), "--duration", "5", "--speed", "0",
                         "--out", str(rec), "--json")
    assert code == 0, err
    summary = last_json(out)
    assert summary["batches"] == 101 and summary["span_s"] == 5.0 and summary["destination"] == str(rec)
    assert len(out.strip().splitlines()) == 1  # the progress view is on stderr

    code, out, err = run("replay", str(rec), "--config", str(config), "--speed", "0", "--no-view", "--json")
    assert code == 0, err
    replayed = last_json(out)
    code, out, err = run("replay", str(rec), "--config", str(config), "--speed", "0")  # with the status view
    assert code == 0, err
    assert "opportunities executed" in out
    assert replayed["updates"] == summary["updates"] and replayed["complete"] is True
    assert replayed["db"] == str(tmp_path / "data" / "replay-run.sqlite")

    digests = []
    for _ in range(2):
        code, out, err = run("backtest", str(rec), "--config", str(config), "--json")
        assert code == 0, err
        result = last_json(out)
        digests.append(result["digest"])
        assert Path(result["charts"]["pnl"]).is_file() and Path(result["charts"]["spread"]).is_file()
    assert digests[0] == digests[1]
    assert result["opportunities"] == replayed["opportunities_detected"]

    code, out, _ = run("backtest", str(rec), "--config", str(config), "--no-charts")
    assert code == 0 and "digest" in out and digests[0] in out


def test_record_into_the_store(config: Path, tmp_path: Path) -> None:
    code, out, err = run("record", "--config", str(config), "--duration", "1", "--speed", "0", "--store",
                         "--snapshots", "--no-paper", "--json")
    assert code == 0, err
    summary = last_json(out)
    assert summary["destination"] == str(tmp_path / "data" / "cryptoarb.sqlite") and summary["dropped"] == 0
    assert "trades" not in summary  # --no-paper: nothing traded while recording


def test_usage_errors_exit_2(config: Path, tmp_path: Path) -> None:
    assert run("replay", str(tmp_path / "nope.jsonl.gz"), "--config", str(config))[0] == 2
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n")
    code, _, err = run("backtest", str(junk), "--config", str(config))
    assert code == 2 and "not a cryptoarb recording" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_notional_usd = -1\n")
    assert run("backtest", str(junk), "--config", str(bad))[0] == 2
    assert run("record", "--config", str(config), "--store", "--out", str(tmp_path / "x.jsonl.gz"))[0] == 2
    assert run("record", "--config", str(config), "--snapshots")[0] == 2
    assert run("replay", str(junk), "--schema", "s")[0] == 2


def test_help_texts() -> None:
    for command, words in (("record", "progress view"), ("replay", "same paper pipeline"),
                           ("backtest", "deterministically")):
        code, out, _ = run(command, "--help")
        assert code == 0 and words in " ".join(out.split()), command
