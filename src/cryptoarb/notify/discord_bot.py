"""The Discord bot: a remote session over :class:`~cryptoarb.commands.CommandLayer`.

Slash commands (``/status``, ``/pnl``, ... ``/kill``) and the same commands with a prefix (``!status``)
are thin wrappers: they build a :class:`Caller` from the Discord user and render the
:class:`CommandResult` as an embed. Authorization lives in the command layer, not here. The bot runs
on the engine's event loop as one more task (:meth:`DiscordBot.start`), and :attr:`DiscordBot.notifier`
posts engine events to a channel with the same queueing, aggregation and retries as the webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any, Literal

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from pydantic import SecretStr

from cryptoarb.commands import COMMANDS, USAGE, Caller, CommandLayer, CommandResult
from cryptoarb.notify.aggregate import (
    Outgoing,
    RateLimited,
    RetryLater,
    Undeliverable,
)
from cryptoarb.notify.discord_webhook import (
    CHART_NAME,
    DiscordOptions,
    EmbedNotifier,
    Report,
    ReportSink,
    daily_report,
    embed_for,
    result_embed,
    run_daily_summaries,
)

log = logging.getLogger("cryptoarb.discord")

PRIVATE = frozenset({"config", "kill", "confirm", "cancel"})
"""Answered ephemerally: configuration, and the kill prompt whose button only its requester may press."""


def caller_of(user: discord.abc.User | discord.Member) -> Caller:
    roles = getattr(user, "roles", ())
    return Caller(user.id, frozenset(role.id for role in roles))


def to_embed(result: CommandResult) -> discord.Embed:
    return discord.Embed.from_dict(result_embed(result))


class KillConfirmView(discord.ui.View):
    """Confirm / Cancel buttons under a kill prompt; only the user who asked may press them."""

    def __init__(self, layer: CommandLayer, requester: Caller, token: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.layer = layer
        self.requester = requester
        self.token = token
        self.result: CommandResult | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.requester.user_id:
            return True
        logging.getLogger("cryptoarb.commands").warning(
            "refused kill confirmation for user %s (kill was requested by user %s)", interaction.user.id,
            self.requester.user_id)
        denial = CommandResult("Not allowed", text="only the user who asked for the kill can confirm it",
                               ok=False)
        await interaction.response.send_message(embed=to_embed(denial), ephemeral=True)
        return False

    @discord.ui.button(label="Confirm kill", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _button: discord.ui.Button[Any]) -> None:
        self.result = await self.layer.confirm(caller_of(interaction.user), self.token)
        await self._finish(interaction)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _button: discord.ui.Button[Any]) -> None:
        self.result = await self.layer.cancel(caller_of(interaction.user), self.token)
        await self._finish(interaction)

    async def _finish(self, interaction: discord.Interaction) -> None:
        assert self.result is not None
        self.stop()
        await interaction.response.edit_message(embed=to_embed(self.result), view=None)


class ChannelNotifier(EmbedNotifier):
    """Implements the Notifier protocol: engine events as embeds in the notification channel."""

    name = "discord-channel"

    def __init__(self, client: discord.Client, options: DiscordOptions) -> None:
        super().__init__(options.delivery(), options.events)
        self.client = client
        self.channel_id = options.channel_id

    async def _deliver(self, batch: list[Outgoing]) -> None:
        if self.channel_id is None:
            raise Undeliverable("no notification channel_id configured")
        channel = self.client.get_channel(self.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise RetryLater("notification channel not available (bot not ready, or wrong channel_id)")
        embeds = [discord.Embed.from_dict(out.rendered or embed_for(out.item)) for out in batch]
        png = next((out.item.png for out in batch if isinstance(out.item, Report) and out.item.png), None)
        extra: dict[str, Any] = {"file": discord.File(io.BytesIO(png), filename=CHART_NAME)} if png else {}
        try:
            await channel.send(embeds=embeds, allowed_mentions=discord.AllowedMentions.none(), **extra)
        except discord.HTTPException as exc:
            if exc.status == 429:
                raise RateLimited(float(getattr(exc, "retry_after", 1.0) or 1.0)) from None
            if exc.status >= 500:
                raise RetryLater(f"HTTP {exc.status}") from None
            raise Undeliverable(f"HTTP {exc.status} {type(exc).__name__}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryLater(type(exc).__name__) from None


class ArbBot(commands.Bot):
    """discord.py's Bot with cryptoarb's commands registered; :class:`DiscordBot` runs it."""

    def __init__(self, layer: CommandLayer, options: DiscordOptions,
                 intents: discord.Intents | None = None) -> None:
        if intents is None:
            intents = discord.Intents.default()
            # Message content is a privileged intent: only asked for when prefix commands are wanted.
            intents.message_content = options.prefix_commands
        super().__init__(command_prefix=commands.when_mentioned_or(options.command_prefix), intents=intents,
                         help_command=None)
        self.layer = layer
        self.options = options
        for slash in slash_commands(self):
            self.tree.add_command(slash)
        for prefixed in prefix_commands(self):
            self.add_command(prefixed)

    async def setup_hook(self) -> None:
        # Syncing is rate limited: once per start, to one guild when configured (instant there).
        if not self.options.sync_commands:
            return
        if self.options.guild_id is not None:
            guild = discord.Object(id=self.options.guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def respond(self, interaction: discord.Interaction, command: str, *args: str | int | None) -> None:
        """Answer a slash command: refusals ephemerally at once, the rest after a deferral."""
        caller = caller_of(interaction.user)
        denial = self.layer.refusal(caller, command)
        if denial is not None:
            await interaction.response.send_message(embed=to_embed(denial), ephemeral=True)
            return
        private = command in PRIVATE
        await interaction.response.defer(ephemeral=private, thinking=True)
        result = await self.layer.run(caller, command, *args)
        extra: dict[str, Any] = {}
        if result.token is not None:
            extra["view"] = KillConfirmView(self.layer, caller, result.token, self.layer.confirm_ttl_s)
        await interaction.followup.send(embed=to_embed(result), ephemeral=private, **extra)

    async def reply(self, ctx: commands.Context[Any], command: str, args: Sequence[str]) -> None:
        caller = caller_of(ctx.author)
        result = await self.layer.run(caller, command, *args)
        extra: dict[str, Any] = {}
        if result.token is not None:
            extra["view"] = KillConfirmView(self.layer, caller, result.token, self.layer.confirm_ttl_s)
        await ctx.send(embed=to_embed(result), allowed_mentions=discord.AllowedMentions.none(), **extra)

    async def on_command_error(self, ctx: commands.Context[Any], error: commands.CommandError) -> None:
        if isinstance(error, commands.CommandNotFound):
            return
        log.warning("prefix command failed: %s", type(error).__name__)


PeriodChoice = Literal["today", "24h", "7d", "all"]
Count = app_commands.Range[int, 1, 25]


def slash_commands(bot: ArbBot) -> list[app_commands.Command[Any, ..., None]]:
    """The application commands, each a thin wrapper over :meth:`ArbBot.respond`."""

    async def status(interaction: discord.Interaction) -> None:
        await bot.respond(interaction, "status")

    @app_commands.describe(period="today (UTC), 24h, 7d or all")
    async def pnl(interaction: discord.Interaction, period: PeriodChoice = "today") -> None:
        await bot.respond(interaction, "pnl", period)

    @app_commands.describe(venue="only this venue")
    async def balance(interaction: discord.Interaction, venue: str | None = None) -> None:
        await bot.respond(interaction, "balance", venue)

    @app_commands.describe(n="how many (1-25)")
    async def opportunities(interaction: discord.Interaction, n: Count = 5) -> None:
        await bot.respond(interaction, "opportunities", n)

    async def watchlist(interaction: discord.Interaction) -> None:
        await bot.respond(interaction, "watchlist")

    @app_commands.describe(n="how many (1-25)")
    async def trades(interaction: discord.Interaction, n: Count = 5) -> None:
        await bot.respond(interaction, "trades", n)

    async def risk(interaction: discord.Interaction) -> None:
        await bot.respond(interaction, "risk")

    @app_commands.describe(market="SYMBOL or venue:SYMBOL; empty pauses every market")
    async def pause(interaction: discord.Interaction, market: str | None = None) -> None:
        await bot.respond(interaction, "pause", market)

    @app_commands.describe(market="SYMBOL or venue:SYMBOL; empty resumes every paused market")
    async def resume(interaction: discord.Interaction, market: str | None = None) -> None:
        await bot.respond(interaction, "resume", market)

    @app_commands.describe(reason="why (kept in the log and the notice)")
    async def kill(interaction: discord.Interaction, reason: str | None = None) -> None:
        await bot.respond(interaction, "kill", reason)

    async def config(interaction: discord.Interaction) -> None:
        await bot.respond(interaction, "config")

    descriptions = {
        status: "Engine status", pnl: "Realized PnL for a period", balance: "Balances per venue",
        opportunities: "Recent opportunities", watchlist: "Markets streamed in depth",
        trades: "Recent trades",
        risk: "Kill switch, paused markets, cooldowns, limits", pause: "Pause trading a market (or all)",
        resume: "Resume a market (or all)", kill: "Engage the kill switch (asks for confirmation)",
        config: "Effective configuration, secrets masked",
    }
    return [app_commands.Command(name=cb.__name__, description=text, callback=cb)
            for cb, text in descriptions.items()]


def prefix_commands(bot: ArbBot) -> list[commands.Command[Any, ..., Any]]:
    """``!status``, ``!pnl 7d``, ``!kill reason``, ``!confirm <token>``, ``!help`` ..."""

    def make(name: str) -> commands.Command[Any, ..., Any]:
        async def callback(ctx: commands.Context[Any], *args: str) -> None:
            await bot.reply(ctx, name, args)

        return commands.Command(callback, name=name, help=USAGE[name])

    return [make(name) for name in sorted(COMMANDS)]


class DiscordBot:
    """Owns the discord.py client on the engine's loop: ``await start(token)`` ... ``await close()``.

    Add :attr:`notifier` to the NotifierHub when a notification channel is configured. The daily
    summary goes to that channel and to ``summary_sinks`` (e.g. the webhook notifier).
    """

    def __init__(self, layer: CommandLayer, options: DiscordOptions, *,
                 summary_sinks: Sequence[ReportSink] = (), intents: discord.Intents | None = None) -> None:
        self.layer = layer
        self.options = options
        self.client = ArbBot(layer, options, intents)
        self.notifier = ChannelNotifier(self.client, options)
        self.summary_sinks: tuple[ReportSink, ...] = tuple(summary_sinks)
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        o = self.options
        return f"{type(self).__name__}(guild_id={o.guild_id}, channel_id={o.channel_id})"

    def _sinks(self) -> list[ReportSink]:
        own: list[ReportSink] = [self.notifier] if self.notifier.channel_id is not None else []
        return [*own, *self.summary_sinks]

    async def start(self, token: str | SecretStr) -> None:
        """Log in (raises on a bad token), then keep the gateway connection in a background task."""
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        await self.client.login(secret)
        self._spawn(self.client.connect(reconnect=True), "discord-gateway")
        sinks = self._sinks()
        if self.options.daily_summary_hour_utc is not None and sinks:
            self._spawn(run_daily_summaries(self.layer.controls, sinks, self.options.daily_summary_hour_utc),
                        "discord-daily-summary")

    async def send_daily_summary(self, now: float | None = None) -> None:
        report = await daily_report(self.layer.controls, now)
        for sink in self._sinks():
            sink.send_report(report)

    async def close(self) -> None:
        await self.notifier.close()
        for task in self._tasks:
            if task.get_name() != "discord-gateway":
                task.cancel()
        await self.client.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(_log_failure)
        self._tasks.append(task)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %s", task.get_name(), type(task.exception()).__name__)


__all__ = ["ArbBot", "ChannelNotifier", "DiscordBot", "KillConfirmView", "caller_of", "to_embed"]
