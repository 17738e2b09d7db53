"""REST gatekeeping of the simulator: KC-API signature checks and KuCoin's weighted rate-limit pools.

Each endpoint is tagged with its pool and weight (reference §A.1 table). Pools hold a quota of weight
per 30 s window: Public per client IP, Spot and Management per API key. Every answer carries
``gw-ratelimit-limit``, ``gw-ratelimit-remaining`` and ``gw-ratelimit-reset`` (ms); an exhausted pool
answers HTTP 429 with code 429000.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import orjson
from aiohttp import web

from cryptoarb.venues.kucoin.signing import Credentials, verify
from cryptoarb.venues.kucoin.sim_config import RestQuotas
from cryptoarb.venues.kucoin.sim_faults import Faults
from cryptoarb.venues.kucoin.sim_orders import ApiError

Pool = Literal["public", "spot", "management"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RATE_LIMITED = ("429000", "Too many requests. System-level rate limit exceeded.")


@dataclass(frozen=True, slots=True)
class Endpoint:
    pool: Pool
    weight: int
    private: bool


def endpoint(pool: Pool, weight: int, *, private: bool = False) -> Callable[[Handler], Handler]:
    """Tag a handler with its rate-limit pool, weight and whether it needs a signed request."""
    def tag(handler: Handler) -> Handler:
        handler.kc_endpoint = Endpoint(pool, weight, private)  # type: ignore[attr-defined]
        return handler
    return tag


class Pools:
    def __init__(self, quotas: RestQuotas, clock: Callable[[], float] = time.monotonic) -> None:
        self.quotas = quotas
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # (pool, who) -> (ends at, used)

    def charge(self, pool: Pool, who: str, weight: int) -> tuple[bool, dict[str, str]]:
        """Spend ``weight``; (allowed, the gw-ratelimit headers to send)."""
        now = self._clock()
        quota = getattr(self.quotas, pool)
        ends, used = self._windows.get((pool, who), (0.0, 0))
        if now >= ends:
            ends, used = now + self.quotas.window_s, 0
        allowed = used + weight <= quota
        if allowed:
            used += weight
        self._windows[(pool, who)] = (ends, used)
        return allowed, {"gw-ratelimit-limit": str(quota), "gw-ratelimit-remaining": str(quota - used),
                         "gw-ratelimit-reset": str(max(0, int((ends - now) * 1000)))}


def kucoin_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, headers=headers,
                        content_type="application/json")


def error_response(status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return kucoin_json({"code": code, "msg": msg}, status, headers)


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def gatekeeper(creds: Credentials, pools: Pools, faults: Faults, clock_ms: Callable[[], int]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_error = request.match_info.http_exception
        if route_error is not None:
            return error_response(route_error.status, "404000" if route_error.status == 404 else "400000",
                                  route_error.reason)
        spec: Endpoint | None = getattr(request.match_info.handler, "kc_endpoint", None)
        if spec is None:  # websocket endpoint and the /_sim admin routes
            return await handler(request)
        who = request.remote or "unknown"
        if spec.private:
            body = await request.text()
            raw = request.raw_path
            failure = verify(request.headers, request.method, (raw, unquote(raw)), body, creds, clock_ms())
            if failure is not None:
                return error_response(401, failure.code, failure.msg)
            who = creds.key
        allowed, headers = pools.charge(spec.pool, who, spec.weight)
        if faults.http_429_burst > 0:
            faults.http_429_burst -= 1
            allowed = False
        if not allowed:
            return error_response(429, *RATE_LIMITED, headers)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.msg)
        response.headers.update(headers)
        return response

    return middleware
