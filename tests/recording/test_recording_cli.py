"""``record``, ``replay`` and ``backtest`` as a user runs them, mounted the way the main app mounts them."""

from __future__ import annotations

import gzip
import json
import signal
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cryptoarb.recording import Recording
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
    assert summary["file_bytes"] == rec.stat().st_size < summary["bytes_out"]  # compressed on disk
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
    # the recorder's own engine resolved what was in flight at the end as the backtest does: the same run
    assert (summary["opportunities_detected"], summary["opportunities_executed"], summary["trades"]) == (
        result["opportunities"], result["executed"], result["trades"])

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


def test_a_stopped_recording_ends_cleanly_with_its_end_marker(config: Path, tmp_path: Path, signal_when) -> None:
    rec = tmp_path / "stopped.jsonl.gz"
    code, out, err = signal_when(
        [sys.executable, "-m", "cryptoarb.cli", "record", "--config", str(config), "--duration", "600", "--speed",
         "1", "--out", str(rec), "--json"],
        lambda: rec.exists() and rec.stat().st_size >= 4096, what="the header and some batches written",
        sig=signal.SIGTERM, cwd=tmp_path, wait_s=60)
    assert code == 0, err[-2000:]
    summary = last_json(out)
    assert summary["interrupted"] and 0 < summary["span_s"] < 600 and "interrupted" in err
    recording = Recording(rec)
    assert sum(len(updates) for _, updates in recording.batches()) == summary["updates"]
    assert recording.complete is True  # its end marker is there: nothing was cut short


def test_damage_inside_a_recording_is_named_not_taken_for_a_cut(config: Path, tmp_path: Path) -> None:
    rec = tmp_path / "whole.jsonl.gz"
    assert run("record", "--config", str(config), "--duration", "2", "--speed", "0", "--out", str(rec))[0] == 0
    lines = gzip.decompress(rec.read_bytes()).splitlines(keepends=True)
    middle = len(lines) // 2
    cases = {
        "garbage.jsonl": [*lines[:middle], b"\x00\x17 not json\n", *lines[middle:]],
        "short-level.jsonl": [*lines[:middle], lines[middle].replace(b'"b":[[', b'"b":[[1.0],[', 1),
                              *lines[middle + 1:]],
    }
    assert cases["short-level.jsonl"][middle] != lines[middle]
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(b"".join(content))
        code, _, err = run("backtest", str(path), "--config", str(config), "--no-charts")
        assert code == 2 and f"line {middle + 1} is damaged" in err, (name, err)

    cut = tmp_path / "cut.jsonl"  # the last line half written: a recorder killed mid-line, not damage
    cut.write_bytes(b"".join(lines[:middle]) + lines[middle][: len(lines[middle]) // 2])
    code, out, err = run("replay", str(cut), "--config", str(config), "--speed", "0", "--no-view", "--json")
    assert code == 0, err
    assert last_json(out)["complete"] is False
