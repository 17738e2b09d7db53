"""The one typed settings tree: ``cryptoarb.toml`` overridden by ``CRYPTOARB_*`` environment variables.

Secrets (API keys, webhook URLs, database passwords) are accepted only from the environment: a secret
written into the TOML file is refused, so a config file can be shared or committed safely.
Nested keys map to environment variables with ``__``: ``CRYPTOARB_RISK__MAX_NOTIONAL_USD=500``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

KNOWN_VENUES = ("kucoin",)
SECRET_MASK = "********"


class ConfigError(Exception):
    """A configuration problem, worded as one line naming the key and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SimSettings(_Section):
    """The simulated exchange: a KuCoin-like universe, deterministic for a given seed."""

    seed: int = 7
    pairs: int = Field(1250, ge=10, description="number of spot pairs")
    assets: int = Field(420, ge=10, description="number of base assets")
    step_ms: int = Field(50, gt=0, description="market model time step")
    hot_pairs: int = Field(60, ge=0, description="pairs that update several times a second")
    mispricing_per_s: float = Field(4.0, ge=0, description="lagging quotes injected per second")
    mispricing_bps: tuple[float, float] = (15.0, 80.0)
    competitor_close_s: tuple[float, float] = (0.3, 3.0)
    refill_s: float = Field(1.5, gt=0, description="time for consumed liquidity to come back")
    depth_levels: int = Field(20, ge=20)


class DetectorSettings(_Section):
    max_legs: int = Field(3, ge=3, le=4)
    start_assets: list[str] = Field(default_factory=lambda: ["USDT"],
                                    description="assets a cycle may start from; empty = any")
    min_return_bps: float = Field(5.0, ge=0, description="top-of-book net return that triggers sizing")


class RiskSettings(_Section):
    min_profit_usd: float = Field(0.01, ge=0)
    max_notional_usd: float = Field(2_000.0, gt=0)
    max_book_age_s: float = Field(2.0, gt=0)
    max_concurrent: int = Field(2, ge=1)
    cooldown_s: float = Field(5.0, ge=0, description="per-market pause after a failed opportunity")
    daily_loss_limit_usd: float = Field(100.0, gt=0)


class PaperSettings(_Section):
    latency_ms: float = Field(50.0, ge=0, description="venue latency added to measured internal latency")


class ExecutionSettings(_Section):
    failed_leg_policy: Literal["unwind", "hold"] = Field(
        "unwind", description="after a leg fails or fills partly: convert stranded assets back, or hold them")
    unwind_slippage_bps: float = Field(50.0, ge=0, description="worst price an unwind accepts, vs the best")


class StorageSettings(_Section):
    backend: Literal["sqlite"] = "sqlite"
    sqlite_file: str = "cryptoarb.sqlite"
    batch_size: int = Field(500, ge=1)
    flush_interval_s: float = Field(0.5, gt=0)


class NotifySettings(_Section):
    console: bool = True
    status_interval_s: float = Field(5.0, gt=0, description="plain status line period without a terminal")


class DiscordEventSettings(_Section):
    """Which events are posted to Discord."""

    opportunity: bool = True
    rejection: bool = False
    trade: bool = True
    fill: bool = True
    failed_leg: bool = True
    risk: bool = True
    connection: bool = True
    error: bool = True
    daily_summary: bool = True
    other: bool = True


class DiscordSettings(_Section):
    """The webhook is on when CRYPTOARB_SECRETS__DISCORD_WEBHOOK_URL is set, the bot when the token is."""

    username: str = "cryptoarb"
    guild_id: int | None = None
    channel_id: int | None = None
    admin_user_ids: list[int] = Field(default_factory=list, description="may pause, resume, kill, see config")
    admin_role_id: int | None = None
    restrict_reads: bool = False
    reader_user_ids: list[int] = Field(default_factory=list)
    reader_role_id: int | None = None
    command_prefix: str = "!"
    prefix_commands: bool = False
    sync_commands: bool = True
    kill_confirm_s: float = Field(60.0, gt=0)
    daily_summary_hour_utc: int | None = Field(0, ge=0, le=23)
    aggregate_window_s: float = Field(10.0, ge=0)
    max_queue: int = Field(500, ge=1)
    max_attempts: int = Field(6, ge=1)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    request_timeout_s: float = Field(10.0, gt=0)
    close_timeout_s: float = Field(5.0, gt=0)
    events: DiscordEventSettings = DiscordEventSettings()


class Secrets(_Section):
    """Filled only from the environment; masked whenever shown."""

    kucoin_api_key: SecretStr | None = None
    kucoin_api_secret: SecretStr | None = None
    kucoin_api_passphrase: SecretStr | None = None
    discord_webhook_url: SecretStr | None = None
    discord_bot_token: SecretStr | None = None
    db_dsn: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOARB_", env_nested_delimiter="__", extra="forbid", validate_assignment=True)

    mode: Literal["paper", "live"] = "paper"
    venues: list[str] = Field(default_factory=lambda: ["kucoin"])
    data_dir: Path = Path("data")
    balances: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {"kucoin": {"USDT": 10_000.0, "BTC": 0.15, "ETH": 3.0, "KCS": 500.0}},
        description="paper inventory per venue and asset")
    sim: SimSettings = SimSettings()
    detector: DetectorSettings = DetectorSettings()
    risk: RiskSettings = RiskSettings()
    paper: PaperSettings = PaperSettings()
    execution: ExecutionSettings = ExecutionSettings()
    storage: StorageSettings = StorageSettings()
    notify: NotifySettings = NotifySettings()
    discord: DiscordSettings = DiscordSettings()
    secrets: Secrets = Secrets()

    @field_validator("venues")
    @classmethod
    def _known_venues(cls, venues: list[str]) -> list[str]:
        for venue in venues:
            if venue not in KNOWN_VENUES:
                raise ValueError(f"unknown venue {venue!r} (known: {', '.join(KNOWN_VENUES)})")
        if not venues:
            raise ValueError("at least one venue is needed")
        return venues

    @field_validator("balances")
    @classmethod
    def _non_negative_balances(cls, balances: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for venue, assets in balances.items():
            for asset, amount in assets.items():
                if amount < 0:
                    raise ValueError(f"{venue}.{asset} must be >= 0, got {amount}")
        return balances

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / self.storage.sqlite_file

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values (the TOML file, CLI flags) sit under the environment, which wins.
        return env_settings, init_settings


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (or ``./cryptoarb.toml`` when it exists), apply env and ``overrides``.

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    data: dict[str, Any] = {}
    if path is None and Path("cryptoarb.toml").is_file():
        path = Path("cryptoarb.toml")
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        if "secrets" in data:
            keys = ", ".join(sorted(data["secrets"])) if isinstance(data["secrets"], dict) else "secrets"
            raise ConfigError(f"secrets.{keys}: secrets are read only from the environment "
                              "(e.g. CRYPTOARB_SECRETS__KUCOIN_API_KEY), never from the config file")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "config"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg = f"{msg} (got {first['input']!r})"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{key}: {msg}{more}"


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by a mask (or null)."""
    data = settings.model_dump(mode="json")
    data["secrets"] = {k: (SECRET_MASK if v is not None else None)
                       for k, v in settings.secrets.model_dump().items()}
    return data
