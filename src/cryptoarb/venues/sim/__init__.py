"""Simulated exchanges: a deterministic market model, its matching engine and a ``Venue`` over them."""

from cryptoarb.venues.sim.market import EPOCH_MS, SimMarket
from cryptoarb.venues.sim.universe import AssetSpec, PairSpec, Tier, Universe, build_universe
from cryptoarb.venues.sim.venue import SimVenue

__all__ = ["EPOCH_MS", "AssetSpec", "PairSpec", "SimMarket", "SimVenue", "Tier", "Universe", "build_universe"]
