"""/metrics is valid Prometheus text built from the /status document; the endpoint serves both locally."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from run_helpers import parse_prometheus as parse

from cryptoarb.run.metrics import Exposition, LagHistogram, RateMeter, render_metrics
from cryptoarb.run.status_server import StatusServer


def status_doc() -> dict[str, Any]:
    return {
        "state": "running", "venue": "kucoin", "command": "run", "mode": "paper", "app_version": "0.1.0",
        "uptime_s": 12.5,
        "venues": {"kucoin": {"rest": {"rate_limit": {"limit": 2000, "remaining": 1770, "reset_ms": 900}},
                              "websocket": {"states": {"live": 2}, "totals": {"topics": 101, "subscribed": 101},
                                            "client_message_headroom": 84}}},
        "market_data": {"messages": 150_000, "messages_per_s": 12_010.5, "updates_applied": 150_000, "dropped": 0,
                        "reconnects": 1, "resyncs": 3, "gaps": 2},
        "books": {"total": 1250, "tradeable": 1249, "stale": 1, "age_s": {"p50": 0.05, "p99": 0.1, "max": 2.5},
                  "freshness_age_s": {"p50": 0.01, "p99": 0.01, "max": 0.01}},
        "loop_lag_ms": {"p50": 0.3, "p99": 3.9, "max": 20.0},
        "opportunities": {"detected": 10, "executed": 8, "pending": 1,
                          "rejected_by_reason": {"cooldown": 3, 'we"ird\\reason': 1}},
        "orders": {"by_status": {"filled": 20, "rejected": 2}, "rejects": 2},
        "pnl": {"realized_usd": -1.25, "trades": 20}, "risk": {"killed": False, "paused": []},
        "scanner": {"scans": 6, "errors": 1, "last_total_ms": 12.0}, "watchlist": {"symbols": 100},
        "storage": {"queued": 0, "written": {"fills": 20}, "dropped": {}, "errors": 0},
        "notifiers": {"console": {"dropped": {"Rejection": 4}}},
        "tasks": {"scanner": {"restarts": 1}, "market-data": {"restarts": 0}},
        "process": {"cpu_s": 3.5},
    }


def test_the_exposition_covers_the_issue_and_parses() -> None:
    families = parse(render_metrics(status_doc()))
    value = {name: {tuple(sorted(labels.items())): v for labels, v in samples} for name, samples in families.items()}
    v = (("venue", "kucoin"),)
    assert value["cryptoarb_messages_per_second"][v] == 12_010.5
    assert value["cryptoarb_book_age_seconds"][(("stat", "max"), *v)] == 2.5
    assert value["cryptoarb_book_resyncs_total"][v] == 3
    assert value["cryptoarb_ws_reconnects_total"][v] == 1
    assert value["cryptoarb_loop_lag_seconds"][(("stat", "p99"),)] == pytest.approx(0.0039)
    assert value["cryptoarb_opportunities_total"][(("outcome", "executed"), *v)] == 8
    assert value["cryptoarb_orders_total"][(("status", "filled"), *v)] == 20
    assert value["cryptoarb_order_rejects_total"][v] == 2
    assert value["cryptoarb_rest_ratelimit_remaining"][(("pool", "public"), *v)] == 1770
    assert value["cryptoarb_ws_client_messages_headroom"][v] == 84
    assert value["cryptoarb_up"][()] == 1
    assert value["cryptoarb_task_restarts_total"][(("task", "scanner"),)] == 1
    assert value["cryptoarb_rejections_total"][(("reason", 'we\\"ird\\\\reason'), *v)] == 1


def test_missing_figures_are_left_out_not_invented() -> None:
    families = parse(render_metrics({"state": "connecting", "venue": "kucoin"}))
    assert families["cryptoarb_up"] == [({}, 0.0)]
    assert "cryptoarb_messages_per_second" not in families
    with pytest.raises(ValueError, match="twice"):
        out = Exposition()
        out.add("x", "gauge", "x", 1)
        out.add("x", "gauge", "x", 2)


def test_rate_meter_over_a_sliding_window() -> None:
    meter = RateMeter(window_s=10)
    for t in range(30):
        meter.sample(float(t), t * 100 + (t > 20) * 1000 * (t - 20))
    # the window spans t = 19..29: (c(29) - c(19)) / 10
    assert meter.rate() == pytest.approx(((2900 + 9000) - 1900) / 10)


def test_lag_histogram_percentiles_within_five_percent() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    samples = np.concatenate([rng.exponential(0.3, 100_000), rng.uniform(5, 50, 300)])
    hist = LagHistogram()
    for x in samples:
        hist.add(float(x))
    for q in (50, 99, 99.9):
        exact = float(np.percentile(samples, q))
        assert exact <= hist.percentile(q) <= exact * 1.06
    assert LagHistogram().percentile(99) == 0.0


async def test_status_server_serves_status_metrics_and_health() -> None:
    doc = status_doc()
    server = StatusServer(lambda: doc, port=0)
    port = await server.start()
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/status") as resp:
                assert resp.status == 200 and resp.content_type == "application/json"
                assert (await resp.json())["market_data"]["messages"] == 150_000
            async with http.get(server.url + "/metrics") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                parse(await resp.text())
            async with http.get(server.url + "/healthz") as resp:
                assert resp.status == 200
            doc["state"] = "stopping"
            async with http.get(server.url + "/healthz") as resp:
                assert resp.status == 503 and (await resp.text()).strip() == "stopping"
        taken = StatusServer(lambda: doc, port=port)
        with pytest.raises(OSError):
            await taken.start()
    finally:
        await server.stop()
