"""Discord notifications over a webhook: one plain aiohttp POST of embeds per message.

Events become embeds (:func:`embed_for`); :class:`~cryptoarb.notify.aggregate.QueuedNotifier` does
the queueing, aggregation and retries; this module adds Discord's rate-limit rules: a 429's
``retry_after`` is waited out, and when ``X-RateLimit-Remaining`` reaches 0 the next send waits for
``X-RateLimit-Reset-After``. The webhook URL holds the webhook's token: it is never logged or shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr

from cryptoarb.commands import AccessPolicy, CommandResult, EngineControls, daily_summary, path_text, usd
from cryptoarb.model import Execution, Notice, Opportunity, OrderResult, OrderStatus, Rejection, Side
from cryptoarb.notify.aggregate import (
    Burst,
    Category,
    DeliveryPolicy,
    EventSwitches,
    Outgoing,
    QueuedNotifier,
    RateLimited,
    RetryLater,
    Undeliverable,
    category,
    notice_category,
)

log = logging.getLogger("cryptoarb.notify")

CHART_NAME = "pnl.png"
MESSAGE_BUDGET = 5_800
"""Discord allows 6,000 characters across all embeds of one message."""

COLORS = {
    Category.OPPORTUNITY: 0x3498DB, Category.REJECTION: 0x95A5A6, Category.TRADE: 0x2ECC71,
    Category.FILL: 0x1ABC9C, Category.FAILED_LEG: 0xE67E22, Category.RISK: 0xE74C3C,
    Category.CONNECTION: 0x7F8C8D, Category.ERROR: 0xC0392B, Category.DAILY_SUMMARY: 0x9B59B6,
    Category.OTHER: 0x95A5A6,
}
LOSS = 0xE74C3C
OK, NOT_OK = 0x2ECC71, 0xE74C3C


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    """Everything Discord-side that is not a secret (the webhook URL and bot token are secrets)."""

    username: str = "cryptoarb"
    guild_id: int | None = None
    channel_id: int | None = None
    admin_user_ids: frozenset[int] = frozenset()
    admin_role_id: int | None = None
    restrict_reads: bool = False
    reader_user_ids: frozenset[int] = frozenset()
    reader_role_id: int | None = None
    command_prefix: str = "!"
    prefix_commands: bool = False
    sync_commands: bool = True
    kill_confirm_s: float = 60.0
    daily_summary_hour_utc: int | None = 0
    aggregate_window_s: float = 10.0
    max_queue: int = 500
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    request_timeout_s: float = 10.0
    close_timeout_s: float = 5.0
    events: EventSwitches = field(default_factory=EventSwitches)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DiscordOptions:
        """From a plain mapping such as ``settings.discord.model_dump()``; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("admin_user_ids", "reader_user_ids"):
            if key in values:
                values[key] = frozenset(int(v) for v in values[key])
        if isinstance(values.get("events"), Mapping):
            values["events"] = EventSwitches(**values["events"])
        return cls(**values)

    def delivery(self) -> DeliveryPolicy:
        return DeliveryPolicy(window_s=self.aggregate_window_s, max_queue=self.max_queue,
                              max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
                              backoff_max_s=self.backoff_max_s, close_timeout_s=self.close_timeout_s)

    def access(self) -> AccessPolicy:
        return AccessPolicy(self.admin_user_ids, self.admin_role_id, self.restrict_reads,
                            self.reader_user_ids, self.reader_role_id)


@dataclass(frozen=True, slots=True)
class Report:
    """A command result sent as a notification, optionally with a PNG chart (the daily summary)."""

    result: CommandResult
    png: bytes | None = None


class ReportSink(Protocol):
    def send_report(self, report: Report) -> None: ...


# -- embeds ------------------------------------------------------------------------------------

