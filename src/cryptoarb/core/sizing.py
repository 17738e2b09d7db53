"""Depth sizing: the input that maximises a cycle's profit, and the exact plan that becomes orders.

Leg semantics (the contract with the paper executor): amounts flow leg to leg; each leg converts what
it receives and its output is the next leg's input.

- SELL (input is base): size = input floored to the size increment; proceeds walk the bids from the
  best; fee = proceeds * taker_fee in quote; output = proceeds - fee. Leftover base is dust.
- BUY: an order is a limit IOC at the worst ask its size walks, and the venue holds its funds at that
  limit price: hold(size) = size * limit(size) * (1 + fee) with the fee in quote, size * limit(size)
  with the fee taken from what is received. The size is the largest on the increment grid whose hold
  fits the input (hold(size) <= input), so the order can be sent as planned. It fills at the levels
  it walks: it spends cost(size) * (1 + fee) (fee in quote; cost(size) when received), never more than
  its hold, and output = size (fee in quote) or size - size * taker_fee (fee received, in base).
  Leftover quote (the input less what the fills spend) is dust.
- A leg whose input is more than its visible book can absorb (a SELL size above the bid depth, a BUY
  input above the hold of the whole ask side) is INSUFFICIENT_DEPTH; a size of zero or below
  ``min_size`` is BELOW_MIN_SIZE; a cost/proceeds below ``min_funds`` is BELOW_MIN_FUNDS.
- The limit price is the worst level the walk touches. The cycle input is the first leg's input as
  actually consumed (a SELL: its rounded size; a BUY: cost * (1 + fee), or cost); what the first
  order needs held when it is placed (a SELL its size, a BUY its hold) is what ``max_input`` caps.

All plan arithmetic is exact ``Decimal`` (floats converted through ``repr``) in a context that traps
any rounding: every size is floored to its grid by exact integer division, never estimated.

Optimisation: every leg's output depends only on that leg's size, and every size is monotone in the
first leg's size, so the best plan is "tight": fixing one leg's size, the smallest first size that
reaches it and the outputs that follow from it. Profit as a function of that one leg's size is
bounded above by the continuous (gridless) profit, which is concave; searching outward from its
maximum on the grid of the leg with the coarsest increment, and stopping where the continuous bound
shows nothing left can beat the best exact profit by more than a tolerance, finds the optimum to
within that tolerance (half the cost of one first-leg increment by default; zero gives the exact
optimum, which tests/core/test_sizing_oracle.py checks against a brute force).

A BUY after the first leg needs its hold as input, and the hold jumps where its walk reaches a new
level, so the continuous profit is concave only between those points. The search cuts the pivot's
grid there (:func:`_pieces`); on each piece every such BUY's walk ends on one level, at whose price its
continuous model is linear (:meth:`LegBook.flat`), and the profit concave again. Pieces are searched
outward from the one where a bound of them all peaks (those BUYs sized by their walked cost, never
more than their hold allows), each outward from its own maximum, until no bound is left that could
beat the best exact profit by more than the tolerance.

The least plan the legs' minimum size and funds allow bounds the search from below and explains a
rejection when nothing is feasible. Opportunities usually lie well above it, so a single concave piece is
first searched without it, and only a candidate that fails a minimum brings it in (:func:`_optimise`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from typing import ParamSpec, Protocol, TypeVar

from cryptoarb.core.books import Book, Freshness, tradeable
from cryptoarb.core.detector import buy_weight, fee_log, return_bps, sell_weight
from cryptoarb.model import (
    Cycle,
    Leg,
    Market,
    MarketKey,
    Opportunity,
    PlannedLeg,
    Rejection,
    RejectReason,
    Side,
)

ZERO = Decimal(0)
_ONE = Decimal(1)
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
_REL_SLACK = 1e-9  # float error allowance on the continuous bound, relative to the amounts involved
MAX_EVALS = 400
"""Exact plan evaluations per cycle before the search settles for the best found."""

DecLevel = tuple[Decimal, Decimal]
P = ParamSpec("P")
T = TypeVar("T")


def _exact(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with localcontext(_EXACT):
            return fn(*args, **kwargs)
    return wrapper


def to_decimal(x: float | int | Decimal | str) -> Decimal:
    """A book float as the decimal it was printed as (``repr``), not its binary expansion."""
    if isinstance(x, Decimal):
        return x
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def to_levels(levels: Sequence[tuple[float | Decimal, float | Decimal]]) -> tuple[DecLevel, ...]:
    return tuple((to_decimal(p), to_decimal(q)) for p, q in levels if p > 0 and q > 0)


class ExactLevels:
    """A book side as exact ``Decimal`` levels, each converted the first time a walk reaches it.

    A plan walks a few levels of books that hold 50 or more; converting them all up front was most of the
    cost of sizing a cycle (benchmarks/tick_to_order.py)."""

    __slots__ = ("_done", "_src")

    def __init__(self, levels: Sequence[tuple[float | Decimal, float | Decimal]]) -> None:
        """``levels``: best first, every price and size positive."""
        self._src = levels
        self._done: list[DecLevel] = []

    def __iter__(self) -> Iterator[DecLevel]:
        done, src = self._done, self._src
        i = 0
        while i < len(src):
            if i == len(done):
                p, q = src[i]
                done.append((to_decimal(p), to_decimal(q)))
            yield done[i]
            i += 1

    def walk(self, size: Decimal) -> tuple[Decimal, Decimal] | None:
        """Exact sum of price * size taken from these levels (best first) and the worst price touched; None
        when they hold less than ``size``. A loop, not an iterator: a plan walks each leg several times."""
        done, src = self._done, self._src
        cost = ZERO
        worst = ZERO
        left = size
        i = 0
        while left > 0:
            if i == len(done):
                if i == len(src):
                    return None
                p, q = src[i]
                done.append((to_decimal(p), to_decimal(q)))
            price, qty = done[i]
            take = qty if qty < left else left
            cost += price * take
            worst = price
            left -= take
            i += 1
        return cost, worst


class BookSource(Protocol):
    def get(self, key: MarketKey, /) -> Book | None: ...


# ---------------------------------------------------------------------------------------------------
# exact leg semantics


@dataclass(slots=True)  # not frozen: built ~9 times per sizing, and a frozen init sets each field the slow way
class LegFill:
    """One leg of an exact plan. ``notional`` is the cost (BUY) or proceeds (SELL) before fee, in quote;
    ``hold`` what the order ties up of its input when it is placed (a SELL its size, a BUY its size at
    the limit price, with the fee when it is charged in quote): never more than ``amount_in``, except
    for a first leg, whose ``amount_in`` is what it spends."""

    leg: Leg
    size: Decimal
    limit_price: Decimal
    amount_in: Decimal
    amount_out: Decimal
    notional: Decimal
    fee: Decimal
    fee_asset: str
    hold: Decimal


@dataclass(frozen=True, slots=True)
class LegFailure:
    leg_index: int
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    legs: tuple[LegFill, ...]

    @property
    def input(self) -> Decimal:
        return self.legs[0].amount_in

    @property
    def output(self) -> Decimal:
        return self.legs[-1].amount_out

    @property
    def profit(self) -> Decimal:
        return self.output - self.input

    @property
    def first_size(self) -> Decimal:
        return self.legs[0].size


@_exact
def walk_levels(levels: Sequence[tuple[float | Decimal, float | Decimal]],
                size: Decimal) -> tuple[Decimal, Decimal] | None:
    """Exact sum of price * size taken from ``levels`` (best first) and the worst price touched.

    None when the levels hold less than ``size``; a size of zero touches nothing (worst price 0).
    """
    return ExactLevels(to_levels(levels)).walk(size)


def _floor_div(num: Decimal, den: Decimal) -> int:
    return int(num // den) if num > 0 else 0


def _ceil_div(num: Decimal, den: Decimal) -> int:
    if num <= 0:
        return 0
    q, r = divmod(num, den)
    return int(q) + (1 if r else 0)


def _min_size_worth(levels: Iterable[DecLevel], target: Decimal, factor: Decimal, inc: Decimal,
                    book: LegBook) -> Decimal | None:
    """Smallest grid size whose walked value times ``factor`` reaches ``target``; None past the depth."""
    if target <= 0:
        return ZERO
    value = ZERO
    size = ZERO
    for price, qty in levels:
        full = value + price * qty
        if full * factor >= target:
            # inside this level: (value + price * (s - size)) * factor >= target, solved for s exactly
            n = _ceil_div(target - (value - price * size) * factor, price * factor * inc)
            s = n * inc
            return s if book.within_depth(s) else None
        value = full
        size += qty
    return None


class _LegConstants:
    """What a leg's market fixes about sizing it. A cycle is sized on every update that completes it; the
    Decimal and float conversions below, done each time, were ~6 % of its instructions (benchmarks/README.md)."""

    __slots__ = ("buy", "by_size", "f_fee", "f_in", "f_out", "fee", "fee_asset", "fee_log", "in_factor", "inc",
                 "leg", "out_factor", "received")

    def __init__(self, leg: Leg) -> None:
        with localcontext(_EXACT):
            market = leg.market
            self.leg = leg  # held, so the id that keys it is never another leg's
            self.buy = leg.side is Side.BUY
            self.received = self.buy and market.fee_currency == "received"
            self.inc = market.size_increment
            self.fee = market.taker_fee
            # input per unit of notional (BUY) and output per unit of notional or size
            self.in_factor = (1 + self.fee) if self.buy and not self.received else Decimal(1)
            self.out_factor = 1 - self.fee
            self.fee_asset = market.base if self.received else market.quote
            self.f_fee = float(self.fee)
            self.f_in = float(self.in_factor)
            self.f_out = float(self.out_factor)
            self.fee_log = fee_log(leg)
            # the least grid size min size allows (and more than zero)
            self.by_size = max(_ceil_div(market.min_size, self.inc), 1) * self.inc


_LEG_CONSTANTS: dict[int, _LegConstants] = {}
_LEG_CONSTANTS_MAX = 100_000  # cycles are indexed once, so this is only reached if markets are reloaded often


def _leg_name(index: int, market: Market) -> str:
    """How failure details name a leg; formatted only for a failure (sizing runs on the order path)."""
    return f"leg {index} {market.symbol}@{market.venue}"


def _leg_constants(leg: Leg) -> _LegConstants:
    found = _LEG_CONSTANTS.get(id(leg))
    if found is None or found.leg is not leg:
        if len(_LEG_CONSTANTS) >= _LEG_CONSTANTS_MAX:
            _LEG_CONSTANTS.clear()
        found = _LEG_CONSTANTS[id(leg)] = _LegConstants(leg)
    return found


class LegBook:
    """One leg against its side of the book (bids for SELL, asks for BUY), exactly and in floats.

    ``holds``: a BUY after the first leg, whose input must cover its hold (size at the worst level
    walked); its continuous input and size jump where the walk reaches a new level, so the search
    bounds it one level at a time (:meth:`flat`).
    """

    __slots__ = ("_depth", "buy", "by_size", "f_depth", "f_fee", "f_in", "f_out", "fee", "fee_asset", "flats",
                 "flevels", "holds", "in_factor", "inc", "index", "leg", "levels", "market", "out_factor", "received")

    def __init__(self, leg: Leg, levels: Sequence[tuple[float | Decimal, float | Decimal]],
                 index: int = 0) -> None:
        c = _leg_constants(leg)
        self.leg = leg
        self.market = leg.market
        self.index = index
        self.buy = c.buy
        self.received = c.received
        if levels and levels[0][0].__class__ is float:
            # the book's own tuples: float(Decimal(repr(x))) == x, so the two views agree
            self.flevels = [lv for lv in levels if lv[0] > 0 and lv[1] > 0]
            self.levels = ExactLevels(self.flevels)
        else:
            positive = [(p, q) for p, q in levels if p > 0 and q > 0]
            self.flevels = [(float(p), float(q)) for p, q in positive]
            self.levels = ExactLevels(positive)
        self.holds = c.buy and index > 0
        self.flats: dict[int, LegBook] = {}
        self._depth: Decimal | None = None
        self.inc = c.inc
        self.fee = c.fee
        self.in_factor = c.in_factor
        self.out_factor = c.out_factor
        self.fee_asset = c.fee_asset
        self.f_fee = c.f_fee
        self.f_in = c.f_in
        self.f_out = c.f_out
        self.by_size = c.by_size
        self.f_depth = math.fsum([q for _, q in self.flevels]) * (1 + 1e-12)

    @property
    def depth(self) -> Decimal:
        """The side's whole size, exactly (converts every level: kept for failures and the rare close call)."""
        if self._depth is None:
            self._depth = sum((q for _, q in self.levels), ZERO)
        return self._depth

    def within_depth(self, size: Decimal) -> bool:
        """``size <= depth``, decided on floats unless the two are within float error of each other."""
        f = float(size)
        if f < self.f_depth * (1 - 1e-9):
            return True
        if f > self.f_depth * (1 + 1e-9):
            return False
        return size <= self.depth

    # -- forward: what the leg does with an input ------------------------------------------------
    @_exact
    def fill_input(self, amount_in: Decimal) -> LegFill | LegFailure:
        """Apply the leg to ``amount_in`` of its input asset."""
        return self._fill_input(amount_in)

    @_exact
    def fill_size(self, size: Decimal) -> LegFill | LegFailure:
        """Trade exactly ``size`` (base) as a first leg; its input is what it spends (a SELL its size, a BUY
        its walked cost with the fee in quote). ``hold`` is what placing it needs."""
        return self._fill_size(size)

    def _fill_input(self, amount_in: Decimal) -> LegFill | LegFailure:
        if not self.buy:
            return self._fill(amount_in // self.inc * self.inc, amount_in)
        size = self._buy_size(amount_in)
        if size is None:
            return self._fail(RejectReason.INSUFFICIENT_DEPTH,
                              f"{amount_in} {self.leg.asset_in} is more than the whole book holds")
        return self._fill(size, amount_in)

    def _buy_size(self, amount_in: Decimal) -> Decimal | None:
        """The largest grid size whose hold, ``size * limit(size) * in_factor``, is at most ``amount_in``;
        None when ``amount_in`` is more than the hold of the whole book."""
        inc = self.inc
        below = ZERO  # the size of the levels before this one
        size = ZERO
        per_unit = ZERO
        for price, qty in self.levels:
            top = below + qty
            per_unit = price * self.in_factor  # hold per unit of size for sizes on this level
            n = min(_floor_div(amount_in, per_unit * inc), int(top // inc))
            if n * inc > below:
                size = n * inc
            if top * per_unit > amount_in:
                return size  # deeper sizes hold even more
            below = top
        return None if below * per_unit < amount_in else size

    def _fill_size(self, size: Decimal) -> LegFill | LegFailure:
        """As a first leg: its input is what it spends (a BUY its walked cost, with the fee in quote)."""
        if not self.buy:
            return self._fill(size, size)
        walked = self.levels.walk(size)
        if walked is None:
            return self._fail(RejectReason.INSUFFICIENT_DEPTH, f"size {size} > ask depth {self.depth}")
        return self._fill(size, walked[0] * self.in_factor)

    def _fill(self, size: Decimal, amount_in: Decimal) -> LegFill | LegFailure:
        market = self.market
        if size <= 0:
            return self._fail(RejectReason.BELOW_MIN_SIZE,
                              f"{amount_in} {self.leg.asset_in} rounds to size 0")
        walked = self.levels.walk(size)
        if walked is None:
            side = "ask" if self.buy else "bid"
            return self._fail(RejectReason.INSUFFICIENT_DEPTH, f"size {size} > {side} depth {self.depth}")
        notional, worst = walked
        if size < market.min_size:
            return self._fail(RejectReason.BELOW_MIN_SIZE, f"size {size} < min size {market.min_size}")
        if notional < market.min_funds:
            return self._fail(RejectReason.BELOW_MIN_FUNDS,
                              f"funds {notional} < min funds {market.min_funds}")
        if self.received:
            fee = size * self.fee
            out = size - fee
        else:
            fee = notional * self.fee
            out = size if self.buy else notional - fee
        hold = size * worst * self.in_factor if self.buy else size
        return LegFill(self.leg, size, worst, amount_in, out, notional, fee, self.fee_asset, hold)

    def _fail(self, reason: RejectReason, detail: str) -> LegFailure:
        return LegFailure(self.index, reason, f"{_leg_name(self.index, self.market)}: {detail}")

    # -- backward: the least that reaches a size ----------------------------------------------------
    def _input_for_size(self, size: Decimal) -> Decimal | None:
        """The least input from which this leg (not the first) trades at least ``size``: a BUY's hold;
        None past the depth."""
        if not self.buy:
            return size if self.within_depth(size) else None
        walked = self.levels.walk(size)
        return None if walked is None else size * walked[1] * self.in_factor

    def _size_for_output(self, amount_out: Decimal) -> Decimal | None:
        """The smallest grid size whose output is at least ``amount_out``; None past the depth."""
        if not self.buy:
            return _min_size_worth(self.levels, amount_out, self.out_factor, self.inc, self)
        factor = self.out_factor if self.received else Decimal(1)
        s = _ceil_div(amount_out, factor * self.inc) * self.inc
        return s if self.within_depth(s) else None

    def _min_rule_size(self) -> tuple[Decimal, RejectReason] | None:
        """The smallest grid size meeting min size and min funds (and > 0), and the rule that set it;
        None when the book cannot reach it."""
        by_size = self.by_size
        by_funds = _min_size_worth(self.levels, self.market.min_funds, _ONE, self.inc, self)
        if by_funds is None or not self.within_depth(by_size):
            return None
        if by_funds > by_size:
            return by_funds, RejectReason.BELOW_MIN_FUNDS
        return by_size, RejectReason.BELOW_MIN_SIZE

    # -- continuous (gridless) float model --------------------------------------------------------
    def f_top_rate(self) -> float:
        """Output per unit input at the best level, after fee."""
        price = self.flevels[0][0]
        fee = self.f_fee
        if not self.buy:
            return price * (1 - fee)
        return (1 - fee) / price if self.received else 1 / (price * (1 + fee))

    def f_input_per_size(self) -> float:
        """Input per unit of size at the best level."""
        return self.flevels[0][0] * self.f_in if self.buy else 1.0

    def f_step(self, level: int) -> tuple[float, float]:
        """At ``level``: (output per unit input, input the level absorbs)."""
        p, q = self.flevels[level]
        fee = self.f_fee
        if not self.buy:
            return p * (1 - fee), q
        k = self.f_in
        return ((1 - fee) if self.received else 1.0) / (p * k), p * q * k

    def f_in_of_size(self, size: float) -> float | None:
        if not self.buy:
            return size if size <= self.f_depth else None
        cost = _f_hold(self.flevels, size) if self.holds else _f_value(self.flevels, size)
        return None if cost is None else cost * self.f_in

    def f_out_of_size(self, size: float) -> float | None:
        if self.buy:
            return size * self.f_out if self.received else size
        value = _f_value(self.flevels, size)
        return None if value is None else value * self.f_out

    def f_size_of_in(self, amount_in: float) -> float | None:
        if not self.buy:
            return amount_in if amount_in <= self.f_depth else None
        if self.holds:
            return _f_hold_size(self.flevels, amount_in / self.f_in)
        return _f_size_worth(self.flevels, amount_in / self.f_in)

    def f_size_of_in_capped(self, amount_in: float) -> float:
        """Like f_size_of_in, but an input beyond the book trades the whole book.

        Exact plans floor their amounts, so one may still fit a book the continuous flow overfills;
        capping keeps the continuous profit an upper bound there.
        """
        size = self.f_size_of_in(amount_in)
        return self.f_depth / (1 + 1e-12) if size is None else size

    def f_size_of_out(self, amount_out: float) -> float | None:
        if self.buy:
            size = amount_out / self.f_out if self.received else amount_out
            return size if size <= self.f_depth else None
        return _f_size_worth(self.flevels, amount_out / self.f_out)

    def walked(self) -> LegBook:
        """This leg with a BUY's continuous input its walked cost, which its hold is never below: one
        concave bound of every level its walk may end on."""
        if not self.holds:
            return self
        view = self.flats.get(-1)
        if view is None:
            view = self._view()
            view.holds = False
            self.flats[-1] = view
        return view

    def _view(self) -> LegBook:
        view = object.__new__(LegBook)
        for name in LegBook.__slots__:
            setattr(view, name, getattr(self, name))
        view.flats = {}
        return view

    def flat(self, level: int) -> LegBook:
        """This BUY as if its walk ended on ``level`` (0-based): every size up to that level's end holds
        at that level's price. Where the real walk ends there, its hold and size are exactly these, and
        they are linear in the input: the continuous profit is concave again."""
        view = self.flats.get(level)
        if view is None:
            view = self._view()
            depth = sum(q for _, q in self.flevels[:level + 1])
            view.flevels = [(self.flevels[level][0], depth)]
            view.f_depth = depth * (1 + 1e-12)
            self.flats[level] = view
        return view


def _f_value(levels: list[tuple[float, float]], size: float) -> float | None:
    value = 0.0
    left = size
    for price, qty in levels:
        take = min(qty, left)
        value += price * take
        left -= take
        if left <= 0:
            return value
    return value if left <= size * 1e-12 else None


def _f_hold(levels: list[tuple[float, float]], size: float) -> float | None:
    """``size`` times the price of the level the walk ends on; None past the book."""
    below = 0.0
    for price, qty in levels:
        below += qty
        if size <= below:
            return size * price
    return size * levels[-1][0] if levels and size <= below * (1 + 1e-12) else None


def _f_hold_size(levels: list[tuple[float, float]], budget: float) -> float | None:
    """The largest size whose hold (size times the price of the level it ends on) is ``budget`` at most;
    None past the hold of the whole book. Flat at a level's end until the budget holds the next level."""
    below = 0.0
    for price, qty in levels:
        size = budget / price
        if size <= below:
            return below
        if size < below + qty:
            return size
        below += qty
    return below if levels and budget <= below * levels[-1][0] * (1 + 1e-12) else None


def _f_size_worth(levels: list[tuple[float, float]], target: float) -> float | None:
    value = 0.0
    size = 0.0
    for price, qty in levels:
        full = value + price * qty
        if full >= target:
            return size + (target - value) / price
        value = full
        size += qty
    return size if target <= value * (1 + 1e-12) else None


# ---------------------------------------------------------------------------------------------------
# whole-cycle plans


def _forward(legs: Sequence[LegBook], first_size: Decimal) -> Plan | LegFailure:
    fills = []
    result = legs[0]._fill_size(first_size)
    for i, leg in enumerate(legs):
        if i:
            result = leg._fill_input(fills[-1].amount_out)
        if isinstance(result, LegFailure):
            return result
        fills.append(result)
    return Plan(tuple(fills))


def _leg_books(cycle: Cycle, books: BookSource) -> list[LegBook] | LegFailure:
    out = []
    for i, leg in enumerate(cycle.legs):
        book = books.get(leg.market.key)
        if book is None:
            return LegFailure(i, RejectReason.STALE_BOOK, f"{_leg_name(i, leg.market)}: no book")
        out.append(LegBook(leg, book.bids if leg.side is Side.SELL else book.asks, i))
    return out


@_exact
def plan_legs(cycle: Cycle, books: BookSource, first_size: Decimal) -> Plan | LegFailure:
    """The exact plan when the first leg trades ``first_size`` (base units of its market)."""
    legs = _leg_books(cycle, books)
    return legs if isinstance(legs, LegFailure) else _forward(legs, first_size)


def _first_size_for(legs: Sequence[LegBook], j: int, size: Decimal) -> Decimal | None:
    """The smallest first-leg size from which leg ``j`` trades at least ``size``."""
    need: Decimal | None = size
    for k in range(j - 1, -1, -1):
        amount = legs[k + 1]._input_for_size(need)
        if amount is None:
            return None
        need = legs[k]._size_for_output(amount)
        if need is None:
            return None
    return need


def _f_profit_at(legs: Sequence[LegBook], j: int, size: float) -> float:
    """Continuous profit when leg ``j`` trades ``size``: an upper bound of every exact plan doing so."""
    amount = legs[j].f_out_of_size(size)
    for leg in legs[j + 1:]:
        if amount is None:
            return -math.inf
        amount = leg.f_out_of_size(leg.f_size_of_in_capped(amount))
    if amount is None:
        return -math.inf
    cost = legs[j].f_in_of_size(size)
    for leg in reversed(legs[:j]):
        if cost is None:
            return -math.inf
        s = leg.f_size_of_out(cost)
        cost = None if s is None else leg.f_in_of_size(s)
    return -math.inf if cost is None else amount - cost


def _f_best_input(legs: Sequence[LegBook], max_input: float) -> float:
    """Continuous optimum: push input through every leg's levels while the marginal rate exceeds 1."""
    # each leg's levels are reached one at a time, and most searches stop within the first few
    at = [0] * len(legs)
    steps = [leg.f_step(0) for leg in legs]
    room = [s[1] for s in steps]
    x = 0.0
    while x < max_input:
        mults = []
        mult = 1.0
        for s in steps:
            mults.append(mult)
            mult *= s[0]
        if mult <= 1.0:
            break
        dx, bind = min((room[i] / mults[i], i) for i in range(len(legs)))
        if x + dx >= max_input:
            return max_input
        x += dx
        for i in range(len(legs)):
            room[i] -= dx * mults[i]
        room[bind] = 0.0
        for i, leg in enumerate(legs):
            if room[i] <= 1e-12 * steps[i][1]:
                at[i] += 1
                if at[i] == len(leg.flevels):
                    return x
                steps[i] = leg.f_step(at[i])
                room[i] = steps[i][1]
    return x


def _f_input_cap(first: LegBook, max_input: Decimal) -> float:
    """The most a first leg can spend while its hold stays within ``max_input`` (a start for the search)."""
    cap = float(max_input)
    if first.buy:
        # in floats, gridless and a hair generous: an upper bound of what any exact plan spends
        size = _f_hold_size(first.flevels, cap / first.f_in)
        spend = None if size is None else _f_value(first.flevels, size)
        if spend is not None:
            return min(cap, spend * first.f_in * (1 + _REL_SLACK))
    return cap


def _first_leg_cap(first: LegBook, max_input: Decimal) -> tuple[float, float]:
    """What :func:`_f_input_cap` gives, worked out exactly, and the first leg's first grid point (in
    increments) whose order would hold more than ``max_input`` (inf when no size the book holds does).

    With the first leg as the pivot, the search needs no evaluation to know that every grid point from there
    fails the cap (a BUY's hold, its size at its limit price, grows with its size). Where the cap binds, as
    it does for most real opportunities, the float estimate of the best size often lands one increment past
    it; evaluating that point exactly first made sizing 1.14x slower back to back and 1.19x cold
    (benchmarks/sizing_ab.py).
    """
    cap = float(max_input)
    if not first.buy:
        return cap, int(max_input // first.inc) + 1
    size = first._buy_size(max_input)
    walked = None if size is None else first.levels.walk(size)
    if size is None or walked is None:
        return cap, math.inf
    # the most any plan within the cap spends (spending grows with size), a hair generous as a float
    return min(cap, float(walked[0] * first.in_factor) * (1 + _REL_SLACK)), int(size // first.inc) + 1


def _f_size_at_leg(legs: Sequence[LegBook], j: int, x: float) -> float | None:
    size = legs[0].f_size_of_in_capped(x)
    for leg in legs[1:j + 1]:
        amount = legs[leg.index - 1].f_out_of_size(size)
        if amount is None:
            return None
        size = leg.f_size_of_in_capped(amount)
    return size


def _pivot(legs: Sequence[LegBook]) -> int:
    """The leg whose size increment is worth the most start asset: the fewest grid points to search."""
    best, best_value = 0, -1.0
    carried = 1.0  # start units per unit of this leg's input at top of book
    for j, leg in enumerate(legs):
        value = float(leg.inc) * leg.f_input_per_size() * carried
        if value > best_value:
            best, best_value = j, value
        carried /= leg.f_top_rate()
    return best


class _Search:
    """Exact evaluations of candidate first sizes, remembered, with the best plan so far."""

    def __init__(self, legs: Sequence[LegBook], max_input: Decimal) -> None:
        self.legs = legs
        self.max_input = max_input
        self.seen: dict[Decimal, Plan | LegFailure] = {}
        self.best: Plan | None = None

    def evaluate(self, first_size: Decimal) -> Plan | LegFailure:
        result = self.seen.get(first_size)
        if result is None:
            result = _forward(self.legs, first_size)
            if isinstance(result, Plan) and result.legs[0].hold > self.max_input:
                result = self.legs[0]._fail(RejectReason.MAX_NOTIONAL,
                                            f"first order holds {result.legs[0].hold} > max input {self.max_input}")
            self.seen[first_size] = result
            if isinstance(result, Plan) and (self.best is None or result.profit > self.best.profit):
                self.best = result
        return result

    @property
    def best_profit(self) -> float:
        return -math.inf if self.best is None else float(self.best.profit)


def _f_forward_to(legs: Sequence[LegBook], i: int, size: float, j: int) -> float | None:
    """Continuous size of leg ``j`` when leg ``i`` (before it) trades ``size``; None past a book."""
    amount = legs[i].f_out_of_size(size)
    for leg in legs[i + 1:j + 1]:
        if amount is None:
            return None
        size_j = leg.f_size_of_in(amount)
        if size_j is None or leg.index == j:
            return size_j
        amount = leg.f_out_of_size(size_j)
    return None


def _f_back_to(legs: Sequence[LegBook], i: int, amount_in: float, j: int) -> float | None:
    """Continuous size of leg ``j`` (before leg ``i``) from which leg ``i`` receives ``amount_in``."""
    need: float | None = amount_in
    for leg in reversed(legs[j:i]):
        size = None if need is None else leg.f_size_of_out(need)
        if size is None or leg.index == j:
            return size
        need = leg.f_in_of_size(size)
    return None


Piece = tuple[float, float, dict[int, int]]


def _pieces(legs: Sequence[LegBook], j: int, t_hi: float) -> list[Piece]:
    """The pivot leg's size axis cut where a BUY after the first leg starts walking a new level, up to
    ``t_hi``: ``(from, to, {leg: level its walk ends on})``; :func:`_views` is the float model there.

    A BUY's continuous hold, and so the profit, jumps where its walk reaches a level; between those
    points every such BUY's walk ends on one level and the continuous profit with it flat
    (:meth:`LegBook.flat`) is the real one, and concave. A BUY at or before the pivot changes level
    where its size passes a level's end; one after the pivot where its input passes the hold of that
    size at the next level's price (until then it buys the level's end). The axis ends where a BUY
    reaches a level so dear that the cycle's top-of-book return through it is not positive: no plan
    walking that far can profit.
    """
    top = math.prod(leg.f_top_rate() for leg in legs)
    cuts: list[tuple[float, int, int]] = []
    for leg in legs[1:]:
        if not leg.holds:
            continue
        end = 0.0
        best_price = leg.flevels[0][0]
        for level, (_, qty) in enumerate(leg.flevels[:-1]):
            end += qty
            price = leg.flevels[level + 1][0]
            if leg.index == j:
                t: float | None = end
            elif leg.index < j:
                t = _f_forward_to(legs, leg.index, end, j)
            else:
                t = _f_back_to(legs, leg.index, end * price * leg.f_in, j)
            if t is None or t > t_hi:
                break
            if top * best_price / price <= 1 - 1e-12:
                t_hi = t  # walking to this level or beyond cannot profit
                break
            cuts.append((t, leg.index, level + 1))
    cuts = sorted(c for c in cuts if c[0] < t_hi)
    level_of = {leg.index: 0 for leg in legs[1:] if leg.holds}
    out: list[Piece] = []
    start = -math.inf
    for t, index, level in cuts:
        out.append((start, t, dict(level_of)))
        level_of[index] = level
        start = t
    out.append((start, t_hi, level_of))
    return out


def _views(legs: Sequence[LegBook], levels: Mapping[int, int]) -> list[LegBook]:
    return [leg.flat(levels[leg.index]) if leg.holds else leg for leg in legs]


def _stop(ahead: float, best: float, tolerance: float, floor: float) -> bool:
    """Whether a bound of ``ahead`` leaves nothing to search for: nothing beats ``best`` by more than
    ``tolerance`` once some plan clears ``floor``; until then only proof (nothing beats it at all) stops."""
    return (ahead - tolerance < best) if best > floor else (ahead < best or ahead < floor)


class _Pivot:
    """The search on the pivot leg's grid: exact candidates, one concave piece of the bound at a time."""

    def __init__(self, search: _Search, legs: Sequence[LegBook], j: int, n_lo: Decimal, k_lo: int, x_cap: float,
                 least_input: float, tolerance: float, floor: float, max_evals: int, k_end: float) -> None:
        self.search = search
        self.legs = legs
        self.j = j
        self.inc = legs[j].inc
        self.f_inc = float(self.inc)
        self.n_lo = n_lo
        self.k_lo = k_lo
        self.x_cap = x_cap
        self.least_input = least_input
        self.tolerance = tolerance
        self.floor = floor
        self.budget = max_evals
        # the first grid point known past the book or max input: so is every one after
        self.k_fail = k_end
        self.below_minimums = False  # a candidate failed a minimum (size or funds)

    def candidate(self, k: int) -> Plan | LegFailure | None:
        first = _first_size_for(self.legs, self.j, k * self.inc)
        if first is None:
            return None
        result = self.search.evaluate(max(first, self.n_lo))
        if isinstance(result, LegFailure) and result.reason in _MINIMUMS:
            self.below_minimums = True
        return result

    def peak(self, views: Sequence[LegBook], lo: float, hi: float) -> tuple[int, float]:
        """The grid point from which ``views``' bound falls both ways within [lo, hi], and its slack."""
        x_star = _f_best_input(views, self.x_cap)
        t_star = _f_size_at_leg(views, self.j, x_star)
        k = int(t_star / self.f_inc) if t_star is not None else self.k_lo
        return int(min(max(lo, k), hi, self.k_fail - 1)), _REL_SLACK * max(x_star, self.least_input, 1e-300)

    def piece(self, lo: int, hi: float, levels: Mapping[int, int]) -> bool:
        """Evaluate grid points of [lo, hi] outward from where its concave bound peaks, the side with the
        higher bound first, until the bound shows nothing left in it beats the best found; False when the
        evaluation budget ran out first."""
        views = _views(self.legs, levels)
        k_start, slack = self.peak(views, lo, hi)

        def bound(k: int) -> float:
            return _f_profit_at(views, self.j, k * self.f_inc) if lo <= k <= hi and k < self.k_fail else -math.inf

        left, right = k_start, k_start + 1
        left_bound, right_bound = bound(left), bound(right)
        while self.budget > 0 and not left_bound == right_bound == -math.inf:
            ahead = max(left_bound, right_bound) + slack
            if _stop(ahead, self.search.best_profit, self.tolerance, self.floor):
                return True
            self.budget -= 1
            if left_bound >= right_bound:
                self.candidate(left)
                left -= 1
                left_bound = bound(left)
            else:
                if not isinstance(self.candidate(right), Plan):
                    self.k_fail = min(self.k_fail, right)
                right += 1
                right_bound = bound(right)
        return self.budget > 0 or left_bound == right_bound == -math.inf


_MINIMUMS = (RejectReason.BELOW_MIN_SIZE, RejectReason.BELOW_MIN_FUNDS)


def _grid_span(t_from: float, t_to: float, f_inc: float, k_lo: int) -> tuple[int, float]:
    """The pivot's grid points from piece ``(t_from, t_to)``, none below ``k_lo``: a grid point either side
    of each cut in both pieces, as the cuts are float estimates."""
    lo = k_lo if t_from == -math.inf else max(k_lo, math.ceil(t_from / f_inc) - 1)
    return lo, (math.inf if t_to == math.inf else math.floor(t_to / f_inc) + 1)


def _clear_of_minimums(search: _Search, legs: Sequence[LegBook], j: int, x_cap: float, piece: Piece,
                       tolerance: float, floor: float, max_evals: int, k_end: float) -> tuple[Plan | None, int]:
    """The search of a single concave piece without first finding the least plan the minimums allow: the
    best plan, or None when a candidate met a minimum (or none was found) and the full search must decide;
    and the evaluation budget left.

    Most opportunities lie well above every leg's minimum size and funds; then each candidate is the
    tightest plan for its pivot size, the bound proves the rest, and finding the minimums' floor first (the
    least first size each leg's rules allow, and that plan evaluated) was ~25 % of sizing's time back to
    back and ~12 % cold (benchmarks/sizing_ab.py). Where a candidate fails a minimum, the floor matters
    (the best plan may be held up to it), and :func:`_optimise` searches with it, reusing every evaluation
    made here.
    """
    t_from, t_to, levels = piece
    lo, hi = _grid_span(t_from, t_to, float(legs[j].inc), 0)
    run = _Pivot(search, legs, j, ZERO, 0, x_cap, 0.0, tolerance, floor, max_evals, k_end)
    settled = run.piece(lo, hi, levels)
    if not settled or run.below_minimums or search.best is None:
        return None, run.budget
    return search.best, run.budget


def _optimise(legs: Sequence[LegBook], max_input: Decimal, max_evals: int, tolerance: float,
              floor: float) -> Plan | LegFailure:
    """The best exact plan, or the failure that rules every plan out.

    Where the pivot's grid is one concave piece, it is first searched without the minimums' floor
    (:func:`_clear_of_minimums`); that settles most opportunities. Otherwise, or where a candidate met a
    minimum, this searches the pieces of the pivot leg's grid on which the continuous bound is concave
    (:func:`_pieces`), outward from the one where a bound of them all (BUYs after the first leg sized by
    their walked cost, which their hold is never below) peaks, each outward from where its own bound peaks;
    stops where the bounds show nothing left beats the best by more than ``tolerance``; until some plan
    clears ``floor`` (the least acceptable profit) it only stops on proof.
    """
    search = _Search(legs, max_input)
    j = _pivot(legs)
    x_cap, k_end = _first_leg_cap(legs[0], max_input) if j == 0 else (_f_input_cap(legs[0], max_input), math.inf)
    t_hi = _f_size_at_leg(legs, j, x_cap)  # no exact plan within max input trades more on the pivot
    cuts = _pieces(legs, j, math.inf if t_hi is None else t_hi)
    if len(cuts) == 1:
        found, max_evals = _clear_of_minimums(search, legs, j, x_cap, cuts[0], tolerance, floor, max_evals, k_end)
        if found is not None:
            return found
    floors = []
    for i, leg in enumerate(legs):
        rule = leg._min_rule_size()
        first = None if rule is None else _first_size_for(legs, i, rule[0])
        if first is None or rule is None:
            return leg._fail(RejectReason.INSUFFICIENT_DEPTH, "min size/funds lie beyond the book")
        floors.append((first, i, rule[1]))
    n_lo, binding, rule_reason = max(floors, key=lambda f: (f[0], -f[1]))
    lowest = search.evaluate(n_lo)
    if isinstance(lowest, LegFailure):
        if lowest.reason is RejectReason.MAX_NOTIONAL:
            return legs[binding]._fail(
                rule_reason, f"minimums need more than max input {max_input} {legs[0].leg.asset_in}")
        return lowest
    f_inc = float(legs[j].inc)
    k_lo = int(lowest.legs[j].size // legs[j].inc)
    run = _Pivot(search, legs, j, n_lo, k_lo, x_cap, float(lowest.input), tolerance, floor, max_evals, k_end)
    pieces: list[tuple[int, float, dict[int, int]]] = []
    for t_from, t_to, levels in cuts:
        lo, hi = _grid_span(t_from, t_to, f_inc, k_lo)
        if hi >= lo:
            pieces.append((lo, hi, levels))
    if len(pieces) == 1:
        run.piece(*pieces[0])
    else:
        walked = [leg.walked() for leg in legs]
        k_peak, slack = run.peak(walked, k_lo, math.inf)

        def bound(i: int) -> float:
            """The walked-cost bound's highest on piece ``i``."""
            if not 0 <= i < len(pieces) or pieces[i][0] >= run.k_fail:
                return -math.inf
            lo, hi, _ = pieces[i]
            k = int(min(max(k_peak, lo), hi))
            return max(_f_profit_at(walked, j, k * f_inc),
                       _f_profit_at(walked, j, (k + 1) * f_inc) if k + 1 <= hi else -math.inf)

        left = next((i for i, (_, hi, _) in enumerate(pieces) if hi >= k_peak), len(pieces) - 1)
        right = left + 1
        left_bound, right_bound = bound(left), bound(right)
        while run.budget > 0 and not left_bound == right_bound == -math.inf:
            if _stop(max(left_bound, right_bound) + slack, search.best_profit, tolerance, floor):
                break
            if left_bound >= right_bound:
                run.piece(*pieces[left])
                left -= 1
                left_bound = bound(left)
            else:
                run.piece(*pieces[right])
                right += 1
                right_bound = bound(right)
    assert search.best is not None  # n_lo itself is feasible
    return search.best


def top_return_bps(cycle: Cycle, books: BookSource) -> float:
    """The cycle's net return at the top of each book, after taker fees (the detector's measure)."""
    total = 0.0
    for leg in cycle.legs:
        book = books.get(leg.market.key)
        if book is None:
            return -10_000.0
        c = _leg_constants(leg)
        total += buy_weight(book.best_ask, c.fee_log) if c.buy else sell_weight(book.best_bid, c.fee_log)
    return return_bps(total)


@_exact
def size_cycle(
    cycle: Cycle,
    books: BookSource | Mapping[MarketKey, Book],
    now: float,
    max_input: Decimal,
    usd_per_start_unit: float,
    freshness: Freshness,
    min_profit: Decimal = ZERO,
    opportunity_id: str = "",
    *,
    max_evals: int = MAX_EVALS,
    tolerance: Decimal | None = None,
    net_return_bps: float | None = None,
) -> Opportunity | Rejection:
    """Size ``cycle`` on the current books: the most profitable exact plan whose first order holds at most
    ``max_input`` when it is placed (a first BUY: its size at its limit price, with the fee in quote; its
    input, what it spends at the levels it walks, is at most that).

    Returns a Rejection when a market is disabled, a book is not tradeable, or no plan makes more
    than ``min_profit`` (and more than zero) of the start asset.

    The plan's profit is within ``tolerance`` (start asset) of the best exact plan; by default half
    the top-of-book cost of one first-leg size increment, 0 for the exact optimum. ``max_evals``
    bounds the exact evaluations (each ~20 µs) should the profit curve be very flat.

    ``net_return_bps``: the cycle's :func:`top_return_bps` on these books when the caller has it (the
    detector's figure, on the order path); computed here otherwise.
    """
    bps = top_return_bps(cycle, books) if net_return_bps is None else net_return_bps

    def reject(reason: RejectReason, detail: str) -> Rejection:
        return Rejection(cycle.id, cycle.path, reason, detail, bps, now)

    for i, leg in enumerate(cycle.legs):
        market = leg.market
        if not market.enabled:
            return reject(RejectReason.MARKET_DISABLED, f"{_leg_name(i, market)}: market disabled")
        why = tradeable(books.get(market.key), now, freshness)
        if why is not None:
            return reject(RejectReason(why), f"{_leg_name(i, market)}: {why.replace('_', ' ')}")
    if max_input <= 0:
        return reject(RejectReason.NO_BALANCE, f"max input {max_input} {cycle.start_asset}")
    legs = _leg_books(cycle, books)
    assert not isinstance(legs, LegFailure)  # every book was just found tradeable
    if math.prod(leg.f_top_rate() for leg in legs) <= 1.0:
        return reject(RejectReason.BELOW_MIN_PROFIT, f"top of book returns {bps:.2f} bps")
    half_increment = 0.5 * float(legs[0].inc) * legs[0].f_input_per_size()
    tol = half_increment if tolerance is None else float(tolerance)
    floor = max(min_profit, ZERO)
    result = _optimise(legs, max_input, max_evals, tol, float(floor))
    if isinstance(result, LegFailure):
        return reject(result.reason, result.detail)
    if result.profit <= floor:
        return reject(RejectReason.BELOW_MIN_PROFIT,
                      f"best profit {result.profit} {cycle.start_asset} <= {floor} (input {result.input})")
    return _opportunity(cycle, books, result, now, usd_per_start_unit, bps, opportunity_id)


def _opportunity(cycle: Cycle, books: BookSource, plan: Plan, now: float, usd_per_start_unit: float,
                 bps: float, opportunity_id: str) -> Opportunity:
    legs = []
    for fill in plan.legs:
        market = fill.leg.market
        book = books.get(market.key)
        # the age tradeable() judged: a quiet book on a live stream is current
        age_ms = book.age(now) * 1000.0 if book is not None else math.inf
        legs.append(PlannedLeg(
            venue=market.venue, symbol=market.symbol, side=fill.leg.side, limit_price=fill.limit_price,
            size=fill.size, amount_in=fill.amount_in, amount_out=fill.amount_out, fee=fill.fee,
            fee_asset=fill.fee_asset, asset_in=fill.leg.asset_in, asset_out=fill.leg.asset_out,
            book_age_ms=age_ms))
    return Opportunity(
        id=opportunity_id, cycle_id=cycle.id, kind=cycle.kind, path=cycle.path, legs=tuple(legs),
        input=plan.input, output=plan.output, profit=plan.profit,
        profit_usd=float(plan.profit) * usd_per_start_unit, net_return_bps=bps, detected_at=now)
