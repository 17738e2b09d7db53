"""DiscordWebhookNotifier against the loopback fake: embeds, rate limits, retries, aggregation, dead ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from fake_discord import (
    WEBHOOK_TOKEN,
    FakeDiscord,
    Reply,
    execution,
    notice,
    opportunity,
    rate_limited,
    refused_url,
    rejection,
)
from pydantic import SecretStr

from cryptoarb.commands import Caller, CommandResult, Field
from cryptoarb.model import OrderResult, OrderStatus
from cryptoarb.notify import Notifier
from cryptoarb.notify.aggregate import EventSwitches
from cryptoarb.notify.discord_webhook import (
    DiscordOptions,
    DiscordWebhookNotifier,
    Report,
    execution_embed,
    seconds_until,
)

FAST = DiscordOptions(backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=3, request_timeout_s=2.0,
                      close_timeout_s=1.0, aggregate_window_s=60.0)
PNG = b"\x89PNG\r\n\x1a\nnot really an image"


class LogWaiter(logging.Handler):
    """Sets an asyncio.Event when a record containing ``text`` is logged (logging is synchronous)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = asyncio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def notify_log() -> AsyncIterator[LogWaiter]:
    waiter = LogWaiter("could not deliver")
    logger = logging.getLogger("cryptoarb.notify")
    logger.addHandler(waiter)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield waiter
    logger.removeHandler(waiter)
    logger.setLevel(old)


def fields_of(embed: dict) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_embeds_carry_the_key_fields_of_each_event(fake: FakeDiscord) -> None:
    notifier = DiscordWebhookNotifier(SecretStr(fake.url), options=FAST)
    assert isinstance(notifier, Notifier)
    await notifier.notify(execution(1))
    await notifier.notify(opportunity(2, bps=17.25))
    await notifier.notify(notice("risk", "kill switch engaged", by="user 1"))
    await notifier.notify(execution(3, fail_last=True, realized_usd=-1.5))
    assert await notifier.flush(timeout=5)
    await notifier.close()

    assert all(r.payload["username"] == "cryptoarb" for r in fake.accepted)
    assert all(r.payload["allowed_mentions"] == {"parse": []} for r in fake.accepted)
    by_title = {e["title"]: e for e in fake.embeds}
    assert set(by_title) == {"Trade executed (paper)", "Opportunity: 17.2 bps", "risk",
                             "Trade: leg failed (paper)"}

    trade = fields_of(by_title["Trade executed (paper)"])
    assert trade["Path"] == "USDT → BTC → ETH → USDT"
    assert trade["Legs"].splitlines()[0] == "buy BTC-USDT@kucoin 0.0015/0.0015 @ 65000: filled"
    assert trade["Input"] == "97.5975 USDT (planned 97.5)"  # the first leg's cost and its fee in USDT
    assert trade["Output"] == "98.0175 USDT (planned 98)"
    assert trade["Realized PnL"] == "0.42 USDT (+$0.42)"
    assert trade["Fees"] == "$0.20"
    assert by_title["Trade executed (paper)"]["footer"]["text"] == "op0000001-c3"

    failed = fields_of(by_title["Trade: leg failed (paper)"])
    assert failed["Legs"].splitlines()[2].endswith("rejected (insufficient liquidity)")
    assert failed["Realized PnL"].endswith("(-$1.50)")

    opp = fields_of(by_title["Opportunity: 17.2 bps"])
    assert opp["Return"] == "17.2 bps" and opp["Expected profit"] == "0.5 USDT (+$0.50)"
    assert opp["Path"] == "USDT → BTC → ETH → USDT" and len(opp["Legs"].splitlines()) == 3

    risk = by_title["risk"]
    assert risk["description"] == "kill switch engaged" and fields_of(risk) == {"by": "user 1"}


async def test_a_429_is_waited_out_and_the_message_delivered_exactly_once(fake: FakeDiscord) -> None:
    fake.script.append(rate_limited(0.2))
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    await notifier.notify(execution(1))
    assert await notifier.flush(timeout=5)
    await notifier.close()
    assert [r.status for r in fake.received] == [429, 204]
    assert len(fake.accepted) == 1 and len(fake.embeds) == 1
    assert fake.received[1].at - fake.received[0].at >= 0.19
    assert notifier.delivered == 1 and not notifier.failed


