"""The command layer: every command, authorization and its audit log, the two-step kill, no secrets."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from fake_discord import FakeControls, execution, opportunity, status_snapshot

from cryptoarb.commands import (
    AccessPolicy,
    Caller,
    CommandLayer,
    CommandResult,
    EngineAdapter,
    EventHistory,
    daily_summary,
)
from cryptoarb.config import Settings
from cryptoarb.core.ledger import Ledger
from cryptoarb.core.risk import RiskGate, RiskLimits
from cryptoarb.model import Event, Market, Notice
from cryptoarb.status import BestOpportunity, EngineStatus

ADMIN, OTHER_ADMIN, READER, STRANGER = 1001, 1002, 2001, 3001
ADMIN_ROLE = 777
BOT_TOKEN = "MTIzNDU2Nzg5MDEy.SECRET-bot-token.xyz"
WEBHOOK_URL = "https://discord.com/api/webhooks/123/SECRET-webhook-token"


def text_of(result: CommandResult) -> str:
    return "\n".join([result.title, result.text, *(f"{f.name}: {f.value}" for f in result.fields)])


@pytest.fixture
def controls() -> FakeControls:
    return FakeControls()


@pytest.fixture
def layer(controls: FakeControls) -> CommandLayer:
    return CommandLayer(controls, AccessPolicy(admin_user_ids=frozenset({ADMIN, OTHER_ADMIN}),
                                               admin_role_id=ADMIN_ROLE))


admin, other_admin, stranger = Caller(ADMIN), Caller(OTHER_ADMIN), Caller(STRANGER)


# -- every command -------------------------------------------------------------------------------

async def test_status(layer: CommandLayer) -> None:
    result = await layer.run(stranger, "status")
    assert result.ok and result.title == "Engine status"
    fields = {f.name: f.value for f in result.fields}
    assert fields["Mode"] == "PAPER"
    assert fields["Uptime"] == "1h02m05s"
    assert fields["Realized PnL"] == "+$3.25"
    assert "stale_book 10" in fields["Rejected"]
    assert "USDT → BTC → USDT" in fields["Best now"]


@pytest.mark.parametrize(("period", "realized"), [(None, "+$1.50"), ("24h", "+$2.00"), ("7d", "-$4.00"),
                                                  ("ALL", "+$10.00")])
async def test_pnl_periods(layer: CommandLayer, period: str | None, realized: str) -> None:
    result = await layer.run(stranger, "pnl", period)
    assert result.ok
    assert result.title == f"PnL ({(period or 'today').lower()})"
    assert {f.name: f.value for f in result.fields}["Realized"] == realized


async def test_pnl_rejects_unknown_period(layer: CommandLayer) -> None:
    result = await layer.run(stranger, "pnl", "forever")
    assert not result.ok and "today, 24h, 7d, all" in result.text


async def test_balance_all_and_one_venue(layer: CommandLayer) -> None:
    both = await layer.run(stranger, "balance")
    assert [f.name for f in both.fields] == ["coinbase", "kucoin"]
    one = await layer.run(stranger, "balance", "kucoin")
    assert [f.name for f in one.fields] == ["kucoin"] and "BTC: 0.15" in one.fields[0].value
    missing = await layer.run(stranger, "balance", "mtgox")
    assert not missing.ok and "mtgox" in missing.text


async def test_opportunities_and_trades_take_a_count(layer: CommandLayer) -> None:
    assert len((await layer.run(stranger, "opportunities", "3")).fields) == 3
    assert len((await layer.run(stranger, "opportunities")).fields) == 5
    assert len((await layer.run(stranger, "trades", 2)).fields) == 2
    for bad in ("0", "26", "many"):
        result = await layer.run(stranger, "trades", bad)
        assert not result.ok and "usage" in result.text


async def test_watchlist_and_risk(layer: CommandLayer, controls: FakeControls) -> None:
    watch = await layer.run(stranger, "watchlist")
    assert watch.title == "Watchlist (2)" and "BTC-USDT" in watch.text
    controls.paused.add("kucoin:BTC-USDT")
    risk = {f.name: f.value for f in (await layer.run(stranger, "risk")).fields}
    assert risk["Kill switch"] == "off"
    assert "kucoin:BTC-USDT" in risk["Paused"]
    assert "kucoin:ETH-BTC (3s)" in risk["Cooldowns"]
    assert "max_notional_usd: 2000" in risk["Limits"]


async def test_pause_and_resume_one_market_and_all(layer: CommandLayer, controls: FakeControls) -> None:
    result = await layer.run(admin, "pause", "btc-usdt")
    assert result.ok and controls.paused == {"kucoin:BTC-USDT"}
    assert (await layer.run(admin, "pause")).ok
    assert controls.paused == set(controls.markets)
    assert (await layer.run(admin, "resume", "ETH-BTC")).ok
    assert "kucoin:ETH-BTC" not in controls.paused
    result = await layer.run(admin, "resume")
    assert result.ok and not controls.paused and "2 market(s)" in result.text
    assert controls.actors == [f"user {ADMIN}"] * 4
    unknown = await layer.run(admin, "pause", "DOGE-EUR")
    assert not unknown.ok and "DOGE-EUR" in unknown.text


async def test_help_lists_what_the_caller_may_run(layer: CommandLayer) -> None:
    assert "pause" not in (await layer.run(stranger, "help")).text
    assert "pause" in (await layer.run(admin, "help")).text
    assert not (await layer.run(admin, "selfdestruct")).ok


# -- authorization ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["pause", "resume", "kill", "config", "confirm", "cancel"])
async def test_changes_are_refused_and_logged_for_users_not_on_the_allow_list(
        layer: CommandLayer, controls: FakeControls, caplog: pytest.LogCaptureFixture, command: str) -> None:
    with caplog.at_level(logging.WARNING, logger="cryptoarb.commands"):
        result = await layer.run(stranger, command)
    assert not result.ok and result.title == "Not allowed"
    assert not controls.paused and controls.killed is None
    records = [r for r in caplog.records if r.name == "cryptoarb.commands"]
    assert len(records) == 1
    assert str(STRANGER) in records[0].getMessage() and command in records[0].getMessage()


async def test_admin_role_grants_changes(layer: CommandLayer, controls: FakeControls) -> None:
    assert (await layer.run(Caller(STRANGER, frozenset({ADMIN_ROLE})), "pause", "BTC-USDT")).ok
    assert controls.paused == {"kucoin:BTC-USDT"}


async def test_reads_can_be_restricted(controls: FakeControls, caplog: pytest.LogCaptureFixture) -> None:
    policy = AccessPolicy(admin_user_ids=frozenset({ADMIN}), restrict_reads=True,
                          reader_user_ids=frozenset({READER}), reader_role_id=55)
    layer = CommandLayer(controls, policy)
    with caplog.at_level(logging.WARNING, logger="cryptoarb.commands"):
        assert not (await layer.run(stranger, "status")).ok
    assert str(STRANGER) in caplog.records[-1].getMessage()
    assert (await layer.run(Caller(READER), "status")).ok
    assert (await layer.run(Caller(STRANGER, frozenset({55})), "pnl")).ok
    assert (await layer.run(admin, "balance")).ok
    assert not (await layer.run(Caller(READER), "pause")).ok


async def test_nobody_is_an_admin_by_default(controls: FakeControls) -> None:
    layer = CommandLayer(controls, AccessPolicy())
    assert (await layer.run(stranger, "status")).ok
    assert not (await layer.run(stranger, "kill")).ok


# -- the kill switch ---------------------------------------------------------------------------

async def test_kill_needs_confirmation_by_the_same_user(layer: CommandLayer, controls: FakeControls,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    prompt = await layer.run(admin, "kill", "spreads", "look", "wrong")
    assert prompt.ok and prompt.token and prompt.token in prompt.text
    assert controls.killed is None  # nothing happens on the first step
    with caplog.at_level(logging.WARNING, logger="cryptoarb.commands"):
        stolen = await layer.run(other_admin, "confirm", prompt.token)
    assert not stolen.ok and controls.killed is None
    assert any(str(OTHER_ADMIN) in r.getMessage() for r in caplog.records)
    assert not (await layer.run(admin, "confirm", "nope")).ok
    done = await layer.run(admin, "confirm", prompt.token)
    assert done.ok and done.title == "Kill switch engaged"
    assert controls.killed == f"manual kill by user {ADMIN}: spreads look wrong"
    again = await layer.run(admin, "confirm", prompt.token)
    assert not again.ok  # a token works once


async def test_kill_prompt_expires_and_can_be_cancelled(controls: FakeControls) -> None:
    now = [0.0]
    layer = CommandLayer(controls, AccessPolicy(admin_user_ids=frozenset({ADMIN})), confirm_ttl_s=60,
                         clock=lambda: now[0])
    token = (await layer.kill(admin)).token
    assert token
    now[0] = 61.0
    assert not (await layer.confirm(admin, token)).ok
    token = (await layer.kill(admin)).token
    assert token and (await layer.cancel(admin, token)).ok
    assert not (await layer.confirm(admin, token)).ok
    assert controls.killed is None


async def test_resume_says_the_kill_switch_stays(layer: CommandLayer, controls: FakeControls) -> None:
    controls.killed = "manual"
    result = await layer.run(admin, "resume")
    assert result.ok and "still engaged" in result.text


# -- config ------------------------------------------------------------------------------------

async def test_config_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOARB_SECRETS__DISCORD_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("CRYPTOARB_SECRETS__DISCORD_WEBHOOK_URL", WEBHOOK_URL)
    settings = Settings()
    assert settings.secrets.discord_bot_token is not None  # the env really reached the settings
    controls = FakeControls(settings)
    controls.extra_config = {"discord": {"bot_token": "leaked?", "channel_id": 42}}
    layer = CommandLayer(controls, AccessPolicy(admin_user_ids=frozenset({ADMIN})))
    result = await layer.run(admin, "config")
    shown = text_of(result) + repr(result)
    assert result.ok
    for secret in (BOT_TOKEN, "SECRET", "leaked?"):
        assert secret not in shown
    assert "discord_bot_token = ********" in shown
    assert "channel_id = 42" in shown
    assert "max_notional_usd = 2000.0" in shown


async def test_a_failing_control_is_a_result_not_an_exception(layer: CommandLayer,
                                                            controls: FakeControls) -> None:
    async def broken() -> EngineStatus:
        raise RuntimeError("db at /secret/path is gone")

    controls.status = broken  # type: ignore[method-assign]
    result = await layer.run(stranger, "status")
    assert not result.ok and "RuntimeError" in result.text and "/secret/path" not in result.text


# -- EngineAdapter ----------------------------------------------------------------------------

def market(symbol: str, venue: str = "kucoin") -> Market:
    base, quote = symbol.split("-")
    d = Decimal
    return Market(venue, symbol, base, quote, d("0.01"), d("0.0001"), d("0.0001"), d("1"), d("0.001"),
                  d("0.001"))


MARKETS = [market("BTC-USDT"), market("ETH-USDT"), market("ETH-BTC")]


@dataclass
class MiniCounters:
    updates: int = 0
    detected: int = 0
    executed: int = 2
    rejected: Counter[str] = field(default_factory=Counter)


class MiniEngine:
    """The Engine's surface the adapter reads, built from the real risk gate and ledger."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.venues = {"kucoin": object()}
        self.markets = {m.key: m for m in MARKETS}
        self.risk = RiskGate(RiskLimits())
        self.ledger = Ledger(settings.balances)
        self.counters = MiniCounters()
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.published.append(event)

    def best(self, now: float, n: int = 5) -> tuple[BestOpportunity, ...]:
        return (BestOpportunity(("USDT", "ETH", "USDT"), "kucoin", 9.0, 0.2),)[:n]


