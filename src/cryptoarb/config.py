"""The one typed settings tree: ``cryptoarb.toml`` overridden by ``CRYPTOARB_*`` environment variables.

Secrets (API keys, webhook URLs, database passwords) are accepted only from the environment: a secret
written into the TOML file is refused, so a config file can be shared or committed safely.
Nested keys map to environment variables with ``__``: ``CRYPTOARB_RISK__MAX_NOTIONAL_USD=500``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

KNOWN_VENUES = ("kucoin", "coinbase", "bl3p")
"""Venues with native adapters (and simulated twins). Any ccxt exchange id is accepted too (``[ccxt.<id>]``)."""
SECRET_MASK = "********"


class ConfigError(Exception):
    """A configuration problem, worded as one line naming the key and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SimVenueSettings(_Section):
    """One venue of the simulated multi-venue world (``cryptoarb demo --venues``); a key left unset takes
    the venue kind's default (``venues.sim.world.PROFILES``). Premiums are the venue's log price offsets
    from the shared fair values: they drift apart and mean-revert."""

    kind: Literal["kucoin", "coinbase", "bl3p"] | None = Field(None, description="default: the venue's name")
    taker_fee: float | None = Field(None, ge=0, lt=0.05)
    premium_bps: float | None = Field(None, ge=0, description="stationary sd of the venue-wide premium")
    asset_premium_bps: float | None = Field(None, ge=0, description="stationary sd of per-asset premiums")
    reversion_s: float | None = Field(None, gt=0, description="mean-reversion time of the premiums")
    divergence_per_s: float | None = Field(None, ge=0, description="divergence episodes per second")
    divergence_bps: tuple[float, float] | None = None
    mispricing_per_s: float | None = Field(None, ge=0, description="lagging quotes injected per second")


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
    venues: dict[str, SimVenueSettings] = Field(
        default_factory=dict, description="per-venue overrides of the multi-venue world")


class DetectorSettings(_Section):
    max_legs: int = Field(3, ge=3, le=4)
    start_assets: list[str] = Field(default_factory=lambda: ["USDT"],
                                    description="assets a cycle may start from; empty = any")
    min_return_bps: float = Field(5.0, ge=0, description="top-of-book net return that triggers sizing")
    fee_discount: float = Field(0.0, ge=0, lt=1, description="fraction off every fee, e.g. 0.2 for KuCoin's "
                                                              "discount when fees are paid in KCS; applied on "
                                                              "top of the account's reported rates")


class RiskSettings(_Section):
    min_profit_usd: float = Field(0.01, ge=0)
    max_notional_usd: float = Field(2_000.0, gt=0)
    max_book_age_s: float = Field(2.0, gt=0)
    max_concurrent: int = Field(2, ge=1)
    cooldown_s: float = Field(5.0, ge=0, description="per-market pause after a failed opportunity")
    daily_loss_limit_usd: float = Field(100.0, gt=0)
    max_drawdown_usd: float = Field(
        250.0, gt=0, description="kill switch when realized PnL falls this far below its running peak")
    max_error_rate: float = Field(
        0.5, gt=0, le=1, description="kill switch when this share of recent order requests failed")
    error_window: int = Field(20, ge=1, description="order requests the error rate is measured over")
    error_min_requests: int = Field(6, ge=1, description="requests needed before the error rate can trip")
    stale_data_s: float = Field(
        30.0, ge=0, description="kill switch when a venue's market data stops this long (0: never)")
    inventory_skew_pct: float = Field(
        50.0, gt=0, description="alert when an asset's holding on a venue is this far from its target")
    inventory_min_usd: float = Field(25.0, ge=0, description="skews worth less than this are not alerted")