async def test_an_exhausted_rate_limit_bucket_delays_the_next_send(fake: FakeDiscord) -> None:
    fake.script.append(Reply(204, headers={"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                                           "X-RateLimit-Reset-After": "0.25"}))
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    await notifier.notify(execution(1))
    assert await notifier.flush(timeout=5)
    await notifier.notify(execution(2))
    assert await notifier.flush(timeout=5)
    await notifier.close()
    assert [r.status for r in fake.received] == [204, 204]
    assert fake.received[1].at - fake.received[0].at >= 0.24


async def test_5xx_is_retried_with_backoff(fake: FakeDiscord) -> None:
    fake.script.extend([Reply(503), Reply(502)])
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    await notifier.notify(execution(1))
    assert await notifier.flush(timeout=5)
    await notifier.close()
    assert [r.status for r in fake.received] == [503, 502, 204]
    assert notifier.delivered == 1


async def test_a_4xx_is_not_retried_and_a_lost_trade_is_logged(fake: FakeDiscord,
                                                               notify_log: LogWaiter) -> None:
    fake.default = Reply(404, {"message": "Unknown Webhook", "code": 10015})
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    await notifier.notify(execution(1))
    await asyncio.wait_for(notify_log.seen.wait(), 5)
    await notifier.close()
    assert len(fake.received) == 1
    assert notifier.failed == {"trade": 1}
    assert "trade op0000001-c3" in notify_log.records[-1].getMessage()


async def test_a_burst_of_100_opportunities_becomes_a_few_messages(fake: FakeDiscord) -> None:
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    for i in range(100):
        await notifier.notify(opportunity(i, bps=10.0 + i))
    for i in range(50):
        await notifier.notify(rejection(i))
    assert await notifier.flush(timeout=5)
    await notifier.close()
    assert 1 <= len(fake.accepted) <= 3
    titles = [e["title"] for e in fake.embeds]
    assert titles == ["Opportunity: 10.0 bps", "99 more opportunities"]
    burst = fields_of(fake.embeds[1])
    assert burst["Count"] == "99" and burst["Best"].startswith("109.0 bps")
    assert notifier.disabled == {"rejection": 50}  # rejections are off unless switched on


async def test_rejections_switched_on_arrive_only_as_counts(fake: FakeDiscord) -> None:
    options = DiscordOptions(aggregate_window_s=60.0, events=EventSwitches(rejection=True, opportunity=False))
    notifier = DiscordWebhookNotifier(fake.url, options=options)
    for i in range(30):
        await notifier.notify(rejection(i))
        await notifier.notify(opportunity(i))
    assert await notifier.flush(timeout=5)
    await notifier.close()
    (embed,) = fake.embeds
    assert embed["title"] == "30 rejections" and fields_of(embed)["insufficient_depth"] == "30"
    assert notifier.disabled == {"opportunity": 30}


async def test_a_report_goes_out_as_multipart_with_the_chart(fake: FakeDiscord) -> None:
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    notifier.send_report(Report(CommandResult("Daily summary", (Field("Realized today", "+$1.00"),)), PNG))
    assert await notifier.flush(timeout=5)
    await notifier.close()
    (received,) = fake.accepted
    assert received.files == {"files[0]": PNG}
    (embed,) = received.payload["embeds"]
    assert embed["title"] == "Daily summary" and embed["image"] == {"url": "attachment://pnl.png"}
    assert received.payload["attachments"] == [{"id": 0, "filename": "pnl.png"}]


async def test_a_refused_endpoint_never_slows_notify_and_trades_are_retried_then_logged(
        notify_log: LogWaiter) -> None:
    url = refused_url()
    notifier = DiscordWebhookNotifier(url, options=FAST)
    events = [execution(i) if i % 100 == 0 else opportunity(i) for i in range(1000)]
    started = time.perf_counter()
    for event in events:
        await notifier.notify(event)
    elapsed = time.perf_counter() - started
    # a dead endpoint would cost seconds (connect timeouts); queueing costs microseconds a call
    assert elapsed < 0.5, f"1000 notify() calls took {elapsed * 1000:.1f} ms"
    await asyncio.wait_for(notify_log.seen.wait(), 5)
    lost = notify_log.records[-1].getMessage()
    assert "after 3 attempt(s)" in lost and "ClientConnectorError" in lost and "trade op" in lost
    await notifier.close()
    assert notifier.failed["trade"] == 10  # every trade notice accounted for, none silently dropped
    messages = " ".join(r.getMessage() for r in notify_log.records) + repr(notifier)
    assert WEBHOOK_TOKEN not in messages and url not in messages


async def test_a_silent_server_never_slows_notify_and_only_market_noise_is_dropped(
        fake: FakeDiscord, notify_log: LogWaiter) -> None:
    fake.default = Reply(hang=True)
    options = DiscordOptions(aggregate_window_s=0.0, max_queue=10, request_timeout_s=30.0,
                             close_timeout_s=0.2)
    notifier = DiscordWebhookNotifier(fake.url, options=options)
    await notifier.notify(execution(0))
    await fake.wait_for(lambda f: len(f.received) == 1)  # the sender is now stuck in a request
    events = [execution(i) if i % 10 == 0 else opportunity(i) for i in range(1, 1001)]
    started = time.perf_counter()
    for event in events:
        await notifier.notify(event)
    elapsed = time.perf_counter() - started
    # a dead endpoint would cost seconds (connect timeouts); queueing costs microseconds a call
    assert elapsed < 0.5, f"1000 notify() calls took {elapsed * 1000:.1f} ms"
    assert notifier.dropped["opportunity"] == 900 - 10
    assert notifier.queued == 1 + 100 + 10  # in flight + every trade + a full queue of opportunities
    await notifier.close()
    assert notifier.failed["trade"] == 101
    assert "shutdown before delivery" in notify_log.records[-1].getMessage()
    lines = [r.getMessage() for r in notify_log.records]
    # the trade in flight had its request; the 100 queued behind it had none
    assert sum("after 1 attempt(s): shutdown before it could be delivered" in line for line in lines) == 1
    assert sum("after 0 attempt(s): shutdown before delivery" in line for line in lines) == 100


async def test_the_webhook_url_is_never_logged(fake: FakeDiscord, notify_log: LogWaiter,
                                               caplog: pytest.LogCaptureFixture) -> None:
    fake.default = Reply(500)
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    with caplog.at_level(logging.DEBUG):
        await notifier.notify(execution(1))
        await notifier.notify(notice("error", "boom"))
        await asyncio.wait_for(notify_log.seen.wait(), 5)
        await notifier.close()
    text = caplog.text + repr(notifier) + str(notifier.__dict__.get("options"))
    assert WEBHOOK_TOKEN not in text and fake.url not in text


async def test_notify_after_close_is_counted_not_queued(fake: FakeDiscord, notify_log: LogWaiter) -> None:
    notifier = DiscordWebhookNotifier(fake.url, options=FAST)
    await notifier.close()
    await notifier.notify(opportunity(1))
    await notifier.notify(execution(1))
    assert notifier.queued == 0 and notifier.dropped == {"opportunity": 1} and notifier.failed == {"trade": 1}
    assert fake.received == []


def test_daily_summary_schedule() -> None:
    midnight = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    assert seconds_until(0, midnight) == 86_400.0
    assert seconds_until(0, midnight + 10) == 86_390.0
    assert seconds_until(6, midnight + 3600) == 5 * 3600.0


def test_options_from_a_settings_mapping() -> None:
    options = DiscordOptions.from_mapping({
        "admin_user_ids": [1, "2"], "channel_id": 42, "events": {"opportunity": False}, "enabled": True})
    assert options.admin_user_ids == frozenset({1, 2}) and options.channel_id == 42
    assert not options.events.opportunity and options.events.trade
    assert options.access().may_change(Caller(2)) and not options.access().may_change(Caller(3))


def test_a_trade_message_shows_what_a_partial_first_leg_really_spent() -> None:
    ex = execution()
    first = ex.results[0]
    half = replace(first.fills[0], size=first.fills[0].size / 2, fee=first.fills[0].fee / 2)
    partial = replace(ex, results=(OrderResult(first.order, OrderStatus.PARTIAL, (half,)), *ex.results[1:]))
    fields = fields_of(execution_embed(partial))
    assert fields["Input"] == "48.79875 USDT (planned 97.5)"  # 0.00075 BTC at 65,000 plus its fee
    assert fields["Output"] == "49.21875 USDT (planned 98)"


async def test_a_webhook_alone_gets_the_daily_summary(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path) -> None:
    # with no bot configured, nothing used to schedule the daily summary the docs promise the webhook
    from cryptoarb import remote
    from cryptoarb.commands import EventHistory
    from cryptoarb.config import Settings
    from cryptoarb.demo import engine_status
    from cryptoarb.engine import Engine
    from cryptoarb.looplag import LoopLagMonitor
    from cryptoarb.notify import discord_webhook
    from cryptoarb.notify.base import NotifierHub

    due = iter([0.0])  # the first summary is due now, the next in a day
    monkeypatch.setattr(discord_webhook, "seconds_until", lambda hour, now: next(due, 86_400.0))
    monkeypatch.setenv("CRYPTOARB_SECRETS__DISCORD_WEBHOOK_URL", fake.url)
    settings = Settings(data_dir=tmp_path, discord={"daily_summary_hour_utc": 0})
    engine = Engine(settings, {}, [], lambda _e: None)
    hub = NotifierHub([])
    lag, started = LoopLagMonitor(), time.monotonic()
    session = remote.RemoteSession(settings, engine, hub, EventHistory(),
                                   lambda: engine_status(engine, lag, 0.0, started, "", "paper"), time.time)
    hub_task = asyncio.create_task(hub.run())
    await session.start()
    try:
        await fake.wait_for(lambda f: any(e.get("title") == "Daily summary" for e in f.embeds))
    finally:
        await session.close()
        await hub.close()
        await hub_task