def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dec(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _field(name: str, value: str, inline: bool = True) -> dict[str, Any]:
    return {"name": _clip(name, 256) or "-", "value": _clip(value, 1024) or "-", "inline": inline}


def _timestamp(at: float) -> dict[str, str]:
    # Engine time is simulated seconds in the demo and replay; only a real clock makes a timestamp.
    return {"timestamp": datetime.fromtimestamp(at, UTC).isoformat()} if at > 1e9 else {}


def execution_embed(ex: Execution) -> dict[str, Any]:
    opp = ex.opportunity
    filled = [r for r in ex.results if r.fills]
    failed = [r for r in ex.results if r.status is not OrderStatus.FILLED]
    if not filled:
        title, color = "Trade not filled", COLORS[Category.OTHER]
    elif failed:
        title, color = "Trade: leg failed", COLORS[Category.FAILED_LEG]
    else:
        title, color = "Trade executed", COLORS[Category.TRADE] if ex.realized_profit_usd >= 0 else LOSS
    legs = []
    for r in ex.results:
        o = r.order
        size = r.filled_size
        avg = sum((f.price * f.size for f in r.fills), Decimal(0)) / size if size else o.price
        line = f"{o.side.value} {o.symbol}@{o.venue} {_dec(size)}/{_dec(o.size)} @ {_dec(avg)}"
        legs.append(f"{line}: {r.status.value}" + (f" ({r.reason})" if r.reason else ""))
    # what the first leg really drew (a partial fill spends less than planned), and what came back of it
    first = next((r for r in ex.results if r.order.leg_index == 0), None)
    spent = _spent(first, opp.legs[0].asset_in) if first is not None and opp.legs else opp.input
    output = spent + ex.realized_profit
    return {
        "title": f"{title} ({ex.mode})",
        "description": f"{path_text(opp.path)} ({opp.kind})",
        "color": color,
        "fields": [
            _field("Path", path_text(opp.path), inline=False),
            _field("Legs", "\n".join(legs) or "no orders", inline=False),
            _field("Input", f"{_dec(spent)} {opp.start_asset} (planned {_dec(opp.input)})"),
            _field("Output", f"{_dec(output)} {opp.start_asset} (planned {_dec(opp.output)})"),
            _field("Realized PnL",
                   f"{_dec(ex.realized_profit)} {opp.start_asset} ({usd(ex.realized_profit_usd)})"),
            _field("Fees", f"${ex.fees_usd:,.2f}"),
        ],
        "footer": {"text": opp.id},
        **_timestamp(ex.at),
    }


def _spent(result: OrderResult, asset: str) -> Decimal:
    """What ``result``'s fills took of ``asset``, its order's input: a BUY's cost, a SELL's size, and the
    fees charged in that asset."""
    taken = sum((f.price * f.size if f.side is Side.BUY else f.size for f in result.fills), Decimal(0))
    return taken + sum((f.fee for f in result.fills if f.fee_asset == asset), Decimal(0))


def opportunity_embed(opp: Opportunity) -> dict[str, Any]:
    legs = "\n".join(f"{leg.side.value} {leg.symbol}@{leg.venue} {_dec(leg.size)} @ {_dec(leg.limit_price)}"
                     for leg in opp.legs)
    return {
        "title": f"Opportunity: {opp.net_return_bps:.1f} bps",
        "description": f"{path_text(opp.path)} ({opp.kind})",
        "color": COLORS[Category.OPPORTUNITY],
        "fields": [
            _field("Path", path_text(opp.path), inline=False),
            _field("Return", f"{opp.net_return_bps:.1f} bps"),
            _field("Expected profit", f"{_dec(opp.profit)} {opp.start_asset} ({usd(opp.profit_usd)})"),
            _field("Input", f"{_dec(opp.input)} {opp.start_asset}"),
            _field("Legs", legs or "-", inline=False),
        ],
        "footer": {"text": opp.id},
        **_timestamp(opp.detected_at),
    }


def notice_embed(notice: Notice) -> dict[str, Any]:
    return {
        "title": _clip(notice.kind, 256),
        "description": _clip(notice.message, 2000),
        "color": COLORS[notice_category(notice.kind)],
        "fields": [_field(k, v) for k, v in list(notice.fields.items())[:20]],
        **_timestamp(notice.at),
    }


def rejection_embed(rejection: Rejection) -> dict[str, Any]:
    return {
        "title": f"Rejected: {rejection.reason.value}",
        "description": _clip(f"{path_text(rejection.path)} {rejection.detail}".strip(), 2000),
        "color": COLORS[Category.REJECTION],
    }


def burst_embed(burst: Burst) -> dict[str, Any]:
    color = COLORS[burst.category]
    if burst.category is Category.OPPORTUNITY and burst.best is not None:
        best = burst.best
        return {
            "title": f"{burst.count} more opportunities",
            "description": "aggregated: one message per burst",
            "color": color,
            "fields": [
                _field("Count", f"{burst.count:,}"),
                _field("Best", f"{best.net_return_bps:.1f} bps, {usd(best.profit_usd)}"),
                _field("Expected profit (sum)", usd(burst.profit_usd)),
                _field("Best path", path_text(best.path), inline=False),
            ],
        }
    if burst.category is Category.REJECTION:
        return {
            "title": f"{burst.count:,} rejections",
            "color": color,
            "fields": [_field("Count", f"{burst.count:,}")]
            + [_field(reason, f"{n:,}") for reason, n in burst.labels.most_common(10)],
        }
    last = burst.last
    message = last.message if isinstance(last, Notice) else ""
    kind = last.kind if isinstance(last, Notice) else burst.category.value
    return {
        "title": f"{burst.count:,} x {kind}",
        "description": _clip(f"latest: {message}", 2000),
        "color": color,
        "fields": [_field("Count", f"{burst.count:,}")],
    }


def result_embed(result: CommandResult) -> dict[str, Any]:
    embed: dict[str, Any] = {
        "title": _clip(result.title, 256),
        "color": OK if result.ok else NOT_OK,
        "fields": [_field(f.name, f.value, f.inline) for f in result.fields[:25]],
    }
    if result.text:
        embed["description"] = _clip(result.text, 4096)
    return embed


def embed_for(item: Any) -> dict[str, Any]:
    """The embed for anything a notifier queues: an event, a burst or a report."""
    if isinstance(item, Execution):
        return execution_embed(item)
    if isinstance(item, Opportunity):
        return opportunity_embed(item)
    if isinstance(item, Notice):
        return notice_embed(item)
    if isinstance(item, Rejection):
        return rejection_embed(item)
    if isinstance(item, Burst):
        return burst_embed(item)
    if isinstance(item, Report):
        embed = result_embed(item.result)
        embed["color"] = COLORS[Category.DAILY_SUMMARY]
        if item.png is not None:
            embed["image"] = {"url": f"attachment://{CHART_NAME}"}
        return embed
    raise TypeError(f"cannot render {type(item).__name__}")


def embed_chars(embed: Mapping[str, Any]) -> int:
    """Characters Discord counts toward its 6,000 per message."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += len(embed.get("footer", {}).get("text", "")) + len(embed.get("author", {}).get("name", ""))
    return total + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", ()))


# -- the notifier ------------------------------------------------------------------------------

SessionFactory = Callable[[], aiohttp.ClientSession]


def _retry_after(body: bytes, headers: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(json.loads(body)["retry_after"]))
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return max(0.0, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


class EmbedNotifier(QueuedNotifier):
    """A QueuedNotifier whose messages are Discord embeds, batched within Discord's size limit."""

    def send_report(self, report: Report) -> None:
        self.submit_item(report, Category.DAILY_SUMMARY)

    def _cost(self, out: Outgoing) -> int:
        if out.rendered is None:
            out.rendered = embed_for(out.item)
        return embed_chars(out.rendered)

    def _batch_budget(self) -> int:
        return MESSAGE_BUDGET


class DiscordWebhookNotifier(EmbedNotifier):
    """Implements the Notifier protocol: ``notify(event)`` only queues; a sender task posts."""

    name = "discord-webhook"

    def __init__(self, url: str | SecretStr, session_factory: SessionFactory | None = None,
                 options: DiscordOptions | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options or DiscordOptions()
        super().__init__(self.options.delivery(), self.options.events, clock)
        self._url = url.get_secret_value() if isinstance(url, SecretStr) else url
        self._session_factory = session_factory or self._default_session
        self._session: aiohttp.ClientSession | None = None
        self._blocked_until = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url='********')"

    def _default_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.options.request_timeout_s))

    async def _open(self) -> None:
        if self._session is None:
            self._session = self._session_factory()

    async def _shutdown(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _deliver(self, batch: list[Outgoing]) -> None:
        wait = self._blocked_until - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._session is None:
            raise RetryLater("no HTTP session")
        embeds = [out.rendered if out.rendered is not None else embed_for(out.item) for out in batch]
        payload = {"username": self.options.username, "embeds": embeds, "allowed_mentions": {"parse": []}}
        png = next((out.item.png for out in batch if isinstance(out.item, Report) and out.item.png), None)
        timeout = aiohttp.ClientTimeout(total=self.options.request_timeout_s)
        try:
            if png is None:
                request = self._session.post(self._url, json=payload, timeout=timeout)
            else:
                payload["attachments"] = [{"id": 0, "filename": CHART_NAME}]
                form = aiohttp.FormData()
                form.add_field("payload_json", json.dumps(payload), content_type="application/json")
                form.add_field("files[0]", png, filename=CHART_NAME, content_type="image/png")
                request = self._session.post(self._url, data=form, timeout=timeout)
            async with request as response:
                self._note_bucket(response.headers)
                if response.status == 429:
                    raise RateLimited(_retry_after(await response.read(), response.headers))
                if response.status >= 500:
                    raise RetryLater(f"HTTP {response.status}")
                if response.status >= 400:
                    raise Undeliverable(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # Only the type: aiohttp's messages can carry the URL, and the URL carries the token.
            raise RetryLater(type(exc).__name__) from None

    def _note_bucket(self, headers: Mapping[str, str]) -> None:
        remaining, reset_after = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset-After")
        if remaining is None or reset_after is None:
            return
        try:
            if float(remaining) <= 0:
                self._blocked_until = self.clock() + float(reset_after)
        except ValueError:
            return


# -- the daily summary -------------------------------------------------------------------------

async def daily_report(controls: EngineControls, now: float | None = None) -> Report:
    """The daily summary with its PnL chart; the chart renders in a thread, off the event loop."""
    from cryptoarb.charts import pnl_chart_png  # matplotlib costs ~0.3 s to import: only when a report is due

    result = await daily_summary(controls, now)
    points = await controls.pnl_points("24h")
    png = await asyncio.to_thread(pnl_chart_png, points, title="Realized PnL, last 24 h (USD)")
    return Report(result, png)


def seconds_until(hour_utc: int, now: float) -> float:
    """Seconds from ``now`` (Unix time) to the next ``hour_utc``:00 UTC."""
    day = 86_400.0
    target = now - now % day + hour_utc * 3600.0
    return target - now if target > now else target + day - now


async def run_daily_summaries(controls: EngineControls, sinks: Sequence[ReportSink], hour_utc: int,
                              clock: Callable[[], float] = time.time) -> None:
    """Send the daily report to every sink at ``hour_utc`` each day, until cancelled."""
    while True:
        await asyncio.sleep(seconds_until(hour_utc, clock()))
        try:
            report = await daily_report(controls, clock())
        except Exception:
            log.exception("daily summary failed")
            continue
        for sink in sinks:
            sink.send_report(report)


__all__ = [
    "DiscordOptions", "DiscordWebhookNotifier", "EmbedNotifier", "EventSwitches", "Report", "category",
    "daily_report", "embed_for", "result_embed", "run_daily_summaries",
]
