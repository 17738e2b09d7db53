"""Status and metrics of a running engine: the ``/status`` document and its Prometheus rendering.

``/metrics`` is derived from the same status document ``/status`` serves, so the two never disagree.
Names follow Prometheus conventions (``_total`` counters, base units: seconds, bytes, USD); every metric
carries a ``venue`` label where it concerns one venue.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cryptoarb.looplag import LoopLagMonitor
from cryptoarb.model import Event, Execution, OrderStatus

STATUS_VERSION = 1


class LagHistogram:
    """Whole-run percentiles in constant memory: geometric buckets 5 % wide from 10 µs to ~100 s; a
    percentile is reported as its bucket's upper edge (never understated by more than 5 %)."""

    RATIO = 1.05
    LOW_MS = 0.01

    def __init__(self) -> None:
        self._log_ratio = math.log(self.RATIO)
        n = int(math.log(1e7) / self._log_ratio) + 2
        self.counts = np.zeros(n, dtype=np.int64)
        self.total = 0

    def add(self, ms: float) -> None:
        i = 0 if ms <= self.LOW_MS else min(len(self.counts) - 1,
                                             int(math.log(ms / self.LOW_MS) / self._log_ratio) + 1)
        self.counts[i] += 1
        self.total += 1

    def percentile(self, q: float) -> float:
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(self.total * q / 100.0))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return self.LOW_MS * self.RATIO ** i


class RunLagMonitor(LoopLagMonitor):
    """The loop-lag probe of ``run``: recent percentiles over the last ``window`` samples (1 minute),
    computed at most once per ``cache_s`` (status, metrics and the view ask often), and whole-run
    percentiles from a histogram for the summary."""

    def __init__(self, interval_s: float = 0.01, window: int = 6000, cache_s: float = 0.5) -> None:
        super().__init__(interval_s, window)
        self.window = window
        self.histogram = LagHistogram()
        self.cache_s = cache_s
        self._cached_at = -math.inf
        self._cached: tuple[float, float] = (0.0, 0.0)

    def record(self, lag_ms: float) -> None:
        super().record(lag_ms)
        self.histogram.add(lag_ms)

    def reset(self) -> None:
        super().reset()
        self.histogram = LagHistogram()
        self._cached_at = -math.inf

    def recent(self) -> tuple[float, float]:
        """(p50, p99) of the recent window, in ms."""
        now = time.monotonic()
        if now - self._cached_at >= self.cache_s:
            self._cached = (self.percentile(50), self.percentile(99))
            self._cached_at = now
        return self._cached

    def overall(self, q: float) -> float:
        return self.histogram.percentile(q)


class RateMeter:
    """Events per second over a sliding window, from cumulative counts sampled now and then."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, at: float, total: int) -> None:
        self._samples.append((at, total))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class OrderTally:
    """Orders and their outcomes, from the engine's ``Execution`` events (paper and live alike)."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def record(self, event: Event) -> None:
        self.events[type(event).__name__] += 1
        if isinstance(event, Execution):
            for result in event.results:
                self.by_status[result.status.value] += 1

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def rejects(self) -> int:
        return self.by_status.get(OrderStatus.REJECTED.value, 0)


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 99)) -> dict[str, float | None]:
    data = np.fromiter(values, float)
    if not len(data):
        return {**{f"p{q:g}": None for q in qs}, "max": None}
    out: dict[str, float | None] = {f"p{q:g}": round(float(np.percentile(data, q)), 4) for q in qs}
    out["max"] = round(float(data.max()), 4)
    return out


def process_stats() -> dict[str, Any]:
    rss = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return {"pid": os.getpid(), "cpu_s": round(time.process_time(), 3),
            "rss_mb": None if rss is None else round(rss, 1)}


# -- Prometheus text format -----------------------------------------------------------------------------

def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{float(value):.9g}"


