"""KuCoin spot REST endpoints of the simulator (reference §A.1), classic and high-frequency.

Every handler is tagged with its rate-limit pool and weight; ``sim_auth.gatekeeper`` checks signatures
and quotas before it runs. Answers use KuCoin's envelope ``{"code": "200000", "data": ...}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from cryptoarb.venues.kucoin.sim_accounts import dstr
from cryptoarb.venues.kucoin.sim_auth import endpoint, kucoin_json
from cryptoarb.venues.kucoin.sim_config import SimServerConfig
from cryptoarb.venues.kucoin.sim_exchange import SimExchange
from cryptoarb.venues.kucoin.sim_orders import (
    OrderRequest,
    SimOrder,
    bad_param,
    classic_view,
    hf_sync_view,
    hf_view,
    order_not_found,
)
from cryptoarb.venues.kucoin.sim_ws import Tokens
from cryptoarb.venues.sim.universe import STABLES

_QUOTE_DECIMALS = {"USDT": 6, "USDC": 6, "DAI": 6, "BTC": 10, "ETH": 9, "KCS": 8, "TRX": 6}
_TURNOVER_DEPTHS = 40.0  # synthetic 24 h turnover, in multiples of a pair's top-of-book depth


def ok(data: Any) -> web.Response:
    return kucoin_json({"code": "200000", "data": data})


class RestApi:
    def __init__(self, exchange: SimExchange, tokens: Tokens, config: SimServerConfig,
                 clock_ms: Callable[[], int]) -> None:
        self.ex = exchange
        self.tokens = tokens
        self.config = config
        self.clock_ms = clock_ms
        self._symbols = orjson.dumps({"code": "200000", "data": self._symbol_rows()})
        self._currencies = orjson.dumps({"code": "200000", "data": self._currency_rows()})
        self._all_tickers: tuple[float, bytes] = (float("-inf"), b"")

    def routes(self) -> list[web.RouteDef]:
        g, p, d = web.get, web.post, web.delete
        return [
            g("/api/v1/timestamp", self.timestamp), g("/api/v1/status", self.status),
            g("/api/v3/currencies", self.currencies), g("/api/v2/symbols", self.symbols),
            g("/api/v1/market/allTickers", self.all_tickers),
            g("/api/v1/market/orderbook/level2_{limit:20|100}", self.part_book),
            g("/api/v3/market/orderbook/level2", self.full_book),
            p("/api/v1/bullet-public", self.bullet_public), p("/api/v1/bullet-private", self.bullet_private),
            g("/api/v3/margin/symbols", self.margin_symbols),
            g("/api/v1/isolated/symbols", self.isolated_symbols),
            g("/api/v1/hf/accounts/opened", self.hf_opened), g("/api/ua/v1/account/mode", self.account_mode),
            g("/api/v1/accounts", self.accounts), g("/api/v1/trade-fees", self.trade_fees),
            p("/api/v1/orders", self.create_classic), p("/api/v1/hf/orders", self.create_hf),
            p("/api/v1/hf/orders/sync", self.create_hf_sync),
            g("/api/v1/orders", self.list_classic), g("/api/v1/hf/orders/active", self.list_hf_active),
            g("/api/v1/fills", self.fills_classic), g("/api/v1/hf/fills", self.fills_hf),
            g("/api/v1/orders/{orderId}", self.get_classic),
            d("/api/v1/orders/{orderId}", self.cancel_classic),
            g("/api/v1/order/client-order/{clientOid}", self.get_classic),
            d("/api/v1/order/client-order/{clientOid}", self.cancel_classic),
            d("/api/v1/hf/orders/sync/client-order/{clientOid}", self.cancel_hf_sync),
            d("/api/v1/hf/orders/sync/{orderId}", self.cancel_hf_sync),
            g("/api/v1/hf/orders/client-order/{clientOid}", self.get_hf),
            d("/api/v1/hf/orders/client-order/{clientOid}", self.cancel_hf),
            g("/api/v1/hf/orders/{orderId}", self.get_hf), d("/api/v1/hf/orders/{orderId}", self.cancel_hf),
        ]

    # -- public ---------------------------------------------------------------------------------------
    @endpoint("public", 3)
    async def timestamp(self, request: web.Request) -> web.Response:
        return kucoin_json({"code": "200000", "msg": "success", "data": self.clock_ms()})

    @endpoint("public", 3)
    async def status(self, request: web.Request) -> web.Response:
        return ok({"status": "open", "msg": ""})

    @endpoint("public", 3)
    async def currencies(self, request: web.Request) -> web.Response:
        return web.Response(body=self._currencies, content_type="application/json")

    @endpoint("public", 4)
    async def symbols(self, request: web.Request) -> web.Response:
        return web.Response(body=self._symbols, content_type="application/json")

    @endpoint("public", 15)
    async def all_tickers(self, request: web.Request) -> web.Response:
        at, body = self._all_tickers
        now = time.monotonic()
        if now - at >= self.config.all_tickers_ttl_s:
            data = {"time": self.clock_ms(), "ticker": self._ticker_rows()}
            body = orjson.dumps({"code": "200000", "data": data})
            self._all_tickers = (now, body)
        return web.Response(body=body, content_type="application/json")

    @endpoint("public", 2)
    async def part_book(self, request: web.Request) -> web.Response:
        return ok(self._book(self._symbol(request), int(request.match_info["limit"])))

    @endpoint("public", 10)
    async def bullet_public(self, request: web.Request) -> web.Response:
        return ok(self._bullet(request, private=False))

    # -- private --------------------------------------------------------------------------------------
    @endpoint("spot", 3, private=True)
    async def full_book(self, request: web.Request) -> web.Response:
        return ok(self._book(self._symbol(request), None))

    @endpoint("spot", 10, private=True)
    async def bullet_private(self, request: web.Request) -> web.Response:
        return ok(self._bullet(request, private=True))

    @endpoint("management", 20, private=True)
    async def margin_symbols(self, request: web.Request) -> web.Response:
        return ok({"timestamp": self.clock_ms(), "items": []})

    @endpoint("management", 20, private=True)
    async def isolated_symbols(self, request: web.Request) -> web.Response:
        return ok([])

    @endpoint("spot", 30, private=True)
    async def hf_opened(self, request: web.Request) -> web.Response:
        return ok(self.ex.hf)

    @endpoint("management", 2, private=True)
    async def account_mode(self, request: web.Request) -> web.Response:
        return ok({"selfAccountMode": "CLASSIC"})

    @endpoint("management", 5, private=True)
    async def accounts(self, request: web.Request) -> web.Response:
        kind = request.query.get("type")
        accounts = self.ex.accounts
        if kind and kind != accounts.account_type:
            return ok([])
        return ok(accounts.rows(request.query.get("currency") or None))

    @endpoint("spot", 3, private=True)
    async def trade_fees(self, request: web.Request) -> web.Response:
        symbols = [s for s in request.query.get("symbols", "").split(",") if s]
        if not symbols:
            raise bad_param("symbols is required")
        if len(symbols) > 10:
            raise bad_param("symbols size invalid, max 10")
        rows = []
        for sym in symbols:
            taker, maker = self.ex.fee_rates(sym)
            rows.append({"symbol": sym, "takerFeeRate": dstr(taker), "makerFeeRate": dstr(maker)})
        return ok(rows)

    @endpoint("spot", 2, private=True)
    async def create_classic(self, request: web.Request) -> web.Response:
        order = await self._place(request)
        return ok({"orderId": order.id})

    @endpoint("spot", 1, private=True)
    async def create_hf(self, request: web.Request) -> web.Response:
        order = await self._place(request)
        return ok({"orderId": order.id, "clientOid": order.req.client_oid})

    @endpoint("spot", 1, private=True)
    async def create_hf_sync(self, request: web.Request) -> web.Response:
        return ok(hf_sync_view(await self._place(request)))

    @endpoint("spot", 2, private=True)
    async def get_classic(self, request: web.Request) -> web.Response:
        return ok(classic_view(self._order(request)))

    @endpoint("spot", 2, private=True)
    async def get_hf(self, request: web.Request) -> web.Response:
        return ok(hf_view(self._order(request, need_symbol=True)))

    @endpoint("spot", 3, private=True)
    async def cancel_classic(self, request: web.Request) -> web.Response:
        order = self.ex.cancel(self._order(request))
        if "clientOid" in request.match_info:
            return ok({"cancelledOrderId": order.id, "clientOid": order.req.client_oid})
        return ok({"cancelledOrderIds": [order.id]})

    @endpoint("spot", 1, private=True)
    async def cancel_hf(self, request: web.Request) -> web.Response:
        order = self.ex.cancel(self._order(request, need_symbol=True))
        if "clientOid" in request.match_info:
            return ok({"clientOid": order.req.client_oid})
        return ok({"orderId": order.id})

    @endpoint("spot", 1, private=True)
    async def cancel_hf_sync(self, request: web.Request) -> web.Response:
        order = self.ex.cancel(self._order(request, need_symbol=True))
        view = hf_sync_view(order)
        return ok({k: view[k] for k in ("originSize", "dealSize", "remainSize", "canceledSize", "status")})

    @endpoint("spot", 2, private=True)
    async def list_classic(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "active")
        sym = request.query.get("symbol")
        items = [classic_view(o) for o in reversed(self.ex.orders.values())
                 if o.active == (status == "active") and (not sym or o.req.symbol == sym)]
        return ok({"currentPage": 1, "pageSize": len(items), "totalNum": len(items), "totalPage": 1,
                   "items": items})

    @endpoint("spot", 2, private=True)
    async def list_hf_active(self, request: web.Request) -> web.Response:
        sym = self._symbol(request)
        return ok([hf_view(o) for o in self.ex.orders.values() if o.active and o.req.symbol == sym])

    @endpoint("spot", 10, private=True)
    async def fills_classic(self, request: web.Request) -> web.Response:
        items = self._fills(request)
        return ok({"currentPage": 1, "pageSize": len(items), "totalNum": len(items), "totalPage": 1,
                   "items": items})

    @endpoint("spot", 2, private=True)
    async def fills_hf(self, request: web.Request) -> web.Response:
        return ok({"items": self._fills(request), "lastId": 0})

    # -- helpers --------------------------------------------------------------------------------------
    async def _place(self, request: web.Request) -> SimOrder:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            raise bad_param("Parameter error: body is not JSON") from None
        return self.ex.place(OrderRequest.parse(body))

    def _order(self, request: web.Request, *, need_symbol: bool = False) -> SimOrder:
        symbol = request.query.get("symbol")
        if need_symbol and not symbol:
            raise bad_param("symbol is required")
        info = request.match_info
        order = self.ex.find(order_id=info.get("orderId"), client_oid=info.get("clientOid"), symbol=symbol)
        if order is None:
            raise order_not_found()
        return order

    def _symbol(self, request: web.Request) -> str:
        sym = request.query.get("symbol", "")
        if not sym:
            raise bad_param("symbol is required")
        self.ex.market_of(sym)
        return sym

    def _book(self, sym: str, limit: int | None) -> dict[str, Any]:
        book = self.ex.sync(sym)
        fmt = self.ex.fmt[sym]
        bids, asks = book.levels(limit)
        return {"time": self.clock_ms(), "sequence": str(book.seq),
                "bids": [[fmt.price(p), fmt.size(s)] for p, s in bids],
                "asks": [[fmt.price(p), fmt.size(s)] for p, s in asks]}

    def _bullet(self, request: web.Request, *, private: bool) -> dict[str, Any]:
        limits = self.config.ws
        return {"token": self.tokens.issue(private=private), "instanceServers": [{
            "endpoint": f"ws://{request.host}/", "encrypt": False, "protocol": "websocket",
            "pingInterval": limits.ping_interval_ms, "pingTimeout": limits.ping_timeout_ms}]}

    def _fills(self, request: web.Request) -> list[dict[str, Any]]:
        order_id = request.query.get("orderId")
        sym = request.query.get("symbol")
        out: list[dict[str, Any]] = []
        for o in self.ex.orders.values():
            if (order_id and o.id != order_id) or (sym and o.req.symbol != sym):
                continue
            out.extend({"symbol": o.req.symbol, "tradeId": t["tradeId"], "orderId": o.id,
                        "counterOrderId": "", "side": o.req.side, "liquidity": t["liquidity"],
                        "forceTaker": False,
                        "price": dstr(t["price"]), "size": dstr(t["size"]), "funds": dstr(t["funds"]),
                        "fee": dstr(t["fee"]), "feeRate": dstr(t["fee"] / t["funds"]) if t["funds"] else "0",
                        "feeCurrency": o.fee_currency, "stop": "",
                        "tradeType": "TRADE", "type": o.req.type, "createdAt": t["time"]} for t in o.trades)
        return out

    def _symbol_rows(self) -> list[dict[str, Any]]:
        rows = []
        for pair in self.ex.universe.pairs:
            m = pair.market
            quote_inc = min(m.price_tick, Decimal(1).scaleb(-_QUOTE_DECIMALS.get(m.quote, 8)))
            rows.append({
                "symbol": m.symbol, "name": m.symbol, "baseCurrency": m.base, "quoteCurrency": m.quote,
                "feeCurrency": m.quote,
                "market": "USDS" if m.quote in STABLES else "BTC" if m.quote == "BTC" else "ALTS",
                "baseMinSize": dstr(m.min_size), "quoteMinSize": dstr(m.min_funds),
                "baseMaxSize": "10000000000", "quoteMaxSize": "99999999",
                "baseIncrement": dstr(m.size_increment),
                "quoteIncrement": dstr(quote_inc), "priceIncrement": dstr(m.price_tick),
                "priceLimitRate": "0.1",
                "minFunds": dstr(m.min_funds), "isMarginEnabled": False, "enableTrading": m.enabled,
                "feeCategory": 1, "makerFeeCoefficient": "1.00", "takerFeeCoefficient": "1.00", "st": False,
                "callauctionIsEnabled": False, "callauctionPriceFloor": None, "callauctionPriceCeiling": None,
                "callauctionFirstStageStartTime": None, "callauctionSecondStageStartTime": None,
                "callauctionThirdStageStartTime": None, "tradingStartTime": None})
        return rows

    def _currency_rows(self) -> list[dict[str, Any]]:
        return [{
            "currency": a.name, "name": a.name, "fullName": a.name, "precision": 8, "confirms": None,
            "contractAddress": None, "isMarginEnabled": False, "isDebitEnabled": False, "chains": [{
                "chainName": a.name, "withdrawalMinSize": "0", "depositMinSize": "0", "withdrawFeeRate": "0",
                "withdrawalMinFee": "0", "isWithdrawEnabled": True, "isDepositEnabled": True, "confirms": 1,
                "preConfirms": 1, "contractAddress": "", "withdrawPrecision": 8, "maxWithdraw": None,
                "maxDeposit": None, "needTag": False, "chainId": a.name.lower()}],
        } for a in self.ex.universe.assets]

    def _ticker_rows(self) -> list[dict[str, Any]]:
        ex = self.ex
        rows = []
        for pair in ex.universe.pairs:
            m = pair.market
            book = ex.books[m.symbol]
            fmt = ex.fmt[m.symbol]
            bid, bid_size, ask, ask_size = book.top
            mid = (bid + ask) / 2 if bid and ask else bid or ask
            last = ex.last_trade.get(m.symbol)
            last_price = dstr(last[0]) if last else fmt.price(bid)
            turnover = pair.top_depth_usd * _TURNOVER_DEPTHS / max(ex.market.fair_usd(m.quote), 1e-12)
            rows.append({
                "symbol": m.symbol, "symbolName": m.symbol, "buy": fmt.price(bid),
                "bestBidSize": fmt.size(bid_size), "sell": fmt.price(ask), "bestAskSize": fmt.size(ask_size),
                "changeRate": "0", "changePrice": "0",
                "high": fmt.price(mid * 1.02), "low": fmt.price(mid * 0.98),
                "vol": fmt.size(turnover / mid) if mid else "0", "volValue": f"{turnover:.8f}",
                "last": last_price, "averagePrice": fmt.price(mid), "takerFeeRate": dstr(m.taker_fee),
                "makerFeeRate": dstr(m.maker_fee), "takerCoefficient": "1", "makerCoefficient": "1"})
        return rows
