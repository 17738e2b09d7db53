"""Error paths of the CLI as a user meets them: a real subprocess, real exit codes, one line on stderr."""

import json
import math
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer

from cryptoarb import cli as cli_module
from cryptoarb.config import load_settings, masked

ROOT = Path(__file__).resolve().parents[2]
SECRET = "SECRETSECRET123"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdout=subprocess.PIPE):
    full_env = {**os.environ, "COLUMNS": "40", **(env or {})}  # a narrow stderr: any wrapping would show
    return subprocess.run([sys.executable, "-m", "cryptoarb.cli", *args], text=True, env=full_env,
                          cwd=cwd or ROOT, timeout=120, stdout=stdout, stderr=subprocess.PIPE)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("variable", ["CRYPTOARB_SECRETS__CCXT__BINANCE", "CRYPTOARB_SECRETS__CCXT",
                                      "CRYPTOARB_SECRETS"])
def test_bad_secret_exits_2_without_showing_it(tmp_path, variable):
    result = cli("config", "show", env={variable: SECRET}, cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"error: {variable.removeprefix('CRYPTOARB_').lower().replace('__', '.')}")
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("CRYPTOARB_VENUES", "kucoin", 'error: venues (CRYPTOARB_VENUES): expected JSON, e.g. ["kucoin"]'),
    ("CRYPTOARB_DETECTOR__START_ASSETS", "USDT",
     'error: detector.start_assets (CRYPTOARB_DETECTOR__START_ASSETS): expected JSON, e.g. ["USDT"]'),
    ("CRYPTOARB_BALANCES", "abc", "error: balances (CRYPTOARB_BALANCES): expected a JSON object"),
    ("CRYPTOARB_SECRETS", "x", "error: secrets (CRYPTOARB_SECRETS): expected a JSON object"),
])
def test_environment_value_that_is_not_json_exits_2_with_one_line(tmp_path, variable, value, expected):
    result = cli("config", "show", env={variable: value}, cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(expected)


def test_config_file_that_is_not_utf8_exits_2_naming_it(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(bytes(range(128, 256)) * 2)
    result = cli("config", "show", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"error: {path}: not a UTF-8 text file (invalid byte on line 1)"


def test_config_value_that_looks_like_markup_exits_2(tmp_path):
    path = tmp_path / "cryptoarb.toml"
    path.write_text('venues = ["[/bold]"]\n')
    result = cli("config", "show", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown venue '[/bold]'" in one_line(result.stderr)


def test_config_show_json_is_one_compact_line(tmp_path):
    result = cli("config", "show", "--json", cwd=tmp_path, env={"CRYPTOARB_SECRETS__KUCOIN_API_KEY": SECRET})
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    shown = json.loads(result.stdout)
    assert shown["secrets"]["kucoin_api_key"] == "********" and SECRET not in result.stdout
    assert shown["risk"]["max_notional_usd"] == 2000.0


def without_none(data):
    if isinstance(data, dict):
        return {k: without_none(v) for k, v in data.items() if v is not None}
    return data


def test_config_show_text_is_toml(tmp_path, monkeypatch):
    env = {"CRYPTOARB_SECRETS__KUCOIN_API_KEY": SECRET, "CRYPTOARB_SIM__VENUES": '{"coinbase": {"taker_fee": 0.002}}',
           "CRYPTOARB_DISCORD__USERNAME": 'bot "quoted" \\ \x7f é'}
    result = cli("config", "show", cwd=tmp_path, env=env)
    assert result.returncode == 0
    assert "null" not in result.stdout and SECRET not in result.stdout
    assert "# guild_id: not set" in result.stdout
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert tomllib.loads(result.stdout) == without_none(masked(load_settings(None)))


def test_toml_values_that_json_would_get_wrong():
    assert cli_module._toml_value(math.inf) == "inf"
    assert cli_module._toml_value(-math.inf) == "-inf"
    assert cli_module._toml_value(math.nan) == "nan"
    assert cli_module._toml_key("a.b") == '"a.b"'


def test_run_rest_url_that_is_not_a_url_exits_2(tmp_path):
    result = cli("config", "show", env={"CRYPTOARB_RUN__REST_URL": "notaurl"}, cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("error: run.rest_url: Value error, must be an http(s) URL")


@pytest.mark.parametrize("speed", ["-1", "nan", "-inf"])
def test_demo_refuses_a_negative_or_nan_speed(tmp_path, speed):
    result = cli("demo", "--duration", "0.5", "--json", "--speed", speed, cwd=tmp_path,
                 env={"CRYPTOARB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2, result.stderr[-500:]
    assert "--speed" in result.stderr
    assert not (tmp_path / "data").exists()


def test_nan_check_behind_typers_range():
    assert cli_module._not_nan(0.0) == 0.0
    with pytest.raises(typer.BadParameter):
        cli_module._not_nan(math.nan)


def test_scan_books_directory_that_does_not_exist_exits_2_naming_it(tmp_path):
    result = cli("scan", "--symbols", "F", "--tickers", "F", "--books", "nodir", cwd=tmp_path)
    assert result.returncode == 2
    assert "nodir" in result.stderr and "does not exist" in result.stderr


def test_scan_rest_url_that_is_not_a_url_is_bad_usage(tmp_path):
    result = cli("scan", "--rest-url", "notaurl", cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("error: --rest-url notaurl: must be an http(s) URL with a host")


def test_scan_at_infinity_is_bad_usage(tmp_path):
    result = cli("scan", "--sim", "--at", "inf", cwd=tmp_path)  # would step the simulator forever
    assert result.returncode == 2
    assert "--at" in result.stderr and "finite" in result.stderr


def test_runtime_failure_is_one_line_on_a_narrow_stderr(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("sim-server", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("error: OSError: [Errno 98]") and "address already in use" in line


def test_catch_all_prints_one_line_without_markup_or_secrets(monkeypatch, capsys):
    monkeypatch.setenv("CRYPTOARB_SECRETS__KUCOIN_API_SECRET", SECRET)

    def boom():
        raise RuntimeError(f"first line\nsecond [/bold] line {SECRET} " + "x" * 200)

    monkeypatch.setattr(cli_module, "app", boom)
    with pytest.raises(SystemExit) as info:
        cli_module.main()
    assert info.value.code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: RuntimeError: first line second [/bold] line ******** xxx")
    assert SECRET not in line


def with_reader_gone(args: list[str], stream: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI with its stdout or stderr a pipe whose reader has already gone, buffered as in a shell."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["CRYPTOARB_DATA_DIR"] = str(cwd / "data")
    read, write = os.pipe()
    os.close(read)
    other = "stderr" if stream == "stdout" else "stdout"
    try:
        return subprocess.run([sys.executable, "-m", "cryptoarb.cli", *args], text=True, env=env, cwd=cwd,
                              timeout=120, **{stream: write, other: subprocess.PIPE})
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [["config", "show", "--json"], ["config", "show"],
                                  ["demo", "--duration", "1", "--speed", "0", "--json"]])
def test_stdout_reader_gone_ends_quietly_with_exit_1(tmp_path, args):
    result = with_reader_gone(args, "stdout", tmp_path)
    assert result.returncode == 1
    assert "BrokenPipeError" not in result.stderr and "Traceback" not in result.stderr
    if args[0] == "config":
        assert result.stderr == ""


@pytest.mark.parametrize("args", [["config", "show", "-c", "missing.toml"], ["sim-server", "--port", "BUSY"],
                                  ["demo", "--duration", "1", "--speed", "0"]])
def test_stderr_reader_gone_ends_quietly_with_exit_1(tmp_path, args):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = [str(busy.getsockname()[1]) if a == "BUSY" else a for a in args]
        result = with_reader_gone(args, "stderr", tmp_path)
    assert result.returncode == 1
    assert "BrokenPipeError" not in result.stdout and "Traceback" not in result.stdout
