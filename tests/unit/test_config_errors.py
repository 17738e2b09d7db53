"""Configuration problems as one line naming the key: secrets never quoted, environment values that must be
JSON, files that cannot be read, the REST URL of `run`."""

import json
from pathlib import Path

import pytest

from cryptoarb.config import ConfigError, RunSettings, Settings, load_settings

SECRET = "SECRETSECRET123"


@pytest.fixture(autouse=True)
def _no_local_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # load_settings(None) reads ./cryptoarb.toml when there is one


def error_of(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("CRYPTOARB_SECRETS__CCXT__BINANCE", SECRET, "secrets.ccxt.binance: "),
    ("CRYPTOARB_SECRETS__CCXT", SECRET, "secrets.ccxt: "),
    ("CRYPTOARB_SECRETS", json.dumps({"kucoin_api_key": [SECRET]}), "secrets.kucoin_api_key: "),
    ("CRYPTOARB_SECRETS", '{"ccxt": {"binance": {"api_key": 12345678}}}', "secrets.ccxt.binance.api_key: "),
    ("CRYPTOARB_SECRETS", SECRET, "secrets (CRYPTOARB_SECRETS): expected a JSON object"),
    ("CRYPTOARB_SECRETS", "{" + SECRET, "secrets (CRYPTOARB_SECRETS): expected a JSON object"),
])
def test_a_bad_secret_is_named_but_never_quoted(monkeypatch, variable, value, key):
    monkeypatch.setenv(variable, value)
    message = error_of()
    assert message.startswith(key)
    assert SECRET not in message and "12345678" not in message
    assert "got" not in message


def test_a_bad_value_outside_secrets_is_still_quoted(monkeypatch):
    monkeypatch.setenv("CRYPTOARB_RISK__MAX_NOTIONAL_USD", "lots")
    assert error_of() == "risk.max_notional_usd: Input should be a valid number, unable to parse string as a " \
                         "number (got 'lots')"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("CRYPTOARB_VENUES", "kucoin", 'venues (CRYPTOARB_VENUES): expected JSON, e.g. ["kucoin"]'),
    ("CRYPTOARB_VENUES", "kucoin,coinbase", 'venues (CRYPTOARB_VENUES): expected JSON, e.g. ["kucoin", "coinbase"]'),
    ("CRYPTOARB_DETECTOR__START_ASSETS", "USDT",
     'detector.start_assets (CRYPTOARB_DETECTOR__START_ASSETS): expected JSON, e.g. ["USDT"]'),
    ("CRYPTOARB_SIM__MISPRICING_BPS", "15,80",
     "sim.mispricing_bps (CRYPTOARB_SIM__MISPRICING_BPS): expected JSON, e.g. [15, 80]"),
    ("CRYPTOARB_BALANCES", "abc",
     'balances (CRYPTOARB_BALANCES): expected a JSON object, e.g. {"kucoin": {"USDT": 10000.0}}'),
    ("CRYPTOARB_DETECTOR", "x",
     'detector (CRYPTOARB_DETECTOR): expected a JSON object, e.g. {"max_legs": 3}; or one variable per key, '
     "e.g. CRYPTOARB_DETECTOR__MAX_LEGS=3"),
    ("CRYPTOARB_SECRETS", "x",
     "secrets (CRYPTOARB_SECRETS): expected a JSON object (the value is not shown: it is a secret); or set one "
     "secret per variable, e.g. CRYPTOARB_SECRETS__KUCOIN_API_KEY"),
])
def test_an_environment_value_that_must_be_json_names_its_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    assert error_of() == expected


def test_the_variable_at_fault_is_found_among_good_ones(monkeypatch):
    monkeypatch.setenv("CRYPTOARB_DETECTOR__MAX_LEGS", "4")
    monkeypatch.setenv("CRYPTOARB_DETECTOR__START_ASSETS", '["USDT"]')
    monkeypatch.setenv("CRYPTOARB_VENUES", "bl3p")
    assert error_of().startswith("venues (CRYPTOARB_VENUES): ")


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b'mode = "paper"\n\xfa\xfb\x00\x81 = 1\n')
    assert error_of(path) == f"{path}: not a UTF-8 text file (invalid byte on line 2)"


def test_a_config_file_that_cannot_be_read_is_a_config_error(tmp_path, monkeypatch):
    assert error_of(tmp_path) == f"config file {tmp_path} cannot be read: Is a directory"
    path = tmp_path / "locked.toml"
    path.write_text('mode = "paper"\n')

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert error_of(path) == f"config file {path} cannot be read: Permission denied"


@pytest.mark.parametrize(("toml", "expected"), [
    ('secrets = "x"\n', "secrets: secrets are read only from the environment"),
    ("[secrets]\n", "secrets: secrets are read only from the environment"),
    ("[secrets]\nkucoin_api_key = 'a'\ndb_dsn = 'b'\n", "secrets.db_dsn, secrets.kucoin_api_key: secrets are read"),
])
def test_secrets_in_the_file_are_named_once(tmp_path, toml, expected):
    path = tmp_path / "cryptoarb.toml"
    path.write_text(toml)
    message = error_of(path)
    assert message.startswith(expected)
    assert "secrets.secrets" not in message


@pytest.mark.parametrize("url", ["notaurl", "api.kucoin.com", "ftp://api.kucoin.com", "https://", "http://:80",
                                 "http://host:99999", "http://host:port", "http://[::1"])
def test_run_rest_url_must_be_http_with_a_host(tmp_path, monkeypatch, url):
    path = tmp_path / "cryptoarb.toml"
    path.write_text(f'[run]\nrest_url = "{url}"\n')
    assert error_of(path).startswith("run.rest_url: Value error, must be an http(s) URL with a host")
    monkeypatch.setenv("CRYPTOARB_RUN__REST_URL", url)
    assert error_of(None).startswith("run.rest_url: ")


@pytest.mark.parametrize("url", ["https://api.kucoin.com", "http://127.0.0.1:18999", "http://127.0.0.1:18999/",
                                 "http://[::1]:8080/base", "HTTPS://API.KUCOIN.COM"])
def test_run_rest_url_accepts_http_urls(url):
    assert RunSettings(rest_url=url).rest_url == url


@pytest.mark.parametrize(("key", "url", "expected"), [
    ("api_url", "127.0.0.1:18999", "must be an http(s) URL with a host"),
    ("api_url", "ws://127.0.0.1:18999", "must be an http(s) URL with a host"),
    ("ws_url", "https://127.0.0.1:18999", "must be a ws(s) URL with a host"),
    ("ws_url", "wss://host:port", "must be a ws(s) URL with a host"),
])
def test_a_ccxt_venues_urls_are_checked_where_they_are_set(tmp_path, key, url, expected):
    # a bad URL used to pass the config and fail later, inside ccxt, with an error that did not name the setting
    path = tmp_path / "cryptoarb.toml"
    path.write_text(f'[ccxt.binance]\n{key} = "{url}"\n')
    assert error_of(path).startswith(f"ccxt.binance.{key}: Value error, {expected}")


def test_a_ccxt_venues_urls_may_point_at_loopback():
    settings = Settings(ccxt={"binance": {"api_url": "http://127.0.0.1:18999", "ws_url": "ws://127.0.0.1:18999/ws"}})
    assert settings.ccxt["binance"].api_url == "http://127.0.0.1:18999"