class Exposition:
    """Builds a Prometheus text exposition (version 0.0.4): one HELP and TYPE per metric family."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, prefix: str = "cryptoarb_") -> None:
        self.prefix = prefix
        self._lines: list[str] = []
        self._seen: set[str] = set()

    def add(self, name: str, kind: str, help_text: str,
            samples: Iterable[tuple[Mapping[str, str], float | None]] | float | None) -> None:
        full = self.prefix + name
        if full in self._seen:
            raise ValueError(f"metric {full} added twice")
        self._seen.add(full)
        if samples is None or isinstance(samples, int | float):
            samples = [({}, samples)]
        rows = [(labels, value) for labels, value in samples if value is not None]
        if not rows:
            return
        self._lines.append(f"# HELP {full} {help_text}")
        self._lines.append(f"# TYPE {full} {kind}")
        for labels, value in rows:
            if labels:
                text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
                self._lines.append(f"{full}{{{text}}} {_number(value)}")
            else:
                self._lines.append(f"{full} {_number(value)}")

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"


def _ms_to_s(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def render_metrics(status: Mapping[str, Any]) -> str:
    """The Prometheus exposition of a ``/status`` document (see docs/run.md for the list)."""
    out = Exposition()
    venue = status.get("venue", "")
    v = {"venue": venue}
    md = status.get("market_data", {})
    books = status.get("books", {})
    lag = status.get("loop_lag_ms", {})
    opp = status.get("opportunities", {})
    orders = status.get("orders", {})
    risk = status.get("risk", {})
    pnl = status.get("pnl", {})
    scanner = status.get("scanner", {})
    storage = status.get("storage", {})
    ws = status.get("venues", {}).get(venue, {}).get("websocket", {})
    rest = status.get("venues", {}).get(venue, {}).get("rest", {})

    out.add("up", "gauge", "1 while the engine runs (state running), else 0.",
            1 if status.get("state") == "running" else 0)
    out.add("uptime_seconds", "gauge", "Seconds since the process started.", status.get("uptime_s"))
    out.add("info", "gauge", "Build and mode of this engine.",
            [({"command": str(status.get("command")), "mode": str(status.get("mode")), "venue": venue,
               "version": str(status.get("app_version"))}, 1)])
    # market data
    out.add("messages_total", "counter", "Market-data messages received (websocket frames carrying books).",
            [(v, md.get("messages"))])
    out.add("messages_per_second", "gauge", "Market-data messages per second over the last 10 s.",
            [(v, md.get("messages_per_s"))])
    out.add("book_updates_total", "counter", "Book updates applied by the engine.", [(v, md.get("updates_applied"))])
    out.add("messages_dropped_total", "counter",
            "Messages received but not applied (undecodable, or the engine raised on them).",
            [(v, md.get("dropped"))])
    out.add("ws_reconnects_total", "counter", "Websocket reconnections.", [(v, md.get("reconnects"))])
    out.add("book_resyncs_total", "counter", "Level2 books resynchronised from a REST snapshot.",
            [(v, md.get("resyncs"))])
    out.add("book_gaps_total", "counter", "Level2 sequence gaps detected.", [(v, md.get("gaps"))])
    out.add("ws_connections", "gauge", "Websocket connections by state.",
            [({**v, "state": state}, n) for state, n in sorted(ws.get("states", {}).items())])
    out.add("ws_topics", "gauge", "Topics wanted and subscribed over all connections.",
            [({**v, "kind": "wanted"}, ws.get("totals", {}).get("topics")),
             ({**v, "kind": "subscribed"}, ws.get("totals", {}).get("subscribed"))])
    # books
    out.add("books", "gauge", "Books held, and how many may be traded on now.",
            [({**v, "state": "total"}, books.get("total")), ({**v, "state": "tradeable"}, books.get("tradeable")),
             ({**v, "state": "stale"}, books.get("stale"))])
    ages = books.get("age_s", {})
    out.add("book_age_seconds", "gauge", "Time since each book's own last update: p50, p99, max over books.",
            [({**v, "stat": k}, ages.get(k)) for k in ("p50", "p99", "max")])
    fresh = books.get("freshness_age_s", {})
    out.add("book_freshness_age_seconds", "gauge",
            "Age the engine's tradeability rule sees (last update or last sign of life of its stream): p50, p99, "
            "max over books.", [({**v, "stat": k}, fresh.get(k)) for k in ("p50", "p99", "max")])
    # the loop
    out.add("loop_lag_seconds", "gauge", "Event-loop lag over the recent window: p50, p99, max since start.",
            [({"stat": k}, _ms_to_s(lag.get(k))) for k in ("p50", "p99", "max")])
    # opportunities and orders
    out.add("opportunities_total", "counter", "Opportunities detected (sized, risk-checked) and executed.",
            [({**v, "outcome": "detected"}, opp.get("detected")), ({**v, "outcome": "executed"}, opp.get("executed"))])
    out.add("opportunities_in_flight", "gauge", "Opportunities handed to the executor, not completed.",
            [(v, opp.get("pending"))])
    out.add("rejections_total", "counter", "Cycles rejected, by reason (one per episode).",
            [({**v, "reason": r}, n) for r, n in sorted(opp.get("rejected_by_reason", {}).items())])
    out.add("orders_total", "counter", "Orders by final status.",
            [({**v, "status": s}, n) for s, n in sorted(orders.get("by_status", {}).items())] or [(v, 0)])
    out.add("order_rejects_total", "counter", "Orders the venue (or paper rules) rejected.",
            [(v, orders.get("rejects"))])
    out.add("trades_total", "counter", "Fills.", [(v, pnl.get("trades"))])
    resolution = orders.get("resolution") or {}
    if resolution:  # live runs
        out.add("order_placements_total", "counter",
                "Orders sent: acknowledged only (final state pushed) or with a REST lookup of their state.",
                [({**v, "via": "ack"}, resolution.get("placed_ack")),
                 ({**v, "via": "rest"}, resolution.get("placed_rest"))])
        out.add("order_resolutions_total", "counter",
                "Orders the venue answered as open, by where their final state came from.",
                [({**v, "source": "push"}, resolution.get("pushed_resolutions")),
                 ({**v, "source": "rest"}, resolution.get("rest_resolutions"))])
        out.add("order_rest_lookups_total", "counter", "REST lookups of orders by client order id.",
                [(v, resolution.get("rest_lookups"))])
    private = status.get("venues", {}).get(venue, {}).get("private") or {}
    if private.get("enabled"):
        out.add("private_ws_up", "gauge", "1 while the private websocket (our orders and balances) is live.",
                [(v, 1 if private.get("live") else 0)])
        out.add("private_updates_total", "counter", "Pushes received over the private websocket, by kind.",
                [({**v, "kind": "order"}, private.get("order_updates")),
                 ({**v, "kind": "balance"}, private.get("balance_updates"))])
        out.add("private_ws_reconnects_total", "counter", "Reconnections of the private websocket.",
                [(v, private.get("reconnects"))])
        out.add("private_ws_lost_total", "counter",
                "Times the private websocket stopped being live (pushes may have been missed).",
                [(v, private.get("lost"))])
        out.add("balance_corrections_total", "counter",
                "Ledger amounts a balance push changed (the booked balance had drifted from the account).",
                [(v, (private.get("balances") or {}).get("corrections"))])
    out.add("realized_pnl_usd", "gauge", "Realized PnL in USD after fees since start.", pnl.get("realized_usd"))
    # risk
    out.add("kill_switch", "gauge", "1 when the kill switch is engaged.", 1 if risk.get("killed") else 0)
    out.add("paused_markets", "gauge", "Markets paused by hand.", len(risk.get("paused", [])))
    # rate limits
    rl = rest.get("rate_limit", {})
    out.add("rest_ratelimit_remaining", "gauge", "Request weight left in the venue's REST pool (last answer).",
            [({**v, "pool": "public"}, rl.get("remaining"))])
    out.add("rest_ratelimit_limit", "gauge", "Request weight of the venue's REST pool per window.",
            [({**v, "pool": "public"}, rl.get("limit"))])
    out.add("ws_client_messages_headroom", "gauge",
            "Client messages (subscribes, pings) still allowed in the current 10 s window, tightest connection.",
            [(v, ws.get("client_message_headroom"))])
    # scanner
    out.add("scans_total", "counter", "REST scans completed.", [(v, scanner.get("scans"))])
    out.add("scan_errors_total", "counter", "REST scans that failed.", [(v, scanner.get("errors"))])
    out.add("scan_duration_seconds", "gauge", "Last scan: fetch + evaluate.",
            [(v, _ms_to_s(scanner.get("last_total_ms")))])
    out.add("watchlist_markets", "gauge", "Markets on the watchlist (streamed in depth).",
            [(v, status.get("watchlist", {}).get("symbols"))])
    # storage, notifiers, tasks
    out.add("storage_queued_rows", "gauge", "Rows waiting to be written.", storage.get("queued"))
    out.add("storage_written_rows_total", "counter", "Rows written, by table.",
            [({"table": t}, n) for t, n in sorted(storage.get("written", {}).items())])
    out.add("storage_dropped_rows_total", "counter", "Low-value rows dropped under overload, by table.",
            [({"table": t}, n) for t, n in sorted(storage.get("dropped", {}).items())])
    out.add("storage_errors_total", "counter", "Failed store writes (retried).", storage.get("errors"))
    dropped = [({"notifier": name, "event": ev}, n) for name, s in sorted(status.get("notifiers", {}).items())
               for ev, n in sorted(s.get("dropped", {}).items())]
    out.add("notifier_dropped_total", "counter", "Events a slow notifier dropped, by notifier and event.", dropped)
    out.add("task_restarts_total", "counter", "Restarts of supervised tasks after a failure.",
            [({"task": n}, s.get("restarts")) for n, s in sorted(status.get("tasks", {}).items())])
    proc = status.get("process", {})
    out.add("process_cpu_seconds_total", "counter", "CPU time of this process.", proc.get("cpu_s"))
    return out.render()
