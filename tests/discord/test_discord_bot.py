"""The bot: prefix commands and the notification channel through dpytest; slash commands and the kill
confirmation View through their callbacks with a small interaction object (dpytest has no interactions).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from fake_discord import FakeControls, execution, opportunity

from cryptoarb.commands import AccessPolicy, CommandLayer
from cryptoarb.notify import Notifier
from cryptoarb.notify.discord_bot import DiscordBot, KillConfirmView
from cryptoarb.notify.discord_webhook import DiscordOptions, Report, embed_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Setup:
    bot: DiscordBot
    controls: FakeControls
    admin: discord.Member
    stranger: discord.Member
    channel: discord.TextChannel


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.chdir(tmp_path)  # dpytest writes sent attachments into the working directory
    controls = FakeControls()
    layer = CommandLayer(controls, AccessPolicy())
    options = DiscordOptions(prefix_commands=True, aggregate_window_s=60.0, backoff_base_s=0.01)
    intents = discord.Intents.default()
    intents.members = intents.message_content = True  # dpytest's member cache needs the members intent
    bot = DiscordBot(layer, options, intents=intents)
    await bot.client._async_setup_hook()
    dpytest.configure(bot.client, members=2)
    config = dpytest.get_config()
    admin, stranger = config.members
    # Ids exist only once dpytest made the guild, so the policy and channel are set afterwards.
    layer.policy = AccessPolicy(admin_user_ids=frozenset({admin.id}))
    bot.notifier.channel_id = config.channels[0].id
    yield Setup(bot, controls, admin, stranger, config.channels[0])
    await bot.notifier.close()
    await dpytest.empty_queue()


def fields_of(embed: discord.Embed) -> dict[str, str]:
    return {f.name or "": f.value or "" for f in embed.fields}


# -- prefix commands through dpytest --------------------------------------------------------------

async def test_prefix_status(setup: Setup) -> None:
    await dpytest.message("!status", member=setup.stranger)
    embed = dpytest.get_embed()
    assert embed.title == "Engine status"
    assert fields_of(embed)["Realized PnL"] == "+$3.25"


async def test_prefix_commands_with_arguments(setup: Setup) -> None:
    await dpytest.message("!pnl 7d")
    assert fields_of(dpytest.get_embed())["Realized"] == "-$4.00"
    await dpytest.message("!trades 2")
    assert dpytest.get_embed().title == "Recent trades (2)"
    await dpytest.message("!balance kucoin")
    assert [f.name for f in dpytest.get_embed().fields] == ["kucoin"]


async def test_prefix_pause_is_refused_for_a_stranger_and_logged(setup: Setup,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cryptoarb.commands"):
        await dpytest.message("!pause BTC-USDT", member=setup.stranger)
    embed = dpytest.get_embed()
    assert embed.title == "Not allowed"
    assert not setup.controls.paused
    assert any(str(setup.stranger.id) in r.getMessage() for r in caplog.records)
    await dpytest.message("!pause BTC-USDT", member=setup.admin)
    assert dpytest.get_embed().title == "Paused"
    assert setup.controls.paused == {"kucoin:BTC-USDT"}


async def test_prefix_kill_then_confirm(setup: Setup) -> None:
    await dpytest.message("!kill testing", member=setup.admin)
    prompt = dpytest.get_message()
    assert prompt.embeds[0].title == "Confirm kill switch"
    assert setup.controls.killed is None
    token = prompt.embeds[0].description.split("`confirm ")[1].split("`")[0]  # type: ignore[union-attr]
    await dpytest.message(f"!confirm {token}", member=setup.stranger)
    assert dpytest.get_embed().title == "Not allowed" and setup.controls.killed is None
    await dpytest.message(f"!confirm {token}", member=setup.admin)
    assert dpytest.get_embed().title == "Kill switch engaged"
    assert setup.controls.killed == f"manual kill by user {setup.admin.id}: testing"


async def test_prefix_config_masks_secrets(setup: Setup) -> None:
    setup.controls.extra_config = {"discord": {"bot_token": "do-not-show"}}
    await dpytest.message("!config", member=setup.admin)
    embed = dpytest.get_embed()
    assert embed.title == "Configuration (secrets masked)"
    assert "do-not-show" not in str(embed.to_dict())


# -- the notification channel ----------------------------------------------------------------------

async def test_channel_notifier_posts_events_and_bursts(setup: Setup) -> None:
    notifier = setup.bot.notifier
    assert isinstance(notifier, Notifier)
    await notifier.notify(execution(1))
    for i in range(20):
        await notifier.notify(opportunity(i))
    assert await notifier.flush(timeout=5)
    titles = []
    while not dpytest.sent_queue.empty():
        message = dpytest.get_message()
        assert message.channel.id == setup.channel.id
        titles += [e.title for e in message.embeds]
    assert titles == ["Trade executed (paper)", "Opportunity: 15.0 bps", "19 more opportunities"]


async def test_daily_summary_carries_the_png_chart(setup: Setup) -> None:
    reports: list[Report] = []
    send_report = setup.bot.notifier.send_report
    setup.bot.notifier.send_report = lambda report: (reports.append(report), send_report(report))  # type: ignore
    await setup.bot.send_daily_summary(now=1_700_000_000.0)  # 22:13 UTC
    assert await setup.bot.notifier.flush(timeout=10)
    message = dpytest.get_message()
    (attachment,) = message.attachments
    assert attachment.filename == "pnl.png"
    assert Path(attachment.url.removeprefix("file:")).read_bytes().startswith(PNG_MAGIC)
    # dpytest drops the embeds of a message with files (they travel as multipart payload_json), so the
    # embed that went with the file is checked as rendered.
    (report,) = reports
    embed = discord.Embed.from_dict(embed_for(report))
    assert embed.title == "Daily summary" and embed.image.url == "attachment://pnl.png"
    assert fields_of(embed)["Realized today"] == "+$1.50"


async def test_an_unknown_channel_is_retried_then_logged(setup: Setup,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    setup.bot.notifier.channel_id = 1
    with caplog.at_level(logging.ERROR, logger="cryptoarb.notify"):
        await setup.bot.notifier.notify(execution(1))
        assert await setup.bot.notifier.flush(timeout=5)
    assert setup.bot.notifier.failed == {"trade": 1}
    assert "notification channel not available" in caplog.records[-1].getMessage()


# -- slash commands via their callbacks ------------------------------------------------------------

@dataclass
class FakeUser:
    id: int
    roles: list[Any] = field(default_factory=list)


class FakeResponse:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.deferred: dict[str, Any] | None = None
        self.edited: list[dict[str, Any]] = []

    async def send_message(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)

    async def defer(self, **kwargs: Any) -> None:
        self.deferred = kwargs

    async def edit_message(self, **kwargs: Any) -> None:
        self.edited.append(kwargs)


class FakeFollowup:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


class FakeInteraction:
    """What the callbacks touch of a discord.Interaction: the user, response and followup."""

    def __init__(self, user_id: int, role_ids: tuple[int, ...] = ()) -> None:
        self.user = FakeUser(user_id, [discord.Object(id=r) for r in role_ids])
        self.response = FakeResponse()
        self.followup = FakeFollowup()

    @property
    def answer(self) -> dict[str, Any]:
        (sent,) = self.response.sent or self.followup.sent
        return sent


async def slash(setup: Setup, name: str, user_id: int, **params: Any) -> FakeInteraction:
    command = setup.bot.client.tree.get_command(name)
    assert command is not None, name
    interaction = FakeInteraction(user_id)
    await command.callback(interaction, **params)  # type: ignore[arg-type]
    return interaction


async def test_every_slash_command_is_registered(setup: Setup) -> None:
    names = {c.name for c in setup.bot.client.tree.get_commands()}
    assert names == {"status", "pnl", "balance", "opportunities", "watchlist", "trades", "risk", "pause",
                     "resume", "kill", "config"}


@pytest.mark.parametrize(("name", "params", "title"), [
    ("status", {}, "Engine status"),
    ("pnl", {"period": "24h"}, "PnL (24h)"),
    ("balance", {"venue": None}, "Balances"),
    ("opportunities", {"n": 3}, "Recent opportunities (3)"),
    ("watchlist", {}, "Watchlist (2)"),
    ("trades", {"n": 4}, "Recent trades (4)"),
    ("risk", {}, "Risk"),
])
async def test_read_only_slash_commands_answer_publicly(setup: Setup, name: str, params: dict[str, Any],
                                                        title: str) -> None:
    interaction = await slash(setup, name, setup.stranger.id, **params)
    assert interaction.response.deferred == {"ephemeral": False, "thinking": True}
    answer = interaction.answer
    assert answer["embed"].title == title and answer["ephemeral"] is False


@pytest.mark.parametrize(("name", "params"), [("pause", {"market": "BTC-USDT"}), ("resume", {"market": None}),
                                              ("kill", {"reason": None}), ("config", {})])
async def test_changing_slash_commands_refuse_strangers_ephemerally(
        setup: Setup, caplog: pytest.LogCaptureFixture, name: str, params: dict[str, Any]) -> None:
    with caplog.at_level(logging.WARNING, logger="cryptoarb.commands"):
        interaction = await slash(setup, name, setup.stranger.id, **params)
    assert interaction.response.deferred is None
    answer = interaction.answer
    assert answer["embed"].title == "Not allowed" and answer["ephemeral"] is True
    assert not setup.controls.paused and setup.controls.killed is None
    assert str(setup.stranger.id) in caplog.records[-1].getMessage()


async def test_slash_pause_and_config_for_the_admin(setup: Setup) -> None:
    paused = await slash(setup, "pause", setup.admin.id, market="ETH-BTC")
    assert paused.answer["embed"].title == "Paused" and setup.controls.paused == {"kucoin:ETH-BTC"}
    config = await slash(setup, "config", setup.admin.id)
    assert config.response.deferred == {"ephemeral": True, "thinking": True}
    assert config.answer["ephemeral"] is True


async def test_slash_kill_asks_and_only_the_requester_can_confirm(setup: Setup,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    interaction = await slash(setup, "kill", setup.admin.id, reason="manual test")
    answer = interaction.answer
    assert answer["embed"].title == "Confirm kill switch" and answer["ephemeral"] is True
    view = answer["view"]
    assert isinstance(view, KillConfirmView)
    assert setup.controls.killed is None

    intruder = FakeInteraction(setup.stranger.id)
    with caplog.at_level(logging.WARNING, logger="cryptoarb.commands"):
        assert await view.interaction_check(intruder) is False  # type: ignore[arg-type]
    assert intruder.answer["ephemeral"] is True and intruder.answer["embed"].title == "Not allowed"
    assert str(setup.stranger.id) in caplog.records[-1].getMessage()

    presser = FakeInteraction(setup.admin.id)
    assert await view.interaction_check(presser) is True  # type: ignore[arg-type]
    await view.confirm.callback(presser)  # type: ignore[arg-type]
    (edited,) = presser.response.edited
    assert edited["embed"].title == "Kill switch engaged" and edited["view"] is None
    assert setup.controls.killed == f"manual kill by user {setup.admin.id}: manual test"
    assert view.is_finished()


async def test_kill_view_cancel_changes_nothing(setup: Setup) -> None:
    view = (await slash(setup, "kill", setup.admin.id, reason=None)).answer["view"]
    presser = FakeInteraction(setup.admin.id)
    await view.cancel.callback(presser)
    assert presser.response.edited[0]["embed"].title == "Kill cancelled"
    assert setup.controls.killed is None


async def test_admin_role_works_for_slash_commands(setup: Setup) -> None:
    setup.bot.layer.policy = AccessPolicy(admin_role_id=4242)
    command = setup.bot.client.tree.get_command("pause")
    assert command is not None
    interaction = FakeInteraction(setup.stranger.id, role_ids=(4242,))
    await command.callback(interaction, market=None)  # type: ignore[arg-type]
    assert interaction.answer["embed"].title == "Paused"


# -- wiring ----------------------------------------------------------------------------------------

async def test_commands_sync_to_the_configured_guild_only(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = DiscordBot(CommandLayer(FakeControls(), AccessPolicy()), DiscordOptions(guild_id=987654321))
    synced: list[Any] = []

    async def fake_sync(*, guild: discord.abc.Snowflake | None = None) -> list[Any]:
        synced.append(guild)
        return []

    monkeypatch.setattr(bot.client.tree, "sync", fake_sync)
    await bot.client.setup_hook()
    assert [g.id for g in synced] == [987654321]
    guild_commands = bot.client.tree.get_commands(guild=discord.Object(id=987654321))
    assert {c.name for c in guild_commands} >= {"kill", "pnl"}
    assert not bot.client.intents.message_content  # privileged intent only when prefix commands are wanted
