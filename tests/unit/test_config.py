from pathlib import Path

import pytest

from cryptoarb.config import SECRET_MASK, ConfigError, load_settings, masked

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cryptoarb.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("toml", "expected"), [
    ("[risk]\nmin_profit_usd = -1\n", "risk.min_profit_usd: Input should be greater than or equal to 0"),
    ("[risk]\nmax_notional_usd = 'lots'\n", "risk.max_notional_usd: Input should be a valid number"),
    ("[risk]\nmax_notionl_usd = 5\n", "risk.max_notionl_usd: unknown key"),
    ("turbo = true\n", "turbo: unknown key"),
    ("venues = ['kucoin', 'mtgox']\n", "venues: Value error, unknown venue 'mtgox'"),
    ("[detector]\nmax_legs = 7\n", "detector.max_legs: Input should be less than or equal to 4"),
    ("[balances.kucoin]\nUSDT = -5\n", "balances: Value error, kucoin.USDT must be >= 0"),
    ("[secrets]\nkucoin_api_key = 'abc'\n", "secrets.kucoin_api_key: secrets are read only from the environment"),
    ("mode = \n", "not valid TOML"),
])
def test_bad_values_give_one_line_naming_the_key(tmp_path, toml, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_environment_overrides_file(tmp_path, monkeypatch):
    path = write(tmp_path, "[risk]\nmax_notional_usd = 100\n")
    assert load_settings(path).risk.max_notional_usd == 100
    monkeypatch.setenv("CRYPTOARB_RISK__MAX_NOTIONAL_USD", "250")
    assert load_settings(path).risk.max_notional_usd == 250


def test_bad_environment_value_names_the_key(monkeypatch):
    monkeypatch.setenv("CRYPTOARB_RISK__COOLDOWN_S", "-3")
    with pytest.raises(ConfigError, match=r"^risk.cooldown_s: Input should be greater than or equal to 0"):
        load_settings(None)


def test_secrets_come_from_environment_and_are_masked(monkeypatch):
    monkeypatch.setenv("CRYPTOARB_SECRETS__KUCOIN_API_SECRET", "hunter2-very-secret")
    settings = load_settings(None)
    assert settings.secrets.kucoin_api_secret.get_secret_value() == "hunter2-very-secret"
    shown = masked(settings)
    assert shown["secrets"]["kucoin_api_secret"] == SECRET_MASK
    assert "hunter2" not in repr(shown) and "hunter2" not in repr(settings)


def test_example_file_is_valid_and_matches_defaults():
    from cryptoarb.config import Settings

    example = load_settings(ROOT / "cryptoarb.example.toml")
    assert example.model_dump() == Settings().model_dump()


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
