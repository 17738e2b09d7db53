"""The private KuCoin stream of a live ``cryptoarb run``: our orders' and balances' pushes, wired to the engine.

:class:`PrivateFeed` runs :class:`~cryptoarb.venues.kucoin.private_ws.KucoinPrivateStream` as the supervised
task ``private-stream`` (a fresh stream on every restart) and

- feeds every order push to the live executor (``LiveExecutor.follow``), which resolves orders from them;
  while the stream is live the venue only waits for KuCoin's acknowledgement of an order
  (:meth:`~cryptoarb.venues.kucoin.rest.KucoinRest.acknowledge_order`) and its final state arrives pushed;
- tells the executor when the stream stops being live (``LiveExecutor.order_updates_lost``): KuCoin does not
  replay what it pushed meanwhile, so the orders waiting for a push are looked up over REST at once (an order
  whose answer arrives after the loss too), and until the stream is back (``order_updates_resumed``)
  orders are placed with a REST lookup of their state;
- applies balance pushes to the engine's ledger (:meth:`Ledger.set_balances`, its reconciliation hook) when
  nothing is in flight. The ledger books an execution's fills when it completes; a balance pushed while
  orders are in flight already holds some of those fills, so applying it then would count them twice. The
  latest push per asset is held until the engine is idle, and dropped if the stream is lost meanwhile
  (a newer change may have been missed).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp

from cryptoarb.model import Balance, Notice
from cryptoarb.venues.kucoin.private_ws import BalanceUpdate, FeeRate, KucoinPrivateStream, PrivateWsOptions
from cryptoarb.venues.kucoin.signing import Credentials

if TYPE_CHECKING:
    from cryptoarb.engine import Engine
    from cryptoarb.execution.live import LiveExecutor

log = logging.getLogger("cryptoarb.run.private")

_TOTALS = ("connects", "messages", "order_updates", "balance_updates", "decode_errors", "errors")


class PrivateFeed:
    def __init__(self, http: aiohttp.ClientSession, credentials: Credentials, rest_url: str, *, venue: str,
                 engine: Engine, executor: LiveExecutor, fee_rate: FeeRate, clock: Callable[[], float],
                 on_notice: Callable[[Notice], None] | None = None,
                 options: PrivateWsOptions | None = None) -> None:
        self._http = http
        self._creds = credentials
        self._rest_url = rest_url
        self.venue = venue
        self.engine = engine
        self.executor = executor
        self._fee_rate = fee_rate
        self._clock = clock
        self._on_notice = on_notice
        self.options = options
        self.stream: KucoinPrivateStream | None = None
        self._retired: Counter[str] = Counter()  # counters of the streams earlier restarts replaced
        self._held: dict[str, BalanceUpdate] = {}
        self.lost = 0
        """Times the stream stopped being live (pushes may have been missed)."""
        self.balances_applied = 0
        self.balances_dropped = 0
        self.balance_corrections = 0
        """Amounts the ledger held that a push changed (the ledger's booking had drifted from the account)."""

    # -- the supervised task -------------------------------------------------------------------------
    async def run(self) -> None:
        """Stay subscribed until cancelled; raises what stopped the stream (refused credentials)."""
        stream = KucoinPrivateStream(
            self._http, self._creds, self._rest_url, self._clock, venue=self.venue, on_balance=self.on_balance,
            on_notice=self._on_notice, fee_rate=self._fee_rate, options=self.options, on_live=self.on_live)
        if self.stream is not None:
            old = self.stream.stats()
            self._retired.update({k: int(old[k]) for k in _TOTALS})
        self.stream = stream
        try:
            await self.executor.follow(stream)  # subscribes before the stream connects: nothing is missed
        finally:
            await stream.close()

    def live(self) -> bool:
        return self.stream is not None and self.stream.live

    def on_live(self, live: bool) -> None:
        if live:
            self.executor.order_updates_resumed()
            return
        self.lost += 1
        self.executor.order_updates_lost()
        self.balances_dropped += len(self._held)
        self._held.clear()

    # -- balances ------------------------------------------------------------------------------------
    def on_balance(self, update: BalanceUpdate) -> None:
        self._held[update.asset] = update
        self.reconcile()

    def reconcile(self) -> None:
        """Apply the balances held back, if nothing is in flight (called on each push and each executor tick)."""
        if not self._held or self.engine.pending:
            return
        held, self._held = self._held, {}
        ledger = self.engine.ledger
        free = {asset: amount for (venue, asset), amount in ledger.holdings().items() if venue == self.venue}
        for asset, update in held.items():
            if free.get(asset, Decimal(0)) != update.available:
                self.balance_corrections += 1
            free[asset] = update.available
        ledger.set_balances([Balance(self.venue, asset, amount, amount) for asset, amount in free.items()])
        self.balances_applied += len(held)

    # -- status --------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.stream.stats() if self.stream is not None else {"state": "idle", "live": False}
        totals = {k: self._retired[k] + int(stats.get(k, 0)) for k in _TOTALS}
        return {**stats, **totals, "enabled": True, "reconnects": max(0, totals["connects"] - 1),
                "lost": self.lost,
                "balances": {"applied": self.balances_applied, "held": len(self._held),
                             "dropped": self.balances_dropped, "corrections": self.balance_corrections}}


def disabled_status() -> dict[str, Any]:
    """The private stream's status in paper and watch runs: nothing private is started."""
    return {"enabled": False, "state": "off", "live": False}