def real_engine(settings: Settings) -> Any:
    engine_module = pytest.importorskip("cryptoarb.engine")
    published: list[Event] = []
    engine = engine_module.Engine(settings, {"kucoin": object()}, MARKETS, published.append)
    engine.published = published
    return engine


@pytest.fixture(params=["mini", "real"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRYPTOARB_SECRETS__DISCORD_BOT_TOKEN", BOT_TOKEN)
    settings = Settings()
    return MiniEngine(settings) if request.param == "mini" else real_engine(settings)


def adapter_layer(engine: Any, history: EventHistory | None = None, now: float = 86_400.0 * 3 + 50.0,
                  ) -> CommandLayer:
    adapter = EngineAdapter(engine, status_snapshot, clock=lambda: now, history=history,
                            watchlist_fn=lambda: ["BTC-USDT"])
    return CommandLayer(adapter, AccessPolicy(admin_user_ids=frozenset({ADMIN})))


async def test_adapter_runs_every_command_on_the_engine(engine: Any) -> None:
    history = EventHistory()
    day3 = 86_400.0 * 3
    for i, at in enumerate((day3 - 100.0, day3 + 10.0, day3 + 20.0)):
        ex = execution(i)
        history.record(type(ex)(ex.opportunity, ex.results, ex.realized_profit, 1.0 + i, 0.1, at))
    history.record(opportunity(9, bps=20.0))
    layer = adapter_layer(engine, history)

    for command in ("status", "pnl", "balance", "opportunities", "watchlist", "trades", "risk", "config"):
        result = await layer.run(admin, command)
        assert result.ok, (command, result)
    today = {f.name: f.value for f in (await layer.run(admin, "pnl", "today")).fields}
    assert today["Realized"] == "+$5.00" and today["Executions"] == "2"
    assert {f.name: f.value for f in (await layer.run(admin, "pnl", "24h")).fields}["Realized"] == "+$6.00"
    assert "op0000009" in (await layer.run(admin, "opportunities", 1)).fields[0].value
    trades = await layer.run(admin, "trades", 3)
    assert trades.fields[0].name.endswith("[op0000002-c3]")
    assert "USDT: 10,000" in (await layer.run(admin, "balance", "kucoin")).fields[0].value
    assert not (await layer.run(admin, "balance", "mtgox")).ok

    assert (await layer.run(admin, "pause", "KuCoin:btc-usdt")).ok  # as a person types it
    assert engine.risk.paused == {("kucoin", "BTC-USDT")}
    assert (await layer.run(admin, "pause")).ok
    assert engine.risk.paused == set(engine.markets)
    assert (await layer.run(admin, "resume", "eth/usdt")).ok
    assert ("kucoin", "ETH-USDT") not in engine.risk.paused
    assert not (await layer.run(admin, "pause", "binance:BTC-USDT")).ok
    risk = {f.name: f.value for f in (await layer.run(admin, "risk")).fields}
    assert "kucoin:BTC-USDT" in risk["Paused"] and "kucoin:ETH-USDT" not in risk["Paused"]

    token = (await layer.run(admin, "kill", "test")).token
    assert token and engine.risk.killed_reason is None
    assert (await layer.run(admin, "confirm", token)).ok
    assert engine.risk.killed_reason == f"manual kill by user {ADMIN}: test"
    notices = [e for e in engine.published if isinstance(e, Notice)]
    assert [n.kind for n in notices] == ["risk", "risk", "risk", "kill_switch"]
    assert notices[0].fields == {"by": f"user {ADMIN}"}

    shown = text_of(await layer.run(admin, "config"))
    assert BOT_TOKEN not in shown and "discord_bot_token = ********" in shown


async def test_adapter_without_history_falls_back_to_the_engine(engine: Any) -> None:
    layer = adapter_layer(engine)
    best = await layer.run(admin, "opportunities")
    if isinstance(engine, MiniEngine):
        assert "USDT → ETH → USDT" in best.fields[0].name
    total = {f.name: f.value for f in (await layer.run(admin, "pnl", "all")).fields}
    assert total["Realized"] == "+$0.00" and total["Source"] == "engine (since start)"
    assert (await layer.run(admin, "trades")).text == "no trades yet"


async def test_adapter_reads_pnl_and_trades_from_a_store(engine: Any) -> None:
    @dataclass(frozen=True)
    class Record:
        opportunity_id: str
        kind: str
        path: tuple[str, ...]
        realized_profit: Decimal
        realized_profit_usd: float
        fees_usd: float
        mode: str
        at: float

    class Store:
        def __init__(self) -> None:
            self.since: list[float | None] = []

        async def recent_executions(self, n: int) -> list[Record]:
            path = ("USDT", "BTC", "USDT")
            return [Record("op1", "triangular", path, Decimal(1), 1.0, 0.1, "paper", 5.0)][:n]

        async def pnl_usd(self, since: float | None = None) -> float:
            self.since.append(since)
            return 12.5

    store = Store()
    adapter = EngineAdapter(engine, status_snapshot, clock=lambda: 86_400.0 * 2 + 7, store=store)
    layer = CommandLayer(adapter, AccessPolicy())
    fields = {f.name: f.value for f in (await layer.run(stranger, "pnl", "today")).fields}
    assert fields["Realized"] == "+$12.50" and fields["Source"] == "store"
    assert store.since == [86_400.0 * 2]
    assert "op1" in (await layer.run(stranger, "trades")).fields[0].name
    assert await adapter.pnl_points("all") == [(5.0, 1.0)]


async def test_the_daily_summary_leaves_out_a_utc_day_that_has_barely_begun(controls: FakeControls) -> None:
    midnight = 1_700_006_400.0  # 2023-11-15 00:00 UTC, the default summary hour
    at_hour_0 = {f.name: f.value for f in (await daily_summary(controls, midnight + 30)).fields}
    assert "Realized today" not in at_hour_0 and at_hour_0["Last 24h"] == "+$2.00"  # the day that just ended
    at_noon = {f.name: f.value for f in (await daily_summary(controls, midnight + 12 * 3600)).fields}
    assert at_noon["Realized today"] == "+$1.50" and at_noon["Last 24h"] == "+$2.00"
