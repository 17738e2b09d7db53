"""Orders as the simulator keeps them, the request parser, and their KuCoin JSON views.

Classic endpoints (``/api/v1/orders``) and high-frequency ones (``/api/v1/hf/orders``) show the same
order with different field sets; both are produced here so the two API families stay consistent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptoarb.venues.kucoin.sim_accounts import ZERO, dstr


class ApiError(Exception):
    """A KuCoin error answer: HTTP ``status`` with ``{"code": code, "msg": msg}``."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def bad_param(msg: str) -> ApiError:
    return ApiError(400, "400100", msg)


def order_not_found() -> ApiError:
    return ApiError(400, "400100", "order not exist.")


def not_cancelable() -> ApiError:
    return ApiError(400, "400100", "order_not_exist_or_not_allow_to_cancel")


def balance_insufficient() -> ApiError:
    return ApiError(400, "200004", "Balance insufficient!")


def order_forbidden() -> ApiError:
    return ApiError(400, "400200", "Forbidden to place an order")

_CLIENT_OID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_TIME_IN_FORCE = frozenset({"GTC", "GTT", "IOC", "FOK"})


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_oid: str
    symbol: str
    side: str
    type: str
    price: Decimal
    size: Decimal
    funds: Decimal
    time_in_force: str
    post_only: bool
    cancel_after_s: int

    @classmethod
    def parse(cls, body: Any) -> OrderRequest:
        if not isinstance(body, dict):
            raise bad_param("Parameter error: body must be a JSON object")
        oid = body.get("clientOid")
        if not oid:
            raise bad_param("validation.createOrder.clientOidIsRequired")
        if not isinstance(oid, str) or not _CLIENT_OID.match(oid):
            raise bad_param("clientOid must be 1-40 letters, digits, _ or -")
        side, kind = body.get("side"), body.get("type", "limit")
        if side not in ("buy", "sell"):
            raise bad_param("side not in the given range!")
        if kind not in ("limit", "market"):
            raise bad_param("type not in the given range!")
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise bad_param("symbol is required")
        tif = body.get("timeInForce") or "GTC"
        if tif not in _TIME_IN_FORCE:
            raise bad_param("timeInForce not in the given range!")
        price, size, funds = (_decimal(body, k) for k in ("price", "size", "funds"))
        if kind == "limit" and (price <= 0 or size <= 0):
            raise bad_param("price and size are required for limit orders")
        if kind == "market" and (size > 0) == (funds > 0):
            raise bad_param("market orders need exactly one of size and funds")
        return cls(client_oid=oid, symbol=symbol, side=side, type=kind,
                   price=price if kind == "limit" else ZERO, size=size,
                   funds=funds if kind == "market" else ZERO,
                   time_in_force=tif if kind == "limit" else "IOC", post_only=bool(body.get("postOnly")),
                   cancel_after_s=int(body.get("cancelAfter") or 0))


def _decimal(body: dict[str, Any], key: str) -> Decimal:
    raw = body.get(key)
    if raw is None or raw == "":
        return ZERO
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise bad_param(f"{key} is not a number") from None
    if not value.is_finite() or value < 0:
        raise bad_param(f"{key} is not a number")
    return value


@dataclass(slots=True)
class SimOrder:
    id: str
    req: OrderRequest
    created_ms: int
    fee_currency: str
    deal_size: Decimal = ZERO
    deal_funds: Decimal = ZERO
    fee: Decimal = ZERO
    active: bool = True
    cancel_exist: bool = False
    cancelled_size: Decimal = ZERO
    updated_ms: int = 0
    hold_currency: str = ""
    hold_left: Decimal = ZERO
    trades: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        """Base size still to fill (size orders; funds-only market orders are final at once)."""
        return max(ZERO, self.req.size - self.deal_size - self.cancelled_size)

    @property
    def status(self) -> str:
        return "open" if self.active else "done"


