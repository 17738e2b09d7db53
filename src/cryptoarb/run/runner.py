"""``cryptoarb run`` / ``cryptoarb watch``: the whole engine on one event loop, under one TaskGroup.

Start-up: the status endpoint listens first (so a monitor sees "connecting" and why), then the venue's
markets are loaded over REST, retried with backoff while the venue can't be reached (one line per
failure, naming the host). Then every long-lived task is started under the :class:`Supervisor`:

==================  ==================================================================================
``market-data``     KuCoin websockets: ``ticker:all`` for every pair, depth for the watchlist; frames
                    go synchronously into ``Engine.on_batch`` (the hot path), read in bounded slices
``scanner``         every ``scan_interval_s``: REST all-tickers, every cycle ranked off the hot path,
                    watchlist written atomically and depth re-subscribed when it changed
``executor``        ``Engine.run_due`` every 10 ms: paper fills, the stale-data kill switch (live
                    orders run in the live executor's own tasks)
``private-stream``  live only: KuCoin's private websocket; order pushes resolve the live executor's
                    orders, balance pushes reconcile the ledger when nothing is in flight (run/private.py)
``order-keepalive`` live only: the order connections kept open and warm (``OrderWire.keep_alive``)
``storage-writer``  batched writes of every event (SQLite, or PostgreSQL with a DSN)
``notifiers``       console, Discord (when its secrets are set)
``status-view``     the live terminal view, rendered in a thread (a plain status line without a terminal)
``loop-lag``        the event-loop lag monitor
``sampler``         message rates for status and metrics
``gc``              bounded young-generation collections (see :class:`GcPacer`)
==================  ==================================================================================

A task that fails is reported and restarted with backoff. SIGINT / SIGTERM (or ``duration_s``) start
a clean shutdown: no new opportunities (so no new orders), in-flight opportunities resolved (paper:
filled on the venue's clock; live: the executor's failed-leg policy runs to the end, bounded by
``shutdown_timeout_s``), the websockets closed, notifiers drained, storage flushed, a summary returned.

``watch`` is the same pipeline without trading: opportunities are detected and sized, then refused
with reason ``paused`` ("watch mode") by :class:`WatchExecutor`; nothing is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import aiohttp
from rich.console import Console

from cryptoarb import __version__
from cryptoarb.commands import EventHistory
from cryptoarb.config import RunSettings, Settings, with_balances
from cryptoarb.core.risk import DAY_S
from cryptoarb.engine import Engine
from cryptoarb.execution.executor import Completion, OnComplete
from cryptoarb.model import Balance, Cycle, Event, Notice, Opportunity, RejectReason
from cryptoarb.notify.base import NotifierHub
from cryptoarb.notify.console import ConsoleNotifier
from cryptoarb.run.metrics import STATUS_VERSION, OrderTally, RateMeter, RunLagMonitor, percentiles, process_stats
from cryptoarb.run.private import PrivateFeed, disabled_status
from cryptoarb.run.scanner import Evaluator, Scanner, TickerFetcher, make_evaluator
from cryptoarb.run.status_server import StatusServer
from cryptoarb.run.supervisor import Supervisor
from cryptoarb.run.transport import SlicingSession
from cryptoarb.run.venue import KucoinVenue, describe_failure, host_of
from cryptoarb.run.view import ThreadedStatusView
from cryptoarb.run.watchlist import Watchlist, WatchlistError, iso_utc, read_watchlist, remove_stale_temps
from cryptoarb.status import EngineStatus
from cryptoarb.stopsignals import on_stop_signals
from cryptoarb.venues.kucoin.codec import FAST_SCAN
from cryptoarb.venues.kucoin.limits import Backoff
from cryptoarb.venues.kucoin.private_ws import PrivateWsOptions, fee_rates
from cryptoarb.venues.kucoin.rest import KucoinAuthError, KucoinRest
from cryptoarb.venues.kucoin.signing import Credentials
from cryptoarb.venues.kucoin.ws import KucoinMarketData, WsOptions

if TYPE_CHECKING:
    from cryptoarb.execution.live import LiveExecutor

log = logging.getLogger("cryptoarb.run")

Command = Literal["run", "watch"]
EvaluatorFactory = Callable[[Sequence[Cycle], RunSettings], Evaluator]
DEFAULT_REST_URL = "https://api.kucoin.com"
EXECUTOR_TICK_S = 0.01
SAMPLE_S = 1.0
BALANCES_EVERY_S = 60.0
TOP_CYCLES_PER_WATCHED_MARKET = 20


class RunError(Exception):
    """The engine could not start or run; the message is one line and safe to show."""


@dataclass(slots=True)
class RunSummary:
    command: str
    mode: str
    venue: str
    reason: str
    """Why it stopped: signal, duration, error."""
    connected: bool
    uptime_s: float
    messages: int
    messages_per_s: float
    updates: int
    opportunities_detected: int
    opportunities_executed: int
    rejected_by_reason: dict[str, int]
    orders: int
    order_rejects: int
    trades: int
    realized_pnl_usd: float
    loop_lag_ms_p50: float
    loop_lag_ms_p99: float
    loop_lag_ms_max: float
    reconnects: int
    resyncs: int
    dropped: int
    scans: int
    scan_errors: int
    watchlist_file: str
    watchlist_symbols: int
    db_path: str | None
    unresolved: int
    """Opportunities still in flight when the shutdown timeout ran out (0 after a clean stop)."""
    task_restarts: int
    last_error: str = ""
    status_url: str = ""
    private_updates: int = 0
    """Live: order and balance pushes received over the private websocket."""
    private_reconnects: int = 0
    resolved_by_push: int = 0
    """Live: orders the venue acknowledged whose final state then arrived pushed..."""
    resolved_by_rest: int = 0
    """... or from a REST lookup (no push in time, or the private stream lost meanwhile)."""
    placed_rest: int = 0
    """Live: orders sent while the private stream was down, with a REST lookup of their state."""
    loop_lag_ms_startup: float = 0.0
    """The longest the loop was held while the run started up (the engine built, a full collection before
    ``gc.freeze``), before any stream was read; the other lag figures start once it runs."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class WatchExecutor:
    """Executes nothing: each opportunity is refused on the next poll with reason ``paused`` (watch mode),
    so the engine counts it as detected, records no order, and frees the cycle for the next detection."""

    mode = "watch"
    latency_s = 0.0
    REASON = "watch mode: detection only, no orders"

    def __init__(self) -> None:
        self._queue: list[Opportunity] = []
        self._on_complete: OnComplete | None = None

    def bind(self, on_complete: OnComplete, gate: Any = None) -> None:
        self._on_complete = on_complete

    def submit(self, opportunity: Opportunity, now: float, internal_s: float = 0.0,
               record: Callable[[], None] | None = None) -> None:
        if record is not None:
            record()
        self._queue.append(opportunity)

    def poll(self, now: float) -> None:
        queue, self._queue = self._queue, []
        if self._on_complete is None:
            return
        for opportunity in queue:
            self._on_complete(Completion(opportunity, (), now, self.mode,
                                         refused=(RejectReason.PAUSED, self.REASON)))

    @property
    def pending(self) -> int:
        return len(self._queue)


