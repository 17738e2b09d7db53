"""Settings of the KuCoin simulator server, with KuCoin's own limits as defaults (reference §A)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cryptoarb.config import SimSettings
from cryptoarb.venues.kucoin.signing import Credentials
from cryptoarb.venues.kucoin.sim_faults import Faults

DEFAULT_API_KEY = "sim-key"
DEFAULT_API_SECRET = "sim-secret"
DEFAULT_API_PASSPHRASE = "sim-passphrase"
DEFAULT_BALANCES: Mapping[str, Decimal] = {
    "USDT": Decimal(100_000), "USDC": Decimal(50_000), "DAI": Decimal(50_000), "BTC": Decimal(2),
    "ETH": Decimal(40), "KCS": Decimal(10_000), "TRX": Decimal(500_000),
}


@dataclass(frozen=True, slots=True)
class WsLimits:
    topics_per_message: int = 100
    topics_per_connection: int = 300
    client_messages: int = 100
    client_window_s: float = 10.0
    ping_interval_ms: int = 18_000
    ping_timeout_ms: int = 10_000
    token_ttl_s: float = 24 * 3600.0
    slow_client_bytes: int = 64 * 1024 * 1024  # a socket this far behind is cut off


@dataclass(frozen=True, slots=True)
class RestQuotas:
    """Request-weight quotas per 30 s pool (VIP0): Public per IP, Spot and Management per API key."""

    public: int = 2000
    spot: int = 4000
    management: int = 2000
    window_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SimServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    sim: SimSettings = field(default_factory=lambda: SimSettings(depth_levels=50))
    speed: float = 1.0
    """Simulated seconds per wall second; 0 freezes the market (deterministic tests)."""
    credentials: Credentials = field(
        default_factory=lambda: Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_API_PASSPHRASE))
    hf: bool = False
    """Answer ``/api/v1/hf/accounts/opened`` with true and keep funds in ``trade_hf`` accounts."""
    balances: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_BALANCES))
    fee_discount: Decimal = Decimal(0)
    """Account discount on the pairs' base fees, as ``/api/v1/trade-fees`` reports them."""
    ticker_hz: float = 10.0
    """``/market/ticker`` pushes per second per symbol (KuCoin: every 100 ms when changed)."""
    ticker_always: bool = False
    """Push every symbol at ``ticker_hz`` even when unchanged (load tests: 1,250 pairs x 10 Hz)."""
    depth_hz: float = 10.0
    level2_prime: int = 6
    """No-op deltas pushed for a symbol when a socket subscribes its ``/market/level2``, so a client
    that waits for cached deltas before fetching the snapshot (ccxt waits for 6) syncs even on a quiet
    pair. 0 is KuCoin's behaviour."""
    all_tickers_ttl_s: float = 2.0
    """``/api/v1/market/allTickers`` is a snapshot refreshed this often, as on KuCoin."""
    ws: WsLimits = field(default_factory=WsLimits)
    quotas: RestQuotas = field(default_factory=RestQuotas)
    faults: Faults = field(default_factory=Faults)
