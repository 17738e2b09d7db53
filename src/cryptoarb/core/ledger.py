"""Balances per (venue, asset) and realized PnL, moved only by fills. Pure and exact (Decimal)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from cryptoarb.model import Fill, Market, Side

ZERO = Decimal(0)


class Ledger:
    def __init__(self, balances: Mapping[str, Mapping[str, Decimal | float]] | None = None) -> None:
        self._free: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for venue, assets in (balances or {}).items():
            for asset, amount in assets.items():
                self._free[(venue, asset)] = Decimal(repr(amount)) if isinstance(amount, float) else amount
        self.realized_pnl_usd = 0.0
        self.fees_usd = 0.0
        self.trades = 0

    def free(self, venue: str, asset: str) -> Decimal:
        return self._free.get((venue, asset), ZERO)

    def deltas(self, fills: Iterable[Fill],
               markets: Mapping[tuple[str, str], Market]) -> dict[tuple[str, str], Decimal]:
        """What ``fills`` change, per (venue, asset), fees included in the asset they are charged in."""
        out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for fill in fills:
            market = markets[(fill.venue, fill.symbol)]
            notional = fill.price * fill.size
            sign = 1 if fill.side is Side.BUY else -1
            out[(fill.venue, market.base)] += sign * fill.size
            out[(fill.venue, market.quote)] -= sign * notional
            out[(fill.venue, fill.fee_asset)] -= fill.fee
        return out

    def apply(self, fills: Iterable[Fill], markets: Mapping[tuple[str, str], Market],
              usd_price: Callable[[str, str], float | None]) -> float:
        """Book ``fills``; returns their value change in USD (the opportunity's realized PnL)."""
        fills = list(fills)
        realized = 0.0
        for (venue, asset), delta in self.deltas(fills, markets).items():
            self._free[(venue, asset)] += delta
            realized += float(delta) * (usd_price(venue, asset) or 0.0)
        for fill in fills:
            self.fees_usd += float(fill.fee) * (usd_price(fill.venue, fill.fee_asset) or 0.0)
        self.trades += len(fills)
        self.realized_pnl_usd += realized
        return realized

    def snapshot(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (venue, asset), amount in sorted(self._free.items()):
            if amount:
                out[venue][asset] = float(amount)
        return dict(out)