class PaperSettings(_Section):
    latency_ms: float = Field(50.0, ge=0, description="venue latency added to measured internal latency")
    internal_latency_ms: float = Field(
        0.0, ge=0, description="internal latency assumed in the fill schedule (measured latency is only "
        "reported, so a seed gives the same run on any machine)")
    add_measured_latency: bool = Field(
        False, description="schedule fills after the measured internal latency instead (not reproducible)")
    taken_liquidity_s: float = Field(
        5.0, ge=0, description="on a real venue's feed, keep what paper fills took at a price out of later "
        "fills there this long (the venue's next push still shows it; 0: only until that push)")


class ExecutionSettings(_Section):
    failed_leg_policy: Literal["unwind", "hold", "hedge"] = Field(
        "unwind", description="after a leg fails or fills partly: convert stranded assets back, hold them, or "
        "hedge (complete the leg within the slippage cap, then unwind what is left)")
    unwind_slippage_bps: float = Field(50.0, ge=0, description="worst price an unwind accepts, vs the best")
    leg_mode: Literal["sequential", "inventory"] = Field(
        "sequential", description="sequential: each leg spends what the previous delivered; inventory: all "
        "legs at once from the inventory held on each venue")
    order_timeout_s: float = Field(5.0, gt=0, description="live: wait this long for a venue's answer")
    retry_attempts: int = Field(4, ge=1, description="live: tries of one order (same client order id)")
    retry_backoff_s: float = Field(0.25, ge=0, description="live: first wait before a retry, doubled each time")
    resolve_timeout_s: float = Field(
        10.0, gt=0, description="live: how long an order may stay open before it is canceled, and how long an "
        "order whose request timed out is looked up before it is sent again")
    poll_interval_s: float = Field(
        0.5, gt=0, description="live: REST order lookups while no pushed update arrives")


class StorageSettings(_Section):
    backend: Literal["sqlite"] = "sqlite"
    sqlite_file: str = "cryptoarb.sqlite"
    batch_size: int = Field(500, ge=1)
    flush_interval_s: float = Field(0.5, gt=0)


