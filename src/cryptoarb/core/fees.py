"""Fee adjustments applied to markets before cycles are priced.

KuCoin discounts trading fees paid in KCS (20 % at the time of writing). With ``detector.fee_discount``
set, every taker and maker fee is reduced by that fraction before detection and sizing. The discounted
fee is still booked in the market's own fee currency: an approximation that prices the cycle right and
leaves the KCS balance untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

from cryptoarb.model import Market


def discounted(markets: Iterable[Market], discount: float) -> list[Market]:
    if discount <= 0:
        return list(markets)
    keep = 1 - Decimal(repr(discount))
    return [replace(m, taker_fee=m.taker_fee * keep, maker_fee=m.maker_fee * keep) for m in markets]
