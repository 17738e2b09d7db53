"""Inventory skew and rebalance suggestions. Pure: balances, targets and marks are passed in.

Inventory mode keeps a buffer of each asset on each venue so every leg can fire at once; trading moves
those buffers (cross-exchange cycles buy on one venue and sell on another), and a venue that runs out of
an asset stops cycles through it. :class:`InventoryMonitor` compares what each venue holds with its
target (by default the starting inventory) and says, once per episode, which holdings are skewed and
how to fix them:

- ``transfer``: the asset is short on one venue and in surplus on another: move it (withdraw/deposit);
- ``buy`` / ``sell``: the asset is short (or long) in total: trade it against the venue's start asset.

A start asset (USDT, EUR) is held to its targets scaled to its total: its total moves with PnL, which is not
skew, but its spread over the venues is, so only transfers of it are suggested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
_EIGHT_PLACES = Decimal("1e-8")
Holdings = Mapping[tuple[str, str], Decimal]
"""(venue, asset) -> amount."""


@dataclass(frozen=True, slots=True)
class SkewAlert:
    venue: str
    asset: str
    held: Decimal
    target: Decimal
    deviation_pct: float
    """(held - target) / target in percent; +inf for an asset held without a target."""
    usd: float
    """Value of ``held - target``."""

    def describe(self) -> str:
        dev = "no target" if self.deviation_pct == float("inf") else f"{self.deviation_pct:+.0f}%"
        return (f"{self.asset} on {self.venue}: {_fmt(self.held)} held vs {_fmt(self.target)} target "
                f"({dev}, {self.usd:+,.2f} USD)")


@dataclass(frozen=True, slots=True)
class Rebalance:
    kind: str
    """transfer, buy or sell."""
    asset: str
    from_venue: str
    to_venue: str
    amount: Decimal
    usd: float

    def describe(self) -> str:
        if self.kind == "transfer":
            return (f"move {_fmt(self.amount)} {self.asset} (~{self.usd:,.2f} USD) from {self.from_venue} "
                    f"to {self.to_venue}")
        return f"{self.kind} {_fmt(self.amount)} {self.asset} (~{self.usd:,.2f} USD) on {self.to_venue}"


def _fmt(x: Decimal) -> str:
    """At most eight decimals (what fills leave, 3738.401800117025, is not an amount to move)."""
    shown = x.quantize(_EIGHT_PLACES).normalize()
    return f"{shown:f}" if shown else "0"


def skews(held: Holdings, target: Holdings, mark: Callable[[str, str], float | None], *,
          threshold_pct: float, min_usd: float) -> list[SkewAlert]:
    """Holdings more than ``threshold_pct`` away from their target and worth at least ``min_usd``."""
    out = []
    for key in sorted(set(held) | set(target)):
        venue, asset = key
        have, want = held.get(key, ZERO), target.get(key, ZERO)
        diff = have - want
        usd = float(diff) * (mark(venue, asset) or 0.0)
        if abs(usd) < min_usd or diff == 0:
            continue
        pct = float(diff / want) * 100 if want > 0 else float("inf")
        if abs(pct) >= threshold_pct:
            out.append(SkewAlert(venue, asset, have, want, pct, usd))
    return out


def suggest_rebalance(held: Holdings, target: Holdings, mark: Callable[[str, str], float | None], *,
                      min_usd: float, transfer_only: frozenset[str] = frozenset()) -> list[Rebalance]:
    """Transfers that bring each asset's venues back to target, then trades for what is short or long
    in total. Greedy: the largest surplus feeds the largest deficit first. What is long with no target
    anywhere (an asset a ``hold`` policy stranded, say) is to be sold on the venue holding it. Assets in
    ``transfer_only`` (the start assets, traded against) are never bought or sold."""
    out: list[Rebalance] = []
    assets = sorted({a for _, a in set(held) | set(target)})
    for asset in assets:
        gaps = {v: held.get((v, asset), ZERO) - target.get((v, asset), ZERO)
                for v, a in set(held) | set(target) if a == asset}
        price = {v: mark(v, asset) or 0.0 for v in gaps}
        surplus = sorted(((g, v) for v, g in gaps.items() if g > 0), reverse=True)
        deficit = sorted((g, v) for v, g in gaps.items() if g < 0)
        si = di = 0
        s_left = [g for g, _ in surplus]
        d_left = [-g for g, _ in deficit]
        while si < len(surplus) and di < len(deficit):
            amount = min(s_left[si], d_left[di])
            src, dst = surplus[si][1], deficit[di][1]
            usd = float(amount) * (price[src] or price[dst])
            if usd >= min_usd:
                out.append(Rebalance("transfer", asset, src, dst, amount, usd))
            s_left[si] -= amount
            d_left[di] -= amount
            if s_left[si] == 0:
                si += 1
            if d_left[di] == 0:
                di += 1
        if asset in transfer_only:
            continue
        for i in range(di, len(deficit)):
            if d_left[i] > 0:
                venue = deficit[i][1]
                usd = float(d_left[i]) * price[venue]
                if usd >= min_usd:
                    out.append(Rebalance("buy", asset, venue, venue, d_left[i], usd))
        for i in range(si, len(surplus)):
            if s_left[i] > 0:
                venue = surplus[i][1]
                usd = float(s_left[i]) * price[venue]
                if usd >= min_usd:
                    out.append(Rebalance("sell", asset, venue, venue, s_left[i], usd))
    return out


@dataclass(frozen=True, slots=True)
class InventoryReport:
    alerts: tuple[SkewAlert, ...]
    suggestions: tuple[Rebalance, ...]


class InventoryMonitor:
    """Skew alerts once per episode: :meth:`check` returns a report only when the set of skewed
    (venue, asset) holdings changes, and an empty one once they are all back within bounds."""

    def __init__(self, targets: Mapping[str, Mapping[str, float | Decimal]], *, threshold_pct: float = 50.0,
                 min_usd: float = 25.0, start_assets: frozenset[str] = frozenset()) -> None:
        self.targets: dict[tuple[str, str], Decimal] = {
            (venue, asset): Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)
            for venue, assets in targets.items() for asset, amount in assets.items() if amount > 0}
        self.threshold_pct = threshold_pct
        self.min_usd = min_usd
        self.start_assets = start_assets
        """Assets PnL accrues in: their total's drift is profit or loss, not skew (their spread is)."""
        self._skewed: frozenset[tuple[str, str]] = frozenset()

    def check(self, held: Holdings, mark: Callable[[str, str], float | None]) -> InventoryReport | None:
        target = {**self.targets, **self._start_asset_targets(held)}
        alerts = skews(held, target, mark, threshold_pct=self.threshold_pct, min_usd=self.min_usd)
        skewed = frozenset((a.venue, a.asset) for a in alerts)
        if skewed == self._skewed:
            return None
        self._skewed = skewed
        assets = {a.asset for a in alerts}
        suggestions = [r for r in suggest_rebalance(held, target, mark, min_usd=self.min_usd,
                                                    transfer_only=self.start_assets) if r.asset in assets]
        return InventoryReport(tuple(alerts), tuple(suggestions))

    def _start_asset_targets(self, held: Holdings) -> dict[tuple[str, str], Decimal]:
        """A start asset's targets scaled to what is held of it in all: its total drifts with PnL, which is not
        skew, but how it is spread over the venues is (cross-exchange cycles drain it from one venue into
        another, and the drained venue's cycles stop). So only its transfers are ever suggested."""
        out: dict[tuple[str, str], Decimal] = {}
        for asset in self.start_assets:
            wanted = {k: v for k, v in self.targets.items() if k[1] == asset}
            total_wanted = sum(wanted.values(), ZERO)
            if total_wanted <= 0:
                continue
            scale = sum((v for k, v in held.items() if k[1] == asset), ZERO) / total_wanted
            for key, amount in wanted.items():
                out[key] = amount * scale
        return out
