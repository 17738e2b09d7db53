"""The plain data the whole engine speaks: markets, book updates, cycles, plans, orders, fills, events.

Everything here is immutable and free of IO. Exchange rules (ticks, increments, minimums, fees) are
``Decimal`` because they decide what leaves the process; book levels are ``float`` because the hot
path prices them millions of times (plans are recomputed exactly in ``core.sizing``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

import msgspec


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


FeeCurrency = Literal["quote", "received"]
"""Where the taker fee is charged.

``quote`` (KuCoin): a buy pays ``cost * (1 + fee)`` in quote and receives the full base size; a sell
receives ``proceeds * (1 - fee)`` in quote. ``received`` (Binance-like): the fee is taken from
whatever the leg receives, so a buy receives ``size * (1 - fee)`` base.
"""


@dataclass(frozen=True, slots=True)
class Market:
    venue: str
    symbol: str
    base: str
    quote: str
    price_tick: Decimal
    size_increment: Decimal
    min_size: Decimal
    min_funds: Decimal
    taker_fee: Decimal
    maker_fee: Decimal
    fee_currency: FeeCurrency = "quote"
    enabled: bool = True

    @property
    def key(self) -> MarketKey:
        return (self.venue, self.symbol)


MarketKey = tuple[str, str]
"""(venue, symbol)"""

Level = tuple[float, float]
"""(price, size)"""

WireNumber = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
"""A price or size as a venue codec reads it: never negative, NaN or infinite. msgspec's ``strict=False``,
which turns decimal strings into floats, reads "nan" and "inf" too; a frame carrying one is malformed."""
WireLevel = tuple[WireNumber, WireNumber]
"""A :data:`Level` as a venue codec reads it."""


class BookUpdate(msgspec.Struct, frozen=True, gc=False):
    """A full book (``snapshot``) or a set of level changes (size 0 deletes) for one market.

    ``received_at`` is the engine clock's time when the frame arrived, in seconds; ``exchange_ts_ms``
    is the venue's own timestamp. ``sequence`` increases per market; for deltas ``sequence_start``
    must not skip past the book's current sequence + 1.

    A msgspec Struct rather than a dataclass: it is built once per websocket frame, and a frozen
    dataclass's ``__init__`` alone cost more than decoding the frame (benchmarks/ws_decode.py). It holds
    only strings, numbers and tuples, so it is kept out of the cycle collector (``gc=False``).
    """

    venue: str
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int
    exchange_ts_ms: int
    received_at: float
    snapshot: bool = True
    sequence_start: int | None = None


@dataclass(frozen=True, slots=True)
class Ticker:
    venue: str
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Leg:
    """One conversion of a cycle: SELL base for quote at the bids, or BUY base with quote at the asks."""

    market: Market
    side: Side

    @property
    def venue(self) -> str:
        return self.market.venue

    @property
    def asset_in(self) -> str:
        return self.market.base if self.side is Side.SELL else self.market.quote

    @property
    def asset_out(self) -> str:
        return self.market.quote if self.side is Side.SELL else self.market.base


@dataclass(frozen=True, slots=True)
class Cycle:
    """Legs whose outputs feed the next leg's input and whose last output is the first input.

    Consecutive legs on different venues are joined by an inventory edge: the same asset held on both
    venues, so no transfer happens during the trade.
    """

    id: int
    legs: tuple[Leg, ...]
    # Worked out once, when the cycle is indexed: every opportunity reads them on the order path, where
    # working them out again (generators over the legs) cost ~50 µs after a quiet spell (benchmarks/README.md)
    path: tuple[str, ...] = field(init=False, repr=False, compare=False)
    venues: tuple[str, ...] = field(init=False, repr=False, compare=False)
    kind: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        legs = self.legs
        venues = tuple(dict.fromkeys(leg.venue for leg in legs))
        kind = "triangular" if len(venues) == 1 and len(legs) == 3 else (
            "multi-leg" if len(venues) == 1 else "cross-exchange")
        object.__setattr__(self, "path", (legs[0].asset_in, *(leg.asset_out for leg in legs)))
        object.__setattr__(self, "venues", venues)
        object.__setattr__(self, "kind", kind)

    @property
    def start_asset(self) -> str:
        return self.legs[0].asset_in

    @property
    def start_venue(self) -> str:
        return self.legs[0].venue

    def describe(self) -> str:
        return " > ".join(
            f"{leg.side.value} {leg.market.symbol}@{leg.venue}" for leg in self.legs)


class RejectReason(StrEnum):
    STALE_BOOK = "stale_book"
    CROSSED_BOOK = "crossed_book"
    MARKET_DISABLED = "market_disabled"
    INSUFFICIENT_DEPTH = "insufficient_depth"
    BELOW_MIN_SIZE = "below_min_size"
    BELOW_MIN_FUNDS = "below_min_funds"
    BELOW_MIN_PROFIT = "below_min_profit"
    MAX_NOTIONAL = "max_notional"
    NO_BALANCE = "no_balance"
    MAX_CONCURRENT = "max_concurrent"
    COOLDOWN = "cooldown"
    PAUSED = "paused"
    KILL_SWITCH = "kill_switch"


class PlannedLeg(msgspec.Struct, frozen=True):
    """An order the plan will send: limit IOC at ``limit_price`` (the worst level walked).

    A frozen msgspec Struct, as :class:`Opportunity`: both are built on the order path, between the frame
    and the first order, where a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field)
    cost 30-35 µs more for a three-leg plan after a quiet spell (benchmarks/README.md, "tick_to_order").
    """

    venue: str
    symbol: str
    side: Side
    limit_price: Decimal
    size: Decimal
    amount_in: Decimal
    amount_out: Decimal
    fee: Decimal
    fee_asset: str
    asset_in: str
    asset_out: str
    book_age_ms: float


class Opportunity(msgspec.Struct, frozen=True):
    """A cycle sized on depth and rounded to the venues' rules: an executable plan.

    ``input`` is spent of the start asset; ``output`` is what the last leg delivers back; ``profit``
    is ``output - input`` (start asset) and ``profit_usd`` its value in USD at detection time.
    """

    id: str
    cycle_id: int
    kind: str
    path: tuple[str, ...]
    legs: tuple[PlannedLeg, ...]
    input: Decimal
    output: Decimal
    profit: Decimal
    profit_usd: float
    net_return_bps: float
    detected_at: float

    @property
    def start_asset(self) -> str:
        return self.path[0]


@dataclass(frozen=True, slots=True)
class Rejection:
    cycle_id: int
    path: tuple[str, ...]
    reason: RejectReason
    detail: str
    net_return_bps: float
    at: float


class OrderStatus(StrEnum):
    NEW = "new"
    FILLED = "filled"
    PARTIAL = "partially_filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Order:
    client_oid: str
    opportunity_id: str
    leg_index: int
    venue: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    created_at: float
    type: str = "limit"
    time_in_force: str = "IOC"


@dataclass(frozen=True, slots=True)
class Fill:
    client_oid: str
    opportunity_id: str
    leg_index: int
    venue: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    fee_asset: str
    at: float


@dataclass(frozen=True, slots=True)
class OrderResult:
    order: Order
    status: OrderStatus
    fills: tuple[Fill, ...] = ()
    reason: str = ""

    @property
    def filled_size(self) -> Decimal:
        return sum((f.size for f in self.fills), Decimal(0))


@dataclass(frozen=True, slots=True)
class Balance:
    venue: str
    asset: str
    free: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened to an opportunity once it was sent: orders, fills and what it really earned."""

    opportunity: Opportunity
    results: tuple[OrderResult, ...]
    realized_profit: Decimal
    realized_profit_usd: float
    fees_usd: float
    at: float
    mode: str = "paper"


@dataclass(frozen=True, slots=True)
class Notice:
    """Anything worth telling a person that is not a trade: connection state, risk, errors."""

    kind: str
    message: str
    at: float
    fields: dict[str, str] = field(default_factory=dict)


Event = Opportunity | Rejection | Execution | Notice
