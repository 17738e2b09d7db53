"""The CLI as a user runs it: a real subprocess, real exit codes, real streams."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "cryptoarb.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=60)


def test_help_lists_commands_and_every_command_has_help():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("demo", "config"):
        assert command in result.stdout
        assert cli(command, "--help").returncode == 0
    assert cli("config", "show", "--help").returncode == 0


def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_concurrent = 0\n")
    result = cli("config", "show", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "risk.max_concurrent" in lines[0]


def test_bad_usage_exits_2():
    assert cli("demo", "--duration", "soon").returncode == 2
    assert cli("no-such-command").returncode == 2


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_config_show_never_prints_secrets(fmt, tmp_path):
    result = cli("config", "show", *fmt, cwd=tmp_path, env={
        "CRYPTOARB_SECRETS__KUCOIN_API_KEY": "key-AAAA-1234",
        "CRYPTOARB_SECRETS__DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/tok-BBBB"})
    assert result.returncode == 0
    assert "key-AAAA-1234" not in result.stdout + result.stderr
    assert "tok-BBBB" not in result.stdout + result.stderr
    assert "********" in result.stdout