class RunSettings(_Section):
    """``cryptoarb run`` / ``cryptoarb watch``: the live venue, the REST scanner, the watchlist and the local
    status endpoint (docs/run.md)."""

    venue: Literal["kucoin"] = Field("kucoin", description="the venue streamed and traded")
    rest_url: str = Field("https://api.kucoin.com", description="the venue's REST base URL (the websocket "
                          "endpoint comes from its bullet-public answer); point it at `cryptoarb sim-server`")
    scan_interval_s: float = Field(2.0, gt=0, description="REST all-tickers scan period")
    scan_mode: Literal["slices", "process"] = Field(
        "slices", description="evaluate every cycle on the loop in bounded slices, or in a worker process")
    scan_slice_cycles: int = Field(20_000, ge=100, description="cycles evaluated per slice between awaits")
    watchlist_size: int = Field(100, ge=1, le=3000, description="markets streamed in depth")
    watchlist_keep_rank: float = Field(
        1.5, ge=1, description="a watched market stays while it ranks within watchlist_size times this")
    watchlist_file: Path = Field(Path("data/watchlist.json"), description="written atomically after each scan")
    depth_mode: Literal["level2Depth5", "level2Depth50", "level2"] = Field(
        "level2Depth50", description="depth topic of watchlist markets (level2: increments + REST snapshots)")
    status_port: int = Field(8765, ge=0, le=65535, description="/status and /metrics on 127.0.0.1 (0: any free)")
    ws_read_chunk_bytes: int = Field(
        16_384, ge=0, description="read market-data sockets in slices of this size, one per loop turn (0: off)")
    restart_backoff_s: float = Field(0.5, gt=0, description="first wait before a failed task is restarted")
    restart_backoff_max_s: float = Field(30.0, gt=0)
    shutdown_timeout_s: float = Field(15.0, gt=0, description="wait this long for in-flight opportunities")
    gc_freeze: bool = Field(True, description="freeze start-up objects out of the garbage collector's scans")
    gc_young_interval_s: float = Field(
        0.05, ge=0, description="collect the young generation this often (bounds each pause; 0: automatic)")
    view_interval_s: float = Field(
        1.0, gt=0, description="refresh period of the live terminal view (each refresh renders on the loop)")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "asyncio", description="the event loop: asyncio's (from a market frame to its order on the wire it "
        "measured faster than uvloop, benchmarks/README.md) or uvloop")

    @field_validator("rest_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return check_http_url(url)


def check_http_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host (and a valid port, if any); else ValueError saying so."""
    return _check_url(url, ("http", "https"), "an http(s) URL with a host, e.g. https://api.kucoin.com")


def check_ws_url(url: str) -> str:
    """``url`` when it is a ws(s) URL with a host (and a valid port, if any); else ValueError saying so."""
    return _check_url(url, ("ws", "wss"), "a ws(s) URL with a host, e.g. wss://ws-feed.exchange.coinbase.com")


def _check_url(url: str, schemes: tuple[str, str], what: str) -> str:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in 0-65535
        valid = parts.scheme in schemes and bool(parts.hostname)
    except ValueError:  # that port, or an unbalanced [ipv6
        valid = False
    if not valid:
        raise ValueError(f"must be {what}")
    return url


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

    def enabled(self, category: str) -> bool:
        """Whether events of ``category`` (a ``notify.aggregate.Category``) are posted."""
        return bool(getattr(self, category))


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


class CcxtVenueSettings(_Section):
    """A venue served by the generic ccxt adapter (``venues.ccxt_venue``), keyed by ccxt exchange id.

    Credentials come only from the environment: ``CRYPTOARB_SECRETS__CCXT__<ID>__API_KEY``, ``__SECRET``,
    ``__PASSWORD`` (KuCoin's passphrase), ``__UID``."""

    api_url: str | None = Field(None, description="send every REST call here (e.g. a loopback simulator)")
    ws_url: str | None = Field(None, description="send every websocket here")
    options: dict[str, Any] = Field(default_factory=dict, description="merged into ccxt's options")
    streaming: Literal["auto", "ws", "rest"] = Field(
        "auto", description="auto: ccxt.pro where the exchange has it, else REST polling")
    symbols_per_connection: int = Field(100, ge=1, description="one ccxt.pro instance per this many symbols")
    watch_timeout_s: float = Field(30.0, gt=0, description="a watch silent this long is restarted")
    poll_interval_s: float | None = Field(None, gt=0, description="REST polling period; default: rate limit")
    depth: int = Field(20, ge=1, description="book levels per side")
    sandbox: bool = False

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, url: str | None) -> str | None:
        return None if url is None else check_http_url(url)

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, url: str | None) -> str | None:
        return None if url is None else check_ws_url(url)


class CcxtCredentials(_Section):
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = None
    uid: SecretStr | None = None


class Secrets(_Section):
    """Filled only from the environment; masked whenever shown."""

    kucoin_api_key: SecretStr | None = None
    kucoin_api_secret: SecretStr | None = None
    kucoin_api_passphrase: SecretStr | None = None
    discord_webhook_url: SecretStr | None = None
    discord_bot_token: SecretStr | None = None
    db_dsn: SecretStr | None = None
    ccxt: dict[str, CcxtCredentials] | None = Field(None, description="per ccxt exchange id")


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
    run: RunSettings = RunSettings()
    ccxt: dict[str, CcxtVenueSettings] = Field(default_factory=dict,
                                               description="venues served through ccxt, by exchange id")
    discord: DiscordSettings = DiscordSettings()
    secrets: Secrets = Secrets()

    @field_validator("venues")
    @classmethod
    def _known_venues(cls, venues: list[str]) -> list[str]:
        for venue in venues:
            if venue not in KNOWN_VENUES and not is_ccxt_exchange(venue):
                raise ValueError(f"unknown venue {venue!r} (known: {', '.join(KNOWN_VENUES)}, "
                                 "or any ccxt exchange id)")
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


