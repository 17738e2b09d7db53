"""``StoreWriter``: takes events from the hot path without blocking it and writes them in batches.

``submit`` only converts an event to rows and appends them to a queue; ``run`` writes the queue in
transactions of up to ``batch_size`` rows, at the latest ``flush_interval_s`` after a row arrived.
When the queue is over ``max_queue`` only low-value rows (rejections, ticks) are dropped and counted;
opportunities, orders, fills, executions and notices always go in, so under a sustained overload
memory grows rather than the record losing a trade.

:meth:`StoreWriter.write_intent` is the one call that waits: the live executor awaits it before it
sends an order, so the order row (status ``new``) is committed before the venue can see the order and
a crash can never lose a sent order. Concurrent intents share one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

import orjson

from cryptoarb.model import (
    Balance,
    BookUpdate,
    Event,
    Execution,
    Notice,
    Opportunity,
    Order,
    OrderResult,
    OrderStatus,
    PlannedLeg,
    Rejection,
    Ticker,
)
from cryptoarb.storage.base import Batch, Row, Store, StoreError

log = logging.getLogger("cryptoarb.storage")

LOW_VALUE_TABLES = frozenset({"rejections", "ticks", "book_snapshots"})

Rows = list[tuple[str, Row]]
"""(table, row) pairs: what one event becomes."""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _leg(leg: PlannedLeg) -> dict[str, Any]:
    return {
        "venue": leg.venue, "symbol": leg.symbol, "side": leg.side.value,
        "limit_price": str(leg.limit_price), "size": str(leg.size),
        "amount_in": str(leg.amount_in), "amount_out": str(leg.amount_out),
        "fee": str(leg.fee), "fee_asset": leg.fee_asset, "asset_in": leg.asset_in,
        "asset_out": leg.asset_out, "book_age_ms": leg.book_age_ms,
    }


def opportunity_row(opp: Opportunity, status: str = "detected") -> Row:
    return (
        opp.id, opp.cycle_id, opp.kind, _json(opp.path), _json([_leg(leg) for leg in opp.legs]),
        str(opp.input), str(opp.output), str(opp.profit), opp.profit_usd, opp.net_return_bps,
        opp.detected_at, status,
    )


def rejection_row(rej: Rejection) -> Row:
    return (rej.cycle_id, _json(rej.path), rej.reason.value, rej.detail, rej.net_return_bps, rej.at)


def order_row(result: OrderResult) -> Row:
    o = result.order
    return (
        o.client_oid, o.opportunity_id, o.leg_index, o.venue, o.symbol, o.side.value, str(o.price),
        str(o.size), o.type, o.time_in_force, result.status.value, result.reason, o.created_at,
    )


def fill_rows(result: OrderResult) -> list[Row]:
    return [
        (f"{f.client_oid}:{n}", f.client_oid, f.opportunity_id, f.leg_index, f.venue, f.symbol,
         f.side.value, str(f.price), str(f.size), str(f.fee), f.fee_asset, f.at)
        for n, f in enumerate(result.fills)
    ]


def execution_row(ex: Execution) -> Row:
    return (ex.opportunity.id, str(ex.realized_profit), ex.realized_profit_usd, ex.fees_usd, ex.mode, ex.at)


def notice_row(notice: Notice) -> Row:
    return (notice.kind, notice.message, _json(notice.fields), notice.at)


def balance_row(balance: Balance, at: float) -> Row:
    return (balance.venue, balance.asset, str(balance.free), str(balance.total), at)


def tick_row(ticker: Ticker) -> Row:
    # Seconds, like every other timestamp in the store.
    return (ticker.venue, ticker.symbol, ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size,
            ticker.ts_ms / 1000)


def book_snapshot_row(update: BookUpdate) -> Row:
    return (update.venue, update.symbol, update.sequence, update.exchange_ts_ms,
            _json(update.bids), _json(update.asks), update.received_at)


def intent_row(order: Order) -> Row:
    return order_row(OrderResult(order=order, status=OrderStatus.NEW))


def event_rows(event: Event) -> Rows:
    if isinstance(event, Rejection):
        return [("rejections", rejection_row(event))]
    if isinstance(event, Opportunity):
        return [("opportunities", opportunity_row(event))]
    if isinstance(event, Execution):
        # The full opportunity row too: the execution is recorded even if its detection was not.
        rows: Rows = [("opportunities", opportunity_row(event.opportunity, "executed"))]
        for result in event.results:
            rows.append(("orders", order_row(result)))
            rows.extend(("fills", row) for row in fill_rows(result))
        rows.append(("executions", execution_row(event)))
        return rows
    if isinstance(event, Notice):
        return [("events", notice_row(event))]
    raise TypeError(f"not an event: {type(event).__name__}")


class StoreWriter:
    def __init__(self, store: Store, batch_size: int = 500, flush_interval_s: float = 0.5,
                 max_queue: int = 100_000) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size and max_queue must be >= 1, flush_interval_s > 0")
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.written: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.batches = 0
        self.errors = 0
        self.last_error = ""
        self.last_flush_latency_s = 0.0
        # One entry per event: its rows are always written in the same transaction, so a reader
        # never sees an execution without its fills.
        self._queue: deque[Rows] = deque()
        self._queued_rows = 0
        self._pending_since = 0.0
        self._submitted = 0
        self._written_entries = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._intents: list[tuple[list[Row], asyncio.Future[None]]] = []
        self.intents_written = 0
        self._closing = False
        self._closed = False

    @property
    def queued(self) -> int:
        """Rows waiting to be written."""
        return self._queued_rows

    def stats(self) -> dict[str, Any]:
        return {
            "queued": self._queued_rows, "written": dict(self.written), "dropped": dict(self.dropped),
            "batches": self.batches, "errors": self.errors, "intents": self.intents_written,
            "last_flush_latency_ms": self.last_flush_latency_s * 1000,
        }

    def submit(self, event: Event) -> None:
        """Queue ``event``'s rows. Synchronous and cheap: safe on the engine's hot path."""
        self._put(event_rows(event))

    def submit_balances(self, balances: Iterable[Balance], at: float) -> None:
        rows = [("balances", balance_row(balance, at)) for balance in balances]
        if rows:
            self._put(rows)

    def submit_tick(self, ticker: Ticker) -> None:
        self._put([("ticks", tick_row(ticker))])

    def submit_rows(self, rows: Rows) -> None:
        """Queue raw ``(table, row)`` pairs, written in one transaction (e.g. ticks of a recorder)."""
        if rows:
            self._put(rows)

    async def write_intent(self, *orders: Order) -> None:
        """Commit ``orders`` with status ``new`` and return only then: call it before sending them.

        Intents skip the queue (they wait at most for the batch being written), and intents awaited
        concurrently are committed together. Raises if the store fails; then nothing may be sent.
        """
        if self._closed:
            raise StoreError("the store writer is closed")
        if not orders:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Marks the outcome as seen even when this caller is cancelled before awaiting it.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._intents.append(([intent_row(order) for order in orders], done))
        async with self._lock:
            if not done.done():
                await self._write_intents()
        await done

    async def _write_intents(self) -> None:
        pending, self._intents = self._intents, []
        batch = Batch()
        for rows, _ in pending:
            batch.rows.setdefault("orders", []).extend(rows)
        error: BaseException | None = None
        try:
            await self.store.write_batch(batch)
        except Exception as exc:
            error = exc
        except BaseException:
            # Cancelled mid-write: whether it committed is unknown, so no waiter may send its order.
            error = StoreError("the intent write was cancelled")
            raise
        finally:
            if error is None:
                self.intents_written += len(batch)
                self.written["orders"] += len(batch)
            for _, waiter in pending:
                if not waiter.done():
                    if error is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(error)

    def _put(self, rows: Rows) -> None:
        if self._closed:
            raise StoreError("the store writer is closed")
        if self._queued_rows >= self.max_queue and all(t in LOW_VALUE_TABLES for t, _ in rows):
            for table, _ in rows:
                self.dropped[table] += 1
            return
        if not self._queue:
            self._pending_since = time.monotonic()
        self._queue.append(rows)
        self._queued_rows += len(rows)
        self._submitted += 1
        if len(self._queue) == 1 or self._queued_rows >= self.batch_size:
            self._wake.set()

    async def run(self, *, retry_max_s: float = 5.0) -> None:
        """Write batches until :meth:`close`. A failing store is retried with backoff; the rows wait."""
        backoff = 0.05
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._queued_rows < self.batch_size and not self._closing:
                remaining = self._pending_since + self.flush_interval_s - time.monotonic()
                if remaining > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    continue
            try:
                await self._write_next()
                backoff = 0.05
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("store write failed (%d rows waiting, retry in %.2fs): %s",
                            self._queued_rows, backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, retry_max_s)

    async def flush(self) -> None:
        """Return once every row submitted before the call is written; raises if the store fails
        (the rows stay queued)."""
        target = self._submitted
        while self._written_entries < target:
            await self._write_next()

    async def close(self) -> None:
        """Flush everything and stop :meth:`run`. The store itself stays open (its owner closes it)."""
        self._closing = True
        self._wake.set()
        await self.flush()
        self._closed = True
        self._wake.set()

    async def _write_next(self) -> None:
        async with self._lock:
            queue = self._queue
            if not queue:
                return
            entries: list[Rows] = []
            batch = Batch()
            rows = batch.rows
            n_rows = 0
            while queue and n_rows < self.batch_size:
                entry = queue.popleft()
                entries.append(entry)
                n_rows += len(entry)
                for table, row in entry:
                    rows.setdefault(table, []).append(row)
            older_rows_left = bool(queue)
            self._queued_rows -= n_rows
            started = time.monotonic()
            try:
                await self.store.write_batch(batch)
            except BaseException:
                queue.extendleft(reversed(entries))
                self._queued_rows += n_rows
                raise
            self.last_flush_latency_s = time.monotonic() - started
            self.batches += 1
            self._written_entries += len(entries)
            for table, table_rows in rows.items():
                self.written[table] += len(table_rows)
            if queue and not older_rows_left:
                # Rows that arrived during the write start a new interval rather than forcing an
                # immediate tiny batch after every write.
                self._pending_since = started