def classic_view(o: SimOrder) -> dict[str, Any]:
    """``GET /api/v1/orders/{orderId}`` and ``/api/v1/order/client-order/{clientOid}``."""
    r = o.req
    return {
        "id": o.id, "symbol": r.symbol, "opType": "DEAL", "type": r.type, "side": r.side,
        "price": dstr(r.price), "size": dstr(r.size), "funds": dstr(r.funds), "dealFunds": dstr(o.deal_funds),
        "dealSize": dstr(o.deal_size), "fee": dstr(o.fee), "feeCurrency": o.fee_currency, "stp": "",
        "stop": "", "stopTriggered": False, "stopPrice": "0", "timeInForce": r.time_in_force,
        "postOnly": r.post_only, "hidden": False, "iceberg": False, "visibleSize": "0",
        "cancelAfter": r.cancel_after_s, "channel": "API", "clientOid": r.client_oid, "remark": "",
        "tags": "",
        "isActive": o.active, "cancelExist": o.cancel_exist, "createdAt": o.created_ms, "tradeType": "TRADE",
    }


def hf_view(o: SimOrder) -> dict[str, Any]:
    """``GET /api/v1/hf/orders/{orderId}?symbol=`` and ``.../client-order/{clientOid}?symbol=``."""
    r = o.req
    return {
        "id": o.id, "clientOid": r.client_oid, "symbol": r.symbol, "opType": "DEAL", "type": r.type,
        "side": r.side, "price": dstr(r.price), "size": dstr(r.size), "funds": dstr(r.funds),
        "dealSize": dstr(o.deal_size), "dealFunds": dstr(o.deal_funds), "fee": dstr(o.fee),
        "feeCurrency": o.fee_currency, "stp": None, "timeInForce": r.time_in_force, "postOnly": r.post_only,
        "hidden": False, "iceberg": False, "visibleSize": "0", "cancelAfter": r.cancel_after_s,
        "channel": "API", "remark": None, "tags": None, "cancelExist": o.cancel_exist, "tradeType": "TRADE",
        "inOrderBook": o.active, "cancelledSize": dstr(o.cancelled_size), "cancelledFunds": "0",
        "remainSize": dstr(o.remaining if o.active else ZERO), "remainFunds": "0", "active": o.active,
        "createdAt": o.created_ms, "lastUpdatedAt": o.updated_ms or o.created_ms,
    }


def hf_sync_view(o: SimOrder) -> dict[str, Any]:
    """``POST /api/v1/hf/orders/sync``: the order's state once matching is done."""
    return {"orderId": o.id, "clientOid": o.req.client_oid, "orderTime": o.created_ms,
            "originSize": dstr(o.req.size), "dealSize": dstr(o.deal_size),
            "remainSize": dstr(o.remaining if o.active else ZERO), "canceledSize": dstr(o.cancelled_size),
            "status": o.status, "matchTime": o.updated_ms or o.created_ms}


def order_event(o: SimOrder, kind: str, now_ms: int, match: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``data`` of a ``/spotMarket/tradeOrdersV2`` push; ``kind``: received/open/match/filled/canceled."""
    r = o.req
    status = {"received": "new", "open": "open", "match": "match"}.get(kind, "done")
    data: dict[str, Any] = {
        "symbol": r.symbol, "orderType": r.type, "side": r.side, "orderId": o.id, "type": kind,
        "orderTime": o.created_ms, "originSize": dstr(r.size), "size": dstr(r.size),
        "filledSize": dstr(o.deal_size), "price": dstr(r.price), "clientOid": r.client_oid,
        "remainSize": dstr(o.remaining if status != "done" else ZERO), "status": status,
        "ts": now_ms * 1_000_000,
    }
    if r.funds:
        data["originFunds"] = dstr(r.funds)
    if kind == "canceled":
        data["canceledSize"] = dstr(o.cancelled_size)
    if match:
        data.update(match)
    return data