def is_ccxt_exchange(name: str) -> bool:
    """Whether ccxt supports exchange ``name`` (imports ccxt, ~1 s, only when asked about such a name)."""
    import ccxt

    return name in ccxt.exchanges


def with_balances(settings: Settings, venue: str, balances: Iterable[Any]) -> Settings:
    """``settings`` with ``venue``'s inventory replaced by fetched balances (``model.Balance``: free
    amounts), so the engine's inventory edges follow what the account really holds."""
    held = {b.asset: float(b.free) for b in balances if b.free > 0}
    return settings.model_copy(update={"balances": {**settings.balances, venue: held}})


def live_gate(settings: Settings, cli_live: bool, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """What is missing before live orders may be sent, one line each; empty means live trading is on.

    Live orders need all three: the command line says ``--live``, the configuration says
    ``mode = "live"``, and every venue's API keys come from the environment (``CRYPTOARB_SECRETS__...``;
    the config file can never hold them). ``environ`` defaults to ``os.environ``: a key set any other way
    (e.g. passed in code) does not count.
    """
    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    missing: list[str] = []
    if not cli_live:
        missing.append("--live on the command line")
    if settings.mode != "live":
        missing.append(f'mode = "live" in the configuration (it is "{settings.mode}")')
    for venue in settings.venues:
        if venue == "kucoin":
            fields = {"kucoin_api_key": settings.secrets.kucoin_api_key,
                      "kucoin_api_secret": settings.secrets.kucoin_api_secret,
                      "kucoin_api_passphrase": settings.secrets.kucoin_api_passphrase}
            names = {f: f"CRYPTOARB_SECRETS__{f.upper()}" for f in fields}
        else:
            creds = (settings.secrets.ccxt or {}).get(venue)
            fields = {"api_key": creds.api_key if creds else None, "secret": creds.secret if creds else None}
            names = {f: f"CRYPTOARB_SECRETS__CCXT__{venue.upper()}__{f.upper()}" for f in fields}
        absent = [names[f] for f, value in fields.items()
                  if value is None or not value.get_secret_value() or not env.get(names[f])]
        if absent:
            missing.append(f"{venue} API keys in the environment: {', '.join(absent)}")
    return missing


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (or ``./cryptoarb.toml`` when it exists), apply env and ``overrides``.

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    data: dict[str, Any] = {}
    if path is None and Path("cryptoarb.toml").is_file():
        path = Path("cryptoarb.toml")
    if path is not None:
        try:
            raw = path.read_bytes()
            data = tomllib.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except OSError as exc:  # a directory, no permission, an I/O error
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"{path}: not a UTF-8 text file (invalid byte on line {line})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        if "secrets" in data:
            secrets = data["secrets"]
            keys = ", ".join(f"secrets.{k}" for k in sorted(secrets)) if isinstance(secrets, dict) else ""
            raise ConfigError(f"{keys or 'secrets'}: secrets are read only from the environment "
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
    except SettingsError as exc:  # an environment value of a list, dict or section that is not JSON
        raise ConfigError(_env_json_error(exc, os.environ)) from None


def _one_line(exc: ValidationError) -> str:
    """The first problem as ``key: what is wrong``; the offending value is quoted except under ``secrets``."""
    errors = exc.errors()
    first = errors[0]
    loc = first["loc"]
    key = ".".join(str(p) for p in loc) or "config"
    msg = first["msg"]
    secret = bool(loc) and loc[0] == "secrets"
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif secret:
        given = first.get("input")
        if isinstance(given, str | int | float) and len(str(given)) >= 4 and str(given) in msg:
            msg = msg.replace(str(given), SECRET_MASK)
    elif "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg = f"{msg} (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{key}: {msg}{more}"


_ENV_PREFIX = "CRYPTOARB_"
_ENV_DELIMITER = "__"


def _env_json_error(exc: SettingsError, environ: Mapping[str, str]) -> str:
    """One line for pydantic-settings' "error parsing value for field ... from source EnvSettingsSource":
    the variable whose value had to be JSON (a list, a dict or a whole section) and was not, with an example.
    A value under ``secrets`` is never quoted."""
    named = re.search(r'field "([^"]+)"', str(exc))
    field = named.group(1).lower() if named else None
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(_ENV_PREFIX):
            continue
        path = name[len(_ENV_PREFIX):].lower().split(_ENV_DELIMITER)
        if field is not None and path[0] != field:
            continue
        found = _json_field(path)
        if found is None:
            continue
        try:
            json.loads(value)
        except ValueError:
            return f"{'.'.join(path)} ({name}): {_json_hint(path, value, *found)}"
    key = field or "config"
    return f"{key}: an environment value (CRYPTOARB_{key.upper()}...) is not valid JSON"


def _json_field(path: list[str]) -> tuple[Any, Any] | None:
    """(annotation, default) of the settings field at ``path`` when its environment value must be JSON,
    as pydantic-settings decodes it (a list, tuple, set, dict or section that is not optional), else None."""
    annotation: Any = Settings
    default: Any = None
    for part in path:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None  # under a dict or a plain value: pydantic-settings lets a non-JSON value through
        fields = {k.lower(): f for k, f in annotation.model_fields.items()}
        if part not in fields:
            return None
        annotation = fields[part].annotation
        default = fields[part].get_default(call_default_factory=True)
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, default
    if origin in (list, tuple, set, frozenset, dict) or annotation in (list, tuple, set, frozenset, dict):
        return annotation, default
    return None


def _json_hint(path: list[str], value: str, annotation: Any, default: Any) -> str:
    env = _ENV_PREFIX + _ENV_DELIMITER.join(path).upper()
    if path[0] == "secrets":
        return (f"expected a JSON object (the value is not shown: it is a secret); or set one secret per "
                f"variable, e.g. {_ENV_PREFIX}SECRETS__KUCOIN_API_KEY")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        first, sample = next(iter(default.model_dump(mode="json").items()))
        return (f"expected a JSON object, e.g. {json.dumps({first: sample})}; or one variable per key, "
                f"e.g. {env}{_ENV_DELIMITER}{first.upper()}={json.dumps(sample)}")
    origin = get_origin(annotation) or annotation
    if origin is dict:
        sample = _first_items(default)
        return f"expected a JSON object, e.g. {json.dumps(sample)}" if sample else "expected a JSON object"
    items = [_scalar(part.strip()) for part in value.split(",") if part.strip()]
    return f"expected JSON, e.g. {json.dumps(items or list(default or []))}"


def _first_items(value: Any) -> Any:
    """``value`` cut down to its first entry at every level of nesting: a short example of its shape."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict) and value:
        key, inner = next(iter(value.items()))
        return {key: _first_items(inner)}
    return value


def _scalar(text: str) -> Any:
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return decoded if isinstance(decoded, int | float | bool) else text


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by a mask (or null)."""
    data = settings.model_dump(mode="json")
    data["secrets"] = {k: (SECRET_MASK if v is not None else None)
                       for k, v in settings.secrets.model_dump().items()}
    return data


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values the environment holds (``CRYPTOARB_SECRETS...``, the DSN), longest first: what an
    error or log line must not show. Secrets are read only from the environment, so these are all of them.
    Values under 4 characters are not worth mangling messages for."""
    found: set[str] = set()
    for name, value in (os.environ if environ is None else environ).items():
        upper = name.upper()
        if upper.startswith("CRYPTOARB_SECRETS") or upper == "CRYPTOARB_DB_DSN":
            found.add(value)
            with contextlib.suppress(ValueError):
                found.update(_strings(json.loads(value)))
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
