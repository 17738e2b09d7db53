"""The cycle graph: every simple price cycle through the loaded markets, enumerated once at load time.

Nodes are (venue, asset). Each enabled market gives two trade edges: SELL (base -> quote at the bids)
and BUY (quote -> base at the asks). Holding an asset on several venues adds zero-cost inventory edges
between them; they are not legs: consecutive legs on different venues imply one inventory hop.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain

from cryptoarb.model import Cycle, Leg, Market, MarketKey, Side

Node = tuple[str, str]
"""(venue, asset)"""


class _Graph:
    """Integer-indexed adjacency built once per enumeration."""

    def __init__(self, markets: Sequence[Market], inventory: Mapping[str, Collection[str]]) -> None:
        unique: dict[MarketKey, Market] = {}
        for market in markets:
            if market.enabled and market.base != market.quote:
                unique.setdefault(market.key, market)
        legs = [Leg(m, side) for m in unique.values() for side in (Side.SELL, Side.BUY)]
        legs.sort(key=_leg_key)
        self.legs = legs  # edge id = rank in leg-key order, so rotation order is an int comparison
        self.node_ids: dict[Node, int] = {}
        self.src: list[int] = []
        self.dst: list[int] = []
        self.market_of: list[int] = []
        market_ids = {key: i for i, key in enumerate(unique)}
        for leg in legs:
            self.src.append(self._node(leg.venue, leg.asset_in))
            self.dst.append(self._node(leg.venue, leg.asset_out))
            self.market_of.append(market_ids[leg.market.key])
        n = len(self.node_ids)
        self.asset_of = [""] * n
        for (_, asset), i in self.node_ids.items():
            self.asset_of[i] = asset
        self.out: list[list[int]] = [[] for _ in range(n)]
        self.between: dict[tuple[int, int], list[int]] = {}
        for e in range(len(legs)):
            self.out[self.src[e]].append(e)
            self.between.setdefault((self.src[e], self.dst[e]), []).append(e)
        self.hops: list[tuple[int, ...]] = [() for _ in range(n)]
        for asset, venues in inventory.items():
            held = [self.node_ids[(v, asset)] for v in sorted(set(venues)) if (v, asset) in self.node_ids]
            for node in held:
                self.hops[node] = tuple(other for other in held if other != node)

    def _node(self, venue: str, asset: str) -> int:
        return self.node_ids.setdefault((venue, asset), len(self.node_ids))


def _leg_key(leg: Leg) -> tuple[str, str, str]:
    return (leg.venue, leg.market.symbol, leg.side.value)


def enumerate_cycles(
    markets: Sequence[Market],
    max_legs: int = 3,
    start_assets: Collection[str] | None = None,
    inventory: Mapping[str, Collection[str]] | None = None,
) -> list[Cycle]:
    """Every simple cycle of 2..``max_legs`` trade legs, each once, with ids 0..n-1 in a stable order.

    ``inventory`` maps an asset to the venues where it is held; between any two of them the asset
    moves for free (an inventory edge), which is what turns cross-venue prices into cycles.
    With ``start_assets`` None each cycle appears in its lexicographically smallest rotation (by
    (venue, symbol, side) of its legs); otherwise once per start asset it passes through, in the
    smallest rotation that starts (and ends) at that asset.
    """
    if max_legs < 2:
        return []
    graph = _Graph(markets, inventory or {})
    found: list[tuple[int, ...]] = []
    starts = set(start_assets) if start_assets is not None else None
    for first in range(len(graph.legs)):
        start_asset = graph.asset_of[graph.src[first]]
        if starts is not None and start_asset not in starts:
            continue
        _search(graph, first, max_legs, starts is not None, found)
    found.sort(key=lambda edges: [_leg_key(graph.legs[e]) for e in edges])
    return [Cycle(i, tuple(graph.legs[e] for e in edges)) for i, edges in enumerate(found)]


def _search(graph: _Graph, first: int, max_legs: int, by_start_asset: bool,
            found: list[tuple[int, ...]]) -> None:
    """Depth-first extension of paths starting with edge ``first``, which must be the rotation's head.

    A later leg may not rank below ``first`` when it could also head this rotation (any leg without
    ``start_assets``; a leg leaving the same start asset with them): that rotation is found from it.
    """
    start = graph.src[first]
    start_asset = graph.asset_of[start]
    closers = (start, *graph.hops[start])  # the last leg may land here (a hop closes the cycle)
    src, dst, out, hops, asset_of, between = (
        graph.src, graph.dst, graph.out, graph.hops, graph.asset_of, graph.between)
    market_of = graph.market_of

    def may_follow(e: int) -> bool:
        if e > first:
            return True
        return by_start_asset and asset_of[src[e]] != start_asset

    def entries(node: int, visited: set[int]) -> Iterable[int]:
        """Where the next leg may start: here, or across one inventory hop to an unvisited node."""
        yield node
        for other in hops[node]:
            if other not in visited:
                yield other

    path = [first]
    markets = {graph.market_of[first]}
    visited = {start, dst[first]}

    def extend(node: int) -> None:
        depth = len(path)
        for entry in entries(node, visited):
            if entry != node:
                visited.add(entry)
            for closer in closers:
                if closer != start and closer in visited:
                    continue
                for e in between.get((entry, closer), ()):
                    if may_follow(e) and market_of[e] not in markets:
                        found.append((*path, e))
            if depth + 1 < max_legs:
                for e in out[entry]:
                    nxt = dst[e]
                    if nxt in visited or not may_follow(e):
                        continue
                    market = market_of[e]
                    if market in markets:
                        continue
                    path.append(e)
                    markets.add(market)
                    visited.add(nxt)
                    extend(nxt)
                    visited.discard(nxt)
                    markets.discard(market)
                    path.pop()
            if entry != node:
                visited.discard(entry)

    extend(dst[first])


def index_by_market(cycles: Sequence[Cycle]) -> dict[MarketKey, list[int]]:
    """Positions in ``cycles`` of the cycles through each market (equal to ids for enumerate_cycles)."""
    index: dict[MarketKey, list[int]] = {}
    for i, cycle in enumerate(cycles):
        for key in dict.fromkeys(leg.market.key for leg in cycle.legs):
            index.setdefault(key, []).append(i)
    return index


def markets_of(cycles: Iterable[Cycle]) -> list[Market]:
    """The distinct markets the cycles trade, in first-seen order."""
    return list({leg.market.key: leg.market for leg in chain.from_iterable(c.legs for c in cycles)}.values())
