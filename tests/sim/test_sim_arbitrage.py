"""The simulator must produce what the engine is for: triangular cycles that pay after fees, briefly."""

from decimal import Decimal

from cryptoarb.config import SimSettings
from cryptoarb.model import BookUpdate, Side
from cryptoarb.venues.sim import SimVenue

FEES = 0.999**3
Triangle = tuple[str, str, str]  # X-USDT, X-Q, Q-USDT


def _triangles(symbols: list[str]) -> list[Triangle]:
    have = set(symbols)
    out = []
    for symbol in symbols:
        base, quote = symbol.split("-")
        if quote != "USDT" and f"{base}-USDT" in have and f"{quote}-USDT" in have:
            out.append((f"{base}-USDT", symbol, f"{quote}-USDT"))
    return out


def _best_return(t: Triangle, books: dict[str, BookUpdate]) -> tuple[float, str]:
    """Top-of-book net return of USDT->X->Q->USDT or the reverse, after three taker fees."""
    xu, xq, qu = (books[s] for s in t)
    forward = xq.bids[0][0] * qu.bids[0][0] / xu.asks[0][0] * FEES - 1
    reverse = xu.bids[0][0] / qu.asks[0][0] / xq.asks[0][0] * FEES - 1
    return (forward, "forward") if forward >= reverse else (reverse, "reverse")


async def _find(venue: SimVenue, seconds: float, min_return: float):
    triangles = _triangles(venue.universe.symbols)
    by_symbol: dict[str, list[Triangle]] = {}
    for t in triangles:
        for s in t:
            by_symbol.setdefault(s, []).append(t)
    books: dict[str, BookUpdate] = {}
    stream = venue.stream_books()
    try:
        async for batch in stream:
            touched = {t for u in batch for t in by_symbol.get(u.symbol, ())}
            books.update((u.symbol, u) for u in batch)
            for t in sorted(touched):
                r, direction = _best_return(t, books)
                if r > min_return:
                    return t, r, direction, books
            if venue.now() >= seconds:
                return None
    finally:
        await stream.aclose()
    return None


async def test_a_profitable_triangle_appears_and_can_be_taken():
    venue = SimVenue(SimSettings(), speed=0)
    found = await _find(venue, 60.0, 0.003)
    assert found is not None, "no USDT->X->Q->USDT cycle above 30 bps after fees in 60 s"
    t, r, direction, books = found
    assert set(t) & set(venue.market.mispriced()), "should come from an injected lagging quote"

    # Taking the top level of every leg leaves a worse cycle: two bots can't both take it.
    sides = (Side.BUY, Side.SELL, Side.SELL) if direction == "forward" else (Side.SELL, Side.BUY, Side.BUY)
    for symbol, side in zip(t, sides, strict=True):
        level = books[symbol].asks[0] if side is Side.BUY else books[symbol].bids[0]
        venue.consume(symbol, side, Decimal(repr(level[0])), Decimal(repr(level[1])))
    after = {s: venue.market.book(s) for s in t}
    assert _best_return(t, after)[0] < r


async def test_no_profitable_triangles_without_lagging_quotes():
    venue = SimVenue(SimSettings(mispricing_per_s=0.0, pairs=600, assets=200), speed=0)
    assert await _find(venue, 20.0, 0.0) is None
