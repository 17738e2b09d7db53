"""Discord as a remote session, wired onto a running engine when its secrets are set.

The webhook posts events when ``CRYPTOARB_SECRETS__DISCORD_WEBHOOK_URL`` is set; the bot takes slash
commands when ``CRYPTOARB_SECRETS__DISCORD_BOT_TOKEN`` is. Both run on the engine's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from cryptoarb.commands import CommandLayer, EngineAdapter, EventHistory
from cryptoarb.config import Settings
from cryptoarb.engine import Engine
from cryptoarb.notify.base import NotifierHub
from cryptoarb.status import EngineStatus

log = logging.getLogger("cryptoarb.remote")


class RemoteSession:
    def __init__(self, settings: Settings, engine: Engine, hub: NotifierHub, history: EventHistory,
                 status_fn: Callable[[], EngineStatus], clock: Callable[[], float]) -> None:
        self._settings = settings
        self._hub = hub
        self._bot = None
        self._webhook = None
        self._summaries: asyncio.Task[None] | None = None
        self.adapter = EngineAdapter(engine, status_fn, clock=clock, history=history)
        secrets = settings.secrets
        self.enabled = secrets.discord_webhook_url is not None or secrets.discord_bot_token is not None
        if not self.enabled:
            return
        from cryptoarb.notify.discord_webhook import DiscordOptions, DiscordWebhookNotifier

        self.options = DiscordOptions.from_mapping(settings.discord.model_dump())
        if secrets.discord_webhook_url is not None:
            self._webhook = DiscordWebhookNotifier(secrets.discord_webhook_url.get_secret_value(),
                                                   options=self.options)
            hub.add(self._webhook, name="discord-webhook")
        if secrets.discord_bot_token is not None:
            from cryptoarb.notify.discord_bot import DiscordBot

            options = self.options
            layer = CommandLayer(self.adapter, options.access(), confirm_ttl_s=options.kill_confirm_s)
            sinks = [self._webhook] if self._webhook else []
            self._bot = DiscordBot(layer, options, summary_sinks=sinks)
            if self.options.channel_id is not None:
                hub.add(self._bot.notifier, name="discord-channel")

    async def start(self) -> None:
        hour = self.options.daily_summary_hour_utc if self.enabled else None
        if self._bot is None and self._webhook is not None and hour is not None:
            # no bot to schedule it (it sends the summary itself, to its channel and the webhook)
            from cryptoarb.notify.discord_webhook import run_daily_summaries

            self._summaries = asyncio.create_task(run_daily_summaries(self.adapter, [self._webhook], hour),
                                                  name="discord-daily-summary")
        if self._bot is not None:
            token = self._settings.secrets.discord_bot_token
            assert token is not None
            try:
                await self._bot.start(token)
            except Exception as exc:  # a bad token or no network must not stop trading
                log.error("discord bot could not start: %s", type(exc).__name__)
                self._bot = None

    async def close(self) -> None:
        if self._summaries is not None:
            self._summaries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._summaries
            self._summaries = None
        if self._bot is not None:
            with contextlib.suppress(Exception):
                await self._bot.close()
