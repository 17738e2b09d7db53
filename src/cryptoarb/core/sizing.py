"""Depth sizing: the input that maximises a cycle's profit, and the exact plan that becomes orders.

Leg semantics (the contract with the paper executor): amounts flow leg to leg; each leg converts what
it receives and its output is the next leg's input.

- SELL (input is base): size = input floored to the size increment; proceeds walk the bids from the
  best; fee = proceeds * taker_fee in quote; output = proceeds - fee. Leftover base is dust.
- BUY, fee in quote: the largest size on the increment grid with cost(size) * (1 + fee) <= input,
  cost walking the asks; output = size. BUY, fee taken from what is received: the largest size with
  cost(size) <= input; fee = size * taker_fee in base; output = size - fee. Leftover quote is dust.
- A leg whose input is more than its visible book can absorb (a SELL size above the bid depth, a BUY
  budget above the cost of every ask) is INSUFFICIENT_DEPTH; a size of zero or below ``min_size``
  is BELOW_MIN_SIZE; a cost/proceeds below ``min_funds`` is BELOW_MIN_FUNDS.
- The limit price is the worst level the walk touches. The cycle input is the first leg's input as
  actually consumed (a SELL: its rounded size; a BUY: cost * (1 + fee), or cost).

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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from typing import ParamSpec, Protocol, TypeVar

from cryptoarb.core.books import Book, Freshness, tradeable
from cryptoarb.core.detector import buy_weight, fee_log, return_bps, sell_weight
from cryptoarb.model import (
    Cycle,
    Leg,
    MarketKey,
    Opportunity,
    PlannedLeg,
    Rejection,
    RejectReason,
    Side,
)

ZERO = Decimal(0)
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


class BookSource(Protocol):
    def get(self, key: MarketKey, /) -> Book | None: ...


# ---------------------------------------------------------------------------------------------------
# exact leg semantics


@dataclass(frozen=True, slots=True)
class LegFill:
    """One leg of an exact plan. ``notional`` is the cost (BUY) or proceeds (SELL) before fee, in quote."""

    leg: Leg
    size: Decimal
    limit_price: Decimal
    amount_in: Decimal
    amount_out: Decimal
    notional: Decimal
    fee: Decimal
    fee_asset: str


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


def _walk(levels: Sequence[DecLevel], size: Decimal) -> tuple[Decimal, Decimal] | None:
    cost = ZERO
    worst = ZERO
    left = size
    for price, qty in levels:
        if left <= 0:
            break
        take = qty if qty < left else left
        cost += price * take
        worst = price
        left -= take
    return None if left > 0 else (cost, worst)


@_exact
def walk_levels(levels: Sequence[tuple[float | Decimal, float | Decimal]],
                size: Decimal) -> tuple[Decimal, Decimal] | None:
    """Exact sum of price * size taken from ``levels`` (best first) and the worst price touched.

    None when the levels hold less than ``size``; a size of zero touches nothing (worst price 0).
    """
    return _walk(to_levels(levels), size)


def _floor_div(num: Decimal, den: Decimal) -> int:
    return int(num // den) if num > 0 else 0


def _ceil_div(num: Decimal, den: Decimal) -> int:
    if num <= 0:
        return 0
    q, r = divmod(num, den)
    return int(q) + (1 if r else 0)


def _min_size_worth(levels: Sequence[DecLevel], target: Decimal, factor: Decimal, inc: Decimal,
                    depth: Decimal) -> Decimal | None:
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
            return s if s <= depth else None
        value = full
        size += qty
    return None


class LegBook:
    """One leg against its side of the book (bids for SELL, asks for BUY), exactly and in floats."""

    __slots__ = ("buy", "depth", "f_depth", "f_fee", "f_in", "f_out", "fee", "fee_asset", "flevels",
                 "in_factor", "inc", "index", "leg", "levels", "market", "out_factor", "received")

    def __init__(self, leg: Leg, levels: Sequence[tuple[float | Decimal, float | Decimal]],
                 index: int = 0) -> None:
        with localcontext(_EXACT):
            self.leg = leg
            self.market = leg.market
            self.index = index
            self.buy = leg.side is Side.BUY
            self.received = self.buy and self.market.fee_currency == "received"
            self.levels = to_levels(levels)
            self.flevels = [(float(p), float(q)) for p, q in self.levels]
            self.depth = sum((q for _, q in self.levels), ZERO)
            self.inc = self.market.size_increment
            self.fee = self.market.taker_fee
            # input per unit of notional (BUY) and output per unit of notional or size
            self.in_factor = (1 + self.fee) if self.buy and not self.received else Decimal(1)
            self.out_factor = 1 - self.fee
            self.fee_asset = self.market.base if self.received else self.market.quote
            self.f_fee = float(self.fee)
            self.f_in = float(self.in_factor)
            self.f_out = float(self.out_factor)
            self.f_depth = float(self.depth) * (1 + 1e-12)

    # -- forward: what the leg does with an input ------------------------------------------------
    @_exact
    def fill_input(self, amount_in: Decimal) -> LegFill | LegFailure:
        """Apply the leg to ``amount_in`` of its input asset."""
        return self._fill_input(amount_in)

    @_exact
    def fill_size(self, size: Decimal) -> LegFill | LegFailure:
        """Trade exactly ``size`` (base); its input is the least amount that buys/sells that size."""
        return self._fill_size(size)

    def _fill_input(self, amount_in: Decimal) -> LegFill | LegFailure:
        if not self.buy:
            return self._fill(amount_in // self.inc * self.inc, amount_in)
        k = self.in_factor
        cost = ZERO
        have = ZERO
        for price, qty in self.levels:
            full = cost + price * qty
            if full * k > amount_in:
                n = _floor_div(amount_in - (cost - price * have) * k, price * k * self.inc)
                return self._fill(n * self.inc, amount_in)
            cost = full
            have += qty
        if cost * k < amount_in:
            return self._fail(RejectReason.INSUFFICIENT_DEPTH,
                              f"{amount_in} {self.leg.asset_in} buys the whole book ({cost * k})")
        return self._fill(have // self.inc * self.inc, amount_in)

    def _fill_size(self, size: Decimal) -> LegFill | LegFailure:
        if not self.buy:
            return self._fill(size, size)
        walked = _walk(self.levels, size)
        if walked is None:
            return self._fail(RejectReason.INSUFFICIENT_DEPTH, f"size {size} > ask depth {self.depth}")
        return self._fill(size, walked[0] * self.in_factor)

    def _fill(self, size: Decimal, amount_in: Decimal) -> LegFill | LegFailure:
        market = self.market
        if size <= 0:
            return self._fail(RejectReason.BELOW_MIN_SIZE,
                              f"{amount_in} {self.leg.asset_in} rounds to size 0")
        walked = _walk(self.levels, size)
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
        return LegFill(self.leg, size, worst, amount_in, out, notional, fee, self.fee_asset)

    def _fail(self, reason: RejectReason, detail: str) -> LegFailure:
        where = f"leg {self.index} {self.market.symbol}@{self.market.venue}"
        return LegFailure(self.index, reason, f"{where}: {detail}")

    # -- backward: the least that reaches a size ----------------------------------------------------
    def _input_for_size(self, size: Decimal) -> Decimal | None:
        """The least input from which this leg trades at least ``size``; None past the depth."""
        if not self.buy:
            return size if size <= self.depth else None
        walked = _walk(self.levels, size)
        return None if walked is None else walked[0] * self.in_factor

    def _size_for_output(self, amount_out: Decimal) -> Decimal | None:
        """The smallest grid size whose output is at least ``amount_out``; None past the depth."""
        if not self.buy:
            return _min_size_worth(self.levels, amount_out, self.out_factor, self.inc, self.depth)
        factor = self.out_factor if self.received else Decimal(1)
        s = _ceil_div(amount_out, factor * self.inc) * self.inc
        return s if s <= self.depth else None

    def _min_rule_size(self) -> tuple[Decimal, RejectReason] | None:
        """The smallest grid size meeting min size and min funds (and > 0), and the rule that set it;
        None when the book cannot reach it."""
        market = self.market
        by_size = max(_ceil_div(market.min_size, self.inc), 1) * self.inc
        by_funds = _min_size_worth(self.levels, market.min_funds, Decimal(1), self.inc, self.depth)
        if by_funds is None or by_size > self.depth:
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

    def f_steps(self) -> list[tuple[float, float]]:
        """Per level: (output per unit input, input the level absorbs)."""
        fee = self.f_fee
        if not self.buy:
            return [(p * (1 - fee), q) for p, q in self.flevels]
        k = self.f_in
        rate_num = (1 - fee) if self.received else 1.0
        return [(rate_num / (p * k), p * q * k) for p, q in self.flevels]

    def f_in_of_size(self, size: float) -> float | None:
        if not self.buy:
            return size if size <= self.f_depth else None
        cost = _f_value(self.flevels, size)
        return None if cost is None else cost * self.f_in

    def f_out_of_size(self, size: float) -> float | None:
        if self.buy:
            return size * self.f_out if self.received else size
        value = _f_value(self.flevels, size)
        return None if value is None else value * self.f_out

    def f_size_of_in(self, amount_in: float) -> float | None:
        if not self.buy:
            return amount_in if amount_in <= self.f_depth else None
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
            return LegFailure(i, RejectReason.STALE_BOOK, f"leg {i} {leg.market.symbol}@{leg.venue}: no book")
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
    steps = [leg.f_steps() for leg in legs]
    at = [0] * len(legs)
    room = [s[0][1] for s in steps]
    x = 0.0
    while x < max_input:
        mults = []
        mult = 1.0
        for i, s in enumerate(steps):
            mults.append(mult)
            mult *= s[at[i]][0]
        if mult <= 1.0:
            break
        dx, bind = min((room[i] / mults[i], i) for i in range(len(legs)))
        if x + dx >= max_input:
            return max_input
        x += dx
        for i in range(len(legs)):
            room[i] -= dx * mults[i]
        room[bind] = 0.0
        for i in range(len(legs)):
            if room[i] <= 1e-12 * steps[i][at[i]][1]:
                at[i] += 1
                if at[i] == len(steps[i]):
                    return x
                room[i] = steps[i][at[i]][1]
    return x


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
            if isinstance(result, Plan) and result.input > self.max_input:
                result = self.legs[0]._fail(RejectReason.MAX_NOTIONAL,
                                            f"input {result.input} > max input {self.max_input}")
            self.seen[first_size] = result
            if isinstance(result, Plan) and (self.best is None or result.profit > self.best.profit):
                self.best = result
        return result

    @property
    def best_profit(self) -> float:
        return -math.inf if self.best is None else float(self.best.profit)


def _optimise(legs: Sequence[LegBook], max_input: Decimal, max_evals: int, tolerance: float,
              floor: float) -> Plan | LegFailure:
    """The best exact plan, or the failure that rules every plan out.

    Stops where the continuous bound shows nothing left beats the best by more than ``tolerance``;
    until some plan clears ``floor`` (the least acceptable profit) it only stops on proof.
    """
    floors = []
    for i, leg in enumerate(legs):
        rule = leg._min_rule_size()
        first = None if rule is None else _first_size_for(legs, i, rule[0])
        if first is None or rule is None:
            return leg._fail(RejectReason.INSUFFICIENT_DEPTH, "min size/funds lie beyond the book")
        floors.append((first, i, rule[1]))
    n_lo, binding, rule_reason = max(floors, key=lambda f: (f[0], -f[1]))
    search = _Search(legs, max_input)
    lowest = search.evaluate(n_lo)
    if isinstance(lowest, LegFailure):
        if lowest.reason is RejectReason.MAX_NOTIONAL:
            return legs[binding]._fail(
                rule_reason, f"minimums need more than max input {max_input} {legs[0].leg.asset_in}")
        return lowest
    j = _pivot(legs)
    inc = legs[j].inc
    f_inc = float(inc)
    k_lo = int(lowest.legs[j].size // inc)
    x_star = _f_best_input(legs, float(max_input))
    t_star = _f_size_at_leg(legs, j, x_star)
    k_start = max(k_lo, int(t_star / f_inc) if t_star is not None else k_lo)
    slack = _REL_SLACK * max(x_star, float(lowest.input), 1e-300)

    def candidate(k: int) -> Plan | LegFailure | None:
        first = _first_size_for(legs, j, k * inc)
        return None if first is None else search.evaluate(max(first, n_lo))

    def bound(k: int) -> float:
        return _f_profit_at(legs, j, k * f_inc)

    left, right = k_start, k_start + 1
    left_bound, right_bound = bound(left), bound(right)
    for _ in range(max_evals):
        go_left = left_bound >= right_bound
        best = search.best_profit
        ahead = max(left_bound, right_bound) + slack
        if (ahead - tolerance < best) if best > floor else (ahead < best or ahead < floor):
            break
        if go_left:
            candidate(left)
            left -= 1
            left_bound = bound(left) if left >= k_lo else -math.inf
        else:
            result = candidate(right)
            right += 1
            right_bound = bound(right) if isinstance(result, Plan) else -math.inf
        if left_bound == right_bound == -math.inf:
            break
    assert search.best is not None  # n_lo itself is feasible
    return search.best


def top_return_bps(cycle: Cycle, books: BookSource) -> float:
    """The cycle's net return at the top of each book, after taker fees (the detector's measure)."""
    total = 0.0
    for leg in cycle.legs:
        book = books.get(leg.market.key)
        if book is None:
            return -10_000.0
        total += (buy_weight(book.best_ask, fee_log(leg)) if leg.side is Side.BUY
                  else sell_weight(book.best_bid, fee_log(leg)))
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
) -> Opportunity | Rejection:
    """Size ``cycle`` on the current books: the most profitable exact plan with input <= ``max_input``.

    Returns a Rejection when a market is disabled, a book is not tradeable, or no plan makes more
    than ``min_profit`` (and more than zero) of the start asset.

    The plan's profit is within ``tolerance`` (start asset) of the best exact plan; by default half
    the top-of-book cost of one first-leg size increment, 0 for the exact optimum. ``max_evals``
    bounds the exact evaluations (each ~20 µs) should the profit curve be very flat.
    """
    bps = top_return_bps(cycle, books)

    def reject(reason: RejectReason, detail: str) -> Rejection:
        return Rejection(cycle.id, cycle.path, reason, detail, bps, now)

    for i, leg in enumerate(cycle.legs):
        where = f"leg {i} {leg.market.symbol}@{leg.venue}"
        if not leg.market.enabled:
            return reject(RejectReason.MARKET_DISABLED, f"{where}: market disabled")
        why = tradeable(books.get(leg.market.key), now, freshness)
        if why is not None:
            return reject(RejectReason(why), f"{where}: {why.replace('_', ' ')}")
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
