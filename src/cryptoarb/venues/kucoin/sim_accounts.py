"""The simulator's single account: available and held balance per currency, with change events.

Every movement is reported to ``on_change`` in the shape of KuCoin's ``/account/balance`` push, so the
private websocket can forward it as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


def dstr(value: Decimal) -> str:
    """A Decimal as KuCoin prints numbers: plain digits, no exponent, no trailing zeros."""
    return format(value.normalize(), "f") if value else "0"


def hex_id(*parts: object) -> str:
    """A stable 24-hex id (KuCoin's id shape) derived from ``parts``."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Context:
    """What caused a balance change: KuCoin's ``relationEvent`` and ``relationContext``."""

    event: str
    symbol: str = ""
    order_id: str = ""
    trade_id: str = ""


@dataclass(frozen=True, slots=True)
class BalanceChange:
    account_id: str
    currency: str
    total: Decimal
    available: Decimal
    hold: Decimal
    available_change: Decimal
    hold_change: Decimal
    context: Context
    time_ms: int


class Accounts:
    def __init__(self, balances: Mapping[str, Decimal], *, account_type: str, user_id: str,
                 clock_ms: Callable[[], int]) -> None:
        self.account_type = account_type
        self.user_id = user_id
        self._clock_ms = clock_ms
        self.available: dict[str, Decimal] = {c: Decimal(v) for c, v in balances.items()}
        self.hold: dict[str, Decimal] = {c: ZERO for c in balances}
        self.listeners: list[Callable[[BalanceChange], None]] = []

    def account_id(self, currency: str) -> str:
        return hex_id(self.user_id, self.account_type, currency)

    def free(self, currency: str) -> Decimal:
        return self.available.get(currency, ZERO)

    def set(self, currency: str, amount: Decimal) -> None:
        """Replace the available balance (admin); holds are kept."""
        self._move(currency, amount - self.free(currency), ZERO, Context("main.deposit"))

    def hold_funds(self, currency: str, amount: Decimal, ctx: Context) -> None:
        self._move(currency, -amount, amount, ctx)

    def release(self, currency: str, amount: Decimal, ctx: Context) -> None:
        if amount:
            self._move(currency, amount, -amount, ctx)

    def spend_held(self, currency: str, amount: Decimal, ctx: Context) -> None:
        self._move(currency, ZERO, -amount, ctx)

    def spend(self, currency: str, amount: Decimal, ctx: Context) -> None:
        self._move(currency, -amount, ZERO, ctx)

    def credit(self, currency: str, amount: Decimal, ctx: Context) -> None:
        self._move(currency, amount, ZERO, ctx)

    def rows(self, currency: str | None = None) -> list[dict[str, str]]:
        """``GET /api/v1/accounts`` entries of this account type."""
        if currency is None:
            names = sorted(self.available)
        elif currency in self.available:
            names = [currency]
        else:
            names = []
        return [{"id": self.account_id(c), "currency": c, "type": self.account_type,
                 "balance": dstr(self.available[c] + self.hold[c]), "available": dstr(self.available[c]),
                 "holds": dstr(self.hold[c])} for c in names]

    def _move(self, currency: str, d_available: Decimal, d_hold: Decimal, ctx: Context) -> None:
        available = self.available.get(currency, ZERO) + d_available
        hold = self.hold.get(currency, ZERO) + d_hold
        self.available[currency] = available
        self.hold[currency] = hold
        if not self.listeners or (not d_available and not d_hold):
            return
        change = BalanceChange(self.account_id(currency), currency, available + hold, available, hold,
                               d_available, d_hold, ctx, self._clock_ms())
        for listener in self.listeners:
            listener(change)