class GcPacer:
    """Keeps garbage-collector pauses short on the hot path.

    At start-up everything loaded (markets, cycles, ccxt's market tables) is frozen out of future scans
    (``gc.freeze``): a full collection then costs what was allocated since, not 100+ ms. Book levels churn
    at thousands per second, which keeps the young generation's allocation count low while its survivors
    pile up (~15,000 tuples by the time it triggers: a multi-millisecond pause); collecting it every
    ``interval_s`` keeps each collection to a few thousand objects.
    """

    def __init__(self, interval_s: float, freeze: bool) -> None:
        self.interval_s = interval_s
        self.freeze = freeze
        self.collections = 0
        self.frozen = 0

    def settle(self) -> None:
        if self.freeze:
            gc.collect()
            gc.freeze()
            self.frozen = gc.get_freeze_count()

    async def run(self) -> None:
        if self.interval_s <= 0:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(self.interval_s)
            gc.collect(0)
            self.collections += 1


class RunApp:
    """One engine on one venue; ``await run()`` until stopped, then the summary."""

    def __init__(self, settings: Settings, *, command: Command = "run", live: bool = False,
                 console: Console | None = None, live_view: bool = True, duration_s: float | None = None,
                 evaluator_factory: EvaluatorFactory | None = None, install_signals: bool = True,
                 clock: Callable[[], float] = time.time, private_options: PrivateWsOptions | None = None) -> None:
        if command == "watch" and live:
            raise ValueError("watch never trades")
        if command == "watch":  # nothing is executed, so nothing is ever in flight for long: no cap on it
            risk = settings.risk.model_copy(update={"max_concurrent": 1_000_000})
            settings = settings.model_copy(update={"risk": risk})
        self.settings = settings
        self.command: Command = command
        self.live = live
        self.mode = "watch" if command == "watch" else "live" if live else "paper"
        self.console = console or Console(stderr=True)
        self.live_view = live_view
        self.duration_s = duration_s
        self.evaluator_factory = evaluator_factory
        self.install_signals = install_signals
        self.clock = clock
        self.private_options = private_options
        rs = settings.run
        self.rs = rs
        self.venue_name = rs.venue
        self.state = "starting"
        self.stop_reason = ""
        self.last_error = ""
        self.lag = RunLagMonitor()
        self.gc = GcPacer(rs.gc_young_interval_s, rs.gc_freeze)
        self.orders = OrderTally()
        self.message_rate = RateMeter()
        self.history = EventHistory()
        self.messages = 0
        self.started_wall = time.monotonic()
        self.started_at = time.time()
        self.engine: Engine | None = None
        self.market_data: KucoinMarketData | None = None
        self.scanner: Scanner | None = None
        self.evaluator: Evaluator | None = None
        self.watchlist: Watchlist | None = None
        self.writer: Any = None
        self.store: Any = None
        self.hub: NotifierHub | None = None
        self.remote: Any = None
        self.rest: KucoinRest | None = None
        self.venue: KucoinVenue | None = None
        self.private: PrivateFeed | None = None
        self.supervisor: Supervisor | None = None
        self.status_server: StatusServer | None = None
        self.markets_loaded = 0
        self._account: list[Balance] = []  # a live run's balances as fetched at start, exact
        self.venue_state = "idle"
        self.venue_error = ""
        self._ws_session: SlicingSession | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws_http: aiohttp.ClientSession | None = None
        self._fetcher: TickerFetcher | None = None
        self._stop: asyncio.Event | None = None
        self._depth: frozenset[str] = frozenset()
        self._db_path: str | None = None
        self._last_balances_trades = -1
        self._resumed: Watchlist | None = None
        self.unresolved = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "signal") -> None:
        if self._stop is None:
            return
        if self._stop.is_set():
            log.warning("already stopping (%s)", self.stop_reason)
            return
        self.stop_reason = reason
        self._stop.set()

    async def run(self) -> RunSummary:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.started_wall = time.monotonic()
        self.started_at = time.time()
        remove_stale_temps(self.rs.watchlist_file)
        self.status_server = StatusServer(self.status, port=self.rs.status_port)
        try:
            port = await self.status_server.start()
        except OSError as exc:
            raise RunError(f"status endpoint: cannot listen on 127.0.0.1:{self.rs.status_port}: "
                           f"{exc.strerror or exc}") from None
        log.info("status on http://127.0.0.1:%d (/status, /metrics)", port)
        signals = contextlib.ExitStack()
        if self.install_signals:
            signals.enter_context(on_stop_signals(functools.partial(self.request_stop, "signal")))
        failure: RunError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self.supervisor = Supervisor(group, on_failure=self._task_failed, backoff_s=self.rs.restart_backoff_s,
                                             backoff_max_s=self.rs.restart_backoff_max_s)
                self.supervisor.spawn("loop-lag", self.lag.run)
                deadline = None if self.duration_s is None else loop.time() + self.duration_s
                # the duration bounds the whole run, the retries of an unreachable venue included
                timer = None if deadline is None else loop.call_at(deadline, self.request_stop, "duration")
                try:
                    markets = await self._connect()
                    if markets is not None:
                        await self._start(markets)
                        self.lag.reset()  # start-up held the loop before any stream was read: reported apart
                        self.state = "running"
                        log.info("%s: running (%s), %d markets, %d cycles", self.venue_name, self.mode,
                                 len(markets), len(self.engine.cycles) if self.engine else 0)
                    await self._wait(deadline)
                except Exception as exc:  # start-up failed: shut down what started, report one line
                    failure = exc if isinstance(exc, RunError) else RunError(f"{type(exc).__name__}: {exc}")
                    self.stop_reason, self.last_error = "error", str(failure)
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("start-up failed", exc_info=exc)
                finally:
                    if timer is not None:
                        timer.cancel()
                    await self._shutdown()
        finally:
            signals.close()
            await self.status_server.stop()
        self.state = "stopped"
        if failure is not None:
            raise failure
        return self.summary()

    async def _wait(self, deadline: float | None) -> None:
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait_for(self._stop.wait(), timeout)
        except TimeoutError:
            self.stop_reason = self.stop_reason or "duration"

    async def _sleep_or_stop(self, delay: float) -> bool:
        """Sleep ``delay``; True if a stop was requested meanwhile."""
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        return self._stop.is_set()

    # -- start-up -------------------------------------------------------------------------------------
    async def _connect(self) -> list | None:
        """Load the venue's markets (and live balances), retrying with backoff; None if stopped first."""
        rs, settings = self.rs, self.settings
        self.state = "connecting"
        self.venue_state = "connecting"
        self._http = aiohttp.ClientSession()
        self._ws_http = aiohttp.ClientSession()
        secrets = settings.secrets if self.live else None
        self.rest = KucoinRest(
            api_key=secrets.kucoin_api_key if secrets else None,
            api_secret=secrets.kucoin_api_secret if secrets else None,
            api_passphrase=secrets.kucoin_api_passphrase if secrets else None,
            base_url=None if rs.rest_url.rstrip("/") == DEFAULT_REST_URL else rs.rest_url,
            name=self.venue_name, clock=self.clock)
        backoff = Backoff(1.0, 30.0, 0.25)
        while True:
            try:
                markets = await self.rest.load_markets()
                if self.live:
                    balances = await self.rest.fetch_balances()
                    self.settings = with_balances(self.settings, self.venue_name, balances)
                    self._account = balances
                break
            except KucoinAuthError as exc:
                raise RunError(f"{self.venue_name}: {exc}") from None
            except Exception as exc:
                self.venue_error = describe_failure(exc, rs.rest_url)
                self.venue_state = "unreachable"
                delay = backoff.next_delay()
                log.error("%s: %s; retrying in %.1f s", self.venue_name, self.venue_error, delay)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("load_markets failed", exc_info=exc)
                if await self._sleep_or_stop(delay):
                    return None
            if self._stop is not None and self._stop.is_set():
                return None
        self.venue_error = ""
        self.venue_state = "markets loaded"
        self.markets_loaded = len(markets)
        return markets

    def _credentials(self) -> Credentials | None:
        """The API keys of a live run (the live gate passed, so they came from the environment)."""
        secrets = self.settings.secrets
        if not self.live:
            return None
        values = [s.get_secret_value() if s is not None else "" for s in
                  (secrets.kucoin_api_key, secrets.kucoin_api_secret, secrets.kucoin_api_passphrase)]
        return Credentials(*values) if all(values) else None

    async def _start(self, markets: list) -> None:
        from cryptoarb.remote import RemoteSession

        settings, rs = self.settings, self.rs
        assert self.rest is not None and self.supervisor is not None and self._ws_http and self._http
        self.venue = venue = KucoinVenue(self.rest, self.venue_name)
        if self.command == "run":
            await self._open_storage()
        self.hub = NotifierHub([ConsoleNotifier(self.console)] if settings.notify.console else [])
        executor: Any = None
        if self.command == "watch":
            executor = WatchExecutor()
        elif self.live:
            from cryptoarb.execution.live import LiveExecutor

            writer = self.writer
            executor = lambda engine: LiveExecutor.for_engine(  # noqa: E731
                engine, clock=self.clock, write_intent=writer.write_intent if writer is not None else None)
        now = self.clock()
        day_pnl = None if self.store is None else await self.store.pnl_usd(now - now % DAY_S, self.mode)
        self.engine = engine = Engine(settings, {self.venue_name: venue}, markets, self._publish, executor=executor)
        if self._account:
            # the settings hold floats (for inventory edges); the ledger books the account's exact amounts, so it
            # never starts above what the venue will let an order spend
            engine.ledger.set_balances(self._account)
        if day_pnl is not None:  # today's losses of earlier runs count against the daily limit
            engine.risk.resume_day(now, day_pnl)
        creds = self._credentials()
        if creds is not None:
            # Fees of pushed fills at the rates the engine books with (detector.fee_discount included).
            self.private = PrivateFeed(
                self._http, creds, rs.rest_url, venue=self.venue_name, engine=engine,
                executor=cast("LiveExecutor", engine.executor), fee_rate=fee_rates(engine.markets.values()),
                clock=self.clock, on_notice=self._on_notice, options=self.private_options)
            venue.pushes_live = self.private.live
        self.remote = RemoteSession(settings, engine, self.hub, self.history, self.engine_status, self.clock)
        self.remote.adapter.watchlist_fn = lambda: self.watchlist.symbols if self.watchlist else ()
        self._ws_session = SlicingSession(self._ws_http, rs.ws_read_chunk_bytes)
        self.market_data = md = KucoinMarketData(
            self._ws_session, on_updates=self._on_updates, rest_url=rs.rest_url, clock=self.clock,  # type: ignore[arg-type]
            snapshot_fetcher=self._snapshot if rs.depth_mode == "level2" else None, on_gap=self._on_gap,
            on_notice=self._on_notice, options=WsOptions(depth_mode=rs.depth_mode), venue=self.venue_name)
        md.subscribe_all_tickers()
        self._resume_watchlist(markets)
        top = max(rs.watchlist_size * TOP_CYCLES_PER_WATCHED_MARKET, 200)
        if self.evaluator_factory is not None:
            self.evaluator = self.evaluator_factory(engine.cycles, rs)
        else:
            self.evaluator = make_evaluator(rs.scan_mode, engine.cycles, top=top, slice_cycles=rs.scan_slice_cycles)
        start = getattr(self.evaluator, "start", None)
        if start is not None:
            await start()
        self._fetcher = TickerFetcher(self._http, rs.rest_url)
        self.scanner = Scanner(fetch=self._fetcher, evaluator=self.evaluator, venue=self.venue_name,
                               size=rs.watchlist_size, watchlist_path=rs.watchlist_file,
                               on_watchlist=self._on_watchlist, interval_s=rs.scan_interval_s,
                               keep_rank=rs.watchlist_keep_rank, clock=self.clock)
        self.scanner.watchlist = self._resumed  # hysteresis from the last run's list
        if self.writer is not None:
            self._snapshot_balances()
        self.gc.settle()
        sup = self.supervisor
        if self.writer is not None:
            sup.spawn("storage-writer", self.writer.run)
        sup.spawn("notifiers", self.hub.run)
        sup.spawn("market-data", md.run)
        sup.spawn("scanner", self.scanner.run)
        sup.spawn("executor", self._executor_tick)
        if self.private is not None:
            sup.spawn("private-stream", self.private.run)
        if self.live:
            sup.spawn("order-keepalive", self.rest.keep_order_connections_alive)
        sup.spawn("sampler", self._sample)
        sup.spawn("gc", self.gc.run)
        if self.writer is not None:
            sup.spawn("balances", self._balances_loop)
        if self.live_view:
            self._view = ThreadedStatusView(self.engine_status, self.console, interval_s=rs.view_interval_s,
                                            plain_interval_s=settings.notify.status_interval_s)
            sup.spawn("status-view", self._view.run)
        await self.remote.start()
        self.venue_state = "streaming"

    async def _open_storage(self) -> None:
        from cryptoarb.storage import create_store, create_writer, mask_dsn, resolve_dsn

        settings = self.settings
        dsn = resolve_dsn(settings)
        try:
            store = create_store(settings.storage, settings.sqlite_path, dsn=dsn)
            if not dsn:
                settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            await store.open()
            await store.migrate()
        except Exception as exc:
            raise RunError(f"storage: {type(exc).__name__}: {exc}") from None
        self.store = store
        self.writer = create_writer(store, settings.storage)
        self._db_path = mask_dsn(dsn) if dsn else str(settings.sqlite_path)

    def _resume_watchlist(self, markets: list) -> None:
        """Stream depth for the last watchlist at once (the first scan refines it two seconds later)."""
        path = self.rs.watchlist_file
        if not Path(path).is_file():
            return
        try:
            previous = read_watchlist(path)
        except (OSError, WatchlistError) as exc:
            log.warning("watchlist %s ignored: %s", path, exc)
            return
        known = {m.symbol for m in markets}
        if previous.venue == self.venue_name:
            self._set_depth([s for s in previous.symbols if s in known][: self.rs.watchlist_size])
            self._resumed = self.watchlist = previous

    # -- the hot path and its callbacks -------------------------------------------------------------------
    def _on_updates(self, batch: list) -> None:
        self.messages += len(batch)
        self.engine.on_batch(batch, self.clock(), self.venue_name)  # type: ignore[union-attr]

    def _on_gap(self, symbol: str) -> None:
        book = self.engine.books.get((self.venue_name, symbol)) if self.engine else None
        if book is not None:
            book.mark_gapped()

    def _on_notice(self, notice: Notice) -> None:
        self._publish(notice)

    async def _snapshot(self, symbol: str) -> Any:
        assert self.rest is not None
        return await self.rest.fetch_book(symbol, 100)

    def _publish(self, event: Event) -> None:
        if self.writer is not None:
            self.writer.submit(event)
        self.history.record(event)
        self.orders.record(event)
        if self.hub is not None:
            self.hub.publish(event)

    def _on_watchlist(self, watchlist: Watchlist) -> None:
        self.watchlist = watchlist
        self._set_depth(watchlist.symbols)

    def _set_depth(self, symbols: Sequence[str]) -> None:
        wanted = frozenset(symbols)
        if wanted != self._depth and self.market_data is not None:
            self._depth = wanted
            self.market_data.set_depth_symbols(wanted)

    # -- periodic tasks -------------------------------------------------------------------------------
    async def _executor_tick(self) -> None:
        engine = self.engine
        assert engine is not None
        private = self.private
        while True:
            engine.run_due(self.clock())
            if private is not None:
                private.reconcile()
            await asyncio.sleep(EXECUTOR_TICK_S)

    async def _sample(self) -> None:
        while True:
            self.message_rate.sample(time.monotonic(), self.messages)
            await asyncio.sleep(SAMPLE_S)

    async def _balances_loop(self) -> None:
        while True:
            await asyncio.sleep(BALANCES_EVERY_S)
            self._snapshot_balances()

    def _snapshot_balances(self, force: bool = False) -> None:
        engine, writer = self.engine, self.writer
        if engine is None or writer is None:
            return
        if not force and engine.ledger.trades == self._last_balances_trades:
            return
        self._last_balances_trades = engine.ledger.trades
        rows = [Balance(venue, asset, Decimal(repr(amount)), Decimal(repr(amount)))
                for venue, assets in engine.ledger.snapshot().items() for asset, amount in assets.items()]
        with contextlib.suppress(Exception):
            writer.submit_balances(rows, self.clock())

    def _task_failed(self, name: str, exc: BaseException, delay: float, restarts: int) -> None:
        text = f"{type(exc).__name__}: {exc}"[:300]
        self.last_error = f"{name}: {text}"
        when = f"restarting in {delay:.1f} s" if delay != float("inf") else "not restarted"
        log.error("task %s failed (%s); %s", name, text, when, exc_info=exc if log.isEnabledFor(logging.DEBUG)
                  else None)
        self._publish(Notice("task_failed", f"task {name} failed: {text}; {when}", self.clock(),
                             {"task": name, "restarts": str(restarts)}))

    # -- shutdown -------------------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        self.state = "stopping"
        self.stop_reason = self.stop_reason or "error"
        sup = self.supervisor
        engine = self.engine
        if engine is not None:
            engine.accepting = False  # no new opportunities: no new orders
        if sup is not None:
            await sup.stop("scanner", "sampler", "balances", "gc")
        if engine is not None and engine.pending:
            log.info("resolving %d opportunities in flight", engine.pending)
            await self._resolve_in_flight(engine)
            self.unresolved = engine.pending
            if self.unresolved:
                log.error("%d opportunities still in flight after %.0f s: see the orders table",
                          self.unresolved, self.rs.shutdown_timeout_s)
        if sup is not None:
            await sup.stop("executor", "market-data", "status-view", "private-stream")
        if self.market_data is not None:
            await self.market_data.close()
        self._snapshot_balances(force=True)
        if self.remote is not None:
            with contextlib.suppress(Exception):
                await self.remote.close()
        if self.hub is not None:
            await self.hub.close()
        if self.writer is not None:
            try:
                await self.writer.close()
            except Exception as exc:
                log.error("storage: final flush failed: %s", exc)
        if sup is not None:
            await sup.stop()
        for closer in (getattr(self.store, "close", None), getattr(self.evaluator, "close", None),
                       getattr(self.rest, "close", None)):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        for session in (self._http, self._ws_http):
            if session is not None:
                await session.close()

    async def _resolve_in_flight(self, engine: Engine) -> None:
        timeout = self.rs.shutdown_timeout_s
        drain = getattr(engine.executor, "drain", None)
        if self.live and drain is not None:
            await drain(timeout)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while engine.pending and loop.time() < deadline:
            engine.run_due(self.clock())
            await asyncio.sleep(EXECUTOR_TICK_S)

    # -- views ----------------------------------------------------------------------------------------
    def engine_status(self) -> EngineStatus:
        engine = self.engine
        wall = max(time.monotonic() - self.started_wall, 1e-9)
        lag = self.lag
        p50, p99 = lag.recent()
        if engine is None:
            return EngineStatus(mode=self.mode, venues=(self.venue_name,), uptime_s=wall, updates=0, updates_per_s=0.0,
                                books_tradeable=0, books_total=0, opportunities_detected=0, opportunities_executed=0,
                                rejected_by_reason={}, trades=0, realized_pnl_usd=0.0, loop_lag_ms_p50=p50,
                                loop_lag_ms_p99=p99, loop_lag_ms_max=lag.max_ms, db_path=self._db_path or "-")
        now = self.clock()
        counters = engine.counters
        return EngineStatus(
            mode=self.mode, venues=tuple(engine.venues), uptime_s=wall, updates=counters.updates,
            updates_per_s=self.message_rate.rate(), books_tradeable=engine.books_tradeable(now),
            books_total=len(engine.books), opportunities_detected=counters.detected,
            opportunities_executed=counters.executed, rejected_by_reason=dict(counters.rejected or {}),
            trades=engine.ledger.trades, realized_pnl_usd=engine.ledger.realized_pnl_usd,
            loop_lag_ms_p50=p50, loop_lag_ms_p99=p99, loop_lag_ms_max=lag.max_ms,
            db_path=self._db_path or "-", best=engine.best(now), balances=engine.ledger.snapshot())

    def status(self) -> dict[str, Any]:
        """The ``/status`` document (docs/run.md)."""
        now = self.clock()
        engine = self.engine
        md_stats = self.market_data.stats() if self.market_data is not None else {"connections": [], "totals": {}}
        totals = md_stats["totals"]
        books: dict[str, Any] = {"total": 0, "tradeable": 0, "stale": 0, "depth": len(self._depth),
                                 "age_s": percentiles(()), "freshness_age_s": percentiles(())}
        if engine is not None:
            fresh = [book.age(now) for book in engine.books]
            since = [now - book.received_at for book in engine.books]
            books = {"total": len(engine.books), "tradeable": engine.books_tradeable(now),
                     "stale": sum(1 for a in fresh if a > engine.freshness.max_age), "depth": len(self._depth),
                     "age_s": percentiles((a for a in since if math.isfinite(a)), (50, 99)),
                     "freshness_age_s": percentiles((a for a in fresh if math.isfinite(a)), (50, 99))}
        conns = md_stats["connections"]
        states: dict[str, int] = {}
        for c in conns:
            states[c["state"]] = states.get(c["state"], 0) + 1
        max_msgs = self.market_data.options.max_client_messages if self.market_data is not None else None
        headroom = min((max_msgs - c["client_messages_in_window"] for c in conns), default=None) \
            if max_msgs is not None else None
        venue_state = self.venue_state
        if self.state == "running" and conns:
            venue_state = "live" if all(c["state"] == "live" for c in conns) else "degraded"
        rl = self._fetcher.rate_limit if self._fetcher is not None else None
        scanner = self.scanner
        counters = engine.counters if engine is not None else None
        risk = engine.risk if engine is not None else None
        ledger = engine.ledger if engine is not None else None
        dropped = int(totals.get("decode_errors", 0)) + int(totals.get("sink_errors", 0))
        lag_p50, lag_p99 = self.lag.recent()
        return {
            "version": STATUS_VERSION,
            "app_version": __version__,
            "command": self.command,
            "mode": self.mode,
            "state": self.state,
            "venue": self.venue_name,
            "run_id": self.engine.run_id if self.engine is not None else None,
            "started_at": iso_utc(self.started_at),
            "uptime_s": round(time.monotonic() - self.started_wall, 3),
            "status_url": self.status_server.url if self.status_server is not None else None,
            "venues": {self.venue_name: {
                "state": venue_state,
                "markets": self.markets_loaded,
                "rest": {"host": host_of(self.rs.rest_url), "last_error": self.venue_error or
                         (scanner.stats.last_error if scanner is not None and scanner.stats.errors else ""),
                         "rate_limit": {"limit": rl.limit, "remaining": rl.remaining, "reset_ms": rl.reset_ms}
                         if rl is not None else {}},
                "websocket": {"connections": conns, "totals": totals, "states": states,
                              "client_message_headroom": headroom,
                              "reads": self._ws_session.stats() if self._ws_session is not None else {}},
                "private": self.private.status() if self.private is not None else disabled_status(),
            }},
            "books": books,
            "market_data": {"messages": self.messages, "messages_per_s": round(self.message_rate.rate(), 1),
                            "updates_applied": counters.updates if counters else 0, "dropped": dropped,
                            "reconnects": totals.get("reconnects", 0), "resyncs": totals.get("resyncs", 0),
                            "gaps": totals.get("gaps", 0), "frame_scanner": FAST_SCAN},
            "loop_lag_ms": {"p50": round(lag_p50, 3), "p99": round(lag_p99, 3), "max": round(self.lag.max_ms, 3),
                            "samples": self.lag.samples, "window_s": round(self.lag.interval_s * self.lag.window),
                            "startup": round(self.lag.before_reset_max_ms, 3)},
            "opportunities": {
                "detected": counters.detected if counters else 0, "executed": counters.executed if counters else 0,
                "pending": engine.pending if engine is not None else 0,
                "rejected_by_reason": dict(counters.rejected or {}) if counters else {},
                "best": [{"path": list(b.path), "net_return_bps": round(b.net_return_bps, 3),
                          "profit_usd": b.profit_usd} for b in engine.best(now)] if engine is not None else []},
            "orders": {"total": self.orders.total, "by_status": dict(self.orders.by_status),
                       "rejects": self.orders.rejects, "resolution": self._resolution()},
            "pnl": {"realized_usd": round(ledger.realized_pnl_usd, 6) if ledger else 0.0,
                    "trades": ledger.trades if ledger else 0,
                    "fees_usd": round(getattr(ledger, "fees_usd", 0.0), 6) if ledger else 0.0},
            "balances": ledger.snapshot() if ledger else {},
            "risk": {"killed": bool(risk.killed) if risk else False,
                     "killed_reason": risk.killed_reason if risk else None,
                     "paused": sorted(f"{v}:{s}" for v, s in risk.paused) if risk else [],
                     "cooldowns": {f"{v}:{s}": round(u - now, 3) for (v, s), u in risk.cooldown_until.items()
                                   if u > now} if risk else {},
                     "in_flight": len(risk.in_flight) if risk else 0,
                     "limits": {k: float(v) for k, v in asdict(risk.limits).items()} if risk else {}},
            "scanner": {**(scanner.stats.as_json() if scanner is not None else {}),
                        "mode": getattr(self.evaluator, "name", None), "interval_s": self.rs.scan_interval_s},
            "watchlist": {"path": str(self.rs.watchlist_file),
                          "symbols": len(self.watchlist.symbols) if self.watchlist else len(self._depth),
                          "generated_at": iso_utc(self.watchlist.generated_at) if self.watchlist else None,
                          "depth_streamed": len(self._depth)},
            "storage": {"path": self._db_path, **(self.writer.stats() if self.writer is not None else {})},
            "notifiers": self.hub.stats() if self.hub is not None else {},
            "tasks": self.supervisor.states() if self.supervisor is not None else {},
            "gc": {"frozen": self.gc.frozen, "young_collections": self.gc.collections},
            "process": process_stats(),
            "last_error": self.last_error,
        }

    def _resolution(self) -> dict[str, Any]:
        """Live: how orders were sent (acknowledged only, or with a REST lookup of their state) and where
        the final state of those the venue answered as open came from (pushed, or a REST lookup)."""
        stats = getattr(self.engine.executor, "order_state_stats", None) if self.engine is not None else None
        if stats is None:
            return {}
        placements = self.venue.placements if self.venue is not None else {}
        return {**stats(), "placed_ack": placements.get("ack", 0), "placed_rest": placements.get("rest", 0)}

    def summary(self) -> RunSummary:
        engine = self.engine
        counters = engine.counters if engine is not None else None
        totals = self.market_data.stats()["totals"] if self.market_data is not None else {}
        scanner = self.scanner
        wall = max(time.monotonic() - self.started_wall, 1e-9)
        private = self.private.status() if self.private is not None else None
        resolution = self._resolution()
        return RunSummary(
            command=self.command, mode=self.mode, venue=self.venue_name, reason=self.stop_reason or "signal",
            connected=engine is not None, uptime_s=round(wall, 3), messages=self.messages,
            messages_per_s=round(self.messages / wall, 1), updates=counters.updates if counters else 0,
            opportunities_detected=counters.detected if counters else 0,
            opportunities_executed=counters.executed if counters else 0,
            rejected_by_reason=dict(sorted((counters.rejected or {}).items())) if counters else {},
            orders=self.orders.total, order_rejects=self.orders.rejects,
            trades=engine.ledger.trades if engine is not None else 0,
            realized_pnl_usd=round(engine.ledger.realized_pnl_usd, 6) if engine is not None else 0.0,
            loop_lag_ms_p50=round(self.lag.overall(50), 3), loop_lag_ms_p99=round(self.lag.overall(99), 3),
            loop_lag_ms_max=round(self.lag.max_ms, 3), loop_lag_ms_startup=round(self.lag.before_reset_max_ms, 3),
            reconnects=int(totals.get("reconnects", 0)),
            resyncs=int(totals.get("resyncs", 0)),
            dropped=int(totals.get("decode_errors", 0)) + int(totals.get("sink_errors", 0)),
            scans=scanner.stats.scans if scanner is not None else 0,
            scan_errors=scanner.stats.errors if scanner is not None else 0,
            watchlist_file=str(self.rs.watchlist_file),
            watchlist_symbols=len(self.watchlist.symbols) if self.watchlist is not None else 0,
            db_path=self._db_path, unresolved=self.unresolved,
            task_restarts=self.supervisor.restarts if self.supervisor is not None else 0,
            last_error=self.last_error or self.venue_error,
            status_url=self.status_server.url if self.status_server is not None else "",
            private_updates=private["order_updates"] + private["balance_updates"] if private else 0,
            private_reconnects=private["reconnects"] if private else 0,
            resolved_by_push=resolution.get("pushed_resolutions", 0),
            resolved_by_rest=resolution.get("rest_resolutions", 0), placed_rest=resolution.get("placed_rest", 0))


def run_app(app: RunApp) -> RunSummary:
    """Run ``app`` on a fresh event loop of the kind its settings name (``run.event_loop``)."""
    return run_coroutine(app.run(), app.settings.run.event_loop)


def run_coroutine(coro: Any, event_loop: str = "asyncio") -> Any:
    """Run ``coro`` to its end on a fresh ``asyncio`` or ``uvloop`` event loop.

    asyncio's is the default: from the market frame that completes an opportunity to its first order on the
    wire, uvloop measured 1-11 % slower at the median in every alternating pair against the sim-server
    (benchmarks/README.md, "tick_to_order", fifth session), though faster with no sockets in between.
    """
    factory = None
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # uvloop is a dependency everywhere but Windows
            coro.close()
            raise RunError("run.event_loop is 'uvloop' but uvloop is not installed (it does not run on "
                           "Windows); set it to 'asyncio'") from None
        factory = uvloop.new_event_loop
    elif event_loop != "asyncio":
        coro.close()
        raise RunError(f"run.event_loop must be 'asyncio' or 'uvloop', not {event_loop!r}")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
