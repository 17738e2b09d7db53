"""The remote-control commands, independent of any front end (Discord, a console, an HTTP API).

Each command is a plain async function over :class:`EngineControls` returning a :class:`CommandResult`
that a front end renders. :class:`CommandLayer` adds what a remote session needs on top: who may run
what (:class:`AccessPolicy`), an audit log of refusals and changes, and the two-step kill switch.
:class:`EngineAdapter` implements :class:`EngineControls` over the real :class:`~cryptoarb.engine.Engine`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from cryptoarb.config import SECRET_MASK, masked
from cryptoarb.model import Event, Execution, MarketKey, Notice, Opportunity
from cryptoarb.status import EngineStatus

if TYPE_CHECKING:
    from cryptoarb.engine import Engine

log = logging.getLogger("cryptoarb.commands")

Period = Literal["today", "24h", "7d", "all"]
PERIODS: tuple[str, ...] = get_args(Period)
DAY_S = 86_400.0
MAX_ROWS = 25
MAX_LISTED = 15

READ_ONLY = frozenset({"help", "status", "pnl", "balance", "opportunities", "watchlist", "trades", "risk"})
PRIVILEGED = frozenset({"pause", "resume", "kill", "confirm", "cancel", "config"})
COMMANDS = READ_ONLY | PRIVILEGED

USAGE = {
    "help": "help",
    "status": "status",
    "pnl": "pnl [today|24h|7d|all]",
    "balance": "balance [venue]",
    "opportunities": "opportunities [n]",
    "watchlist": "watchlist",
    "trades": "trades [n]",
    "risk": "risk",
    "pause": "pause [market]   (no market: every market)",
    "resume": "resume [market]  (no market: every paused market)",
    "kill": "kill [reason]    (asks for confirmation)",
    "confirm": "confirm <token>",
    "cancel": "cancel <token>",
    "config": "config",
}


# -- results ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: str
    inline: bool = True


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command produced, for a front end to render. ``token`` is set on a kill prompt."""

    title: str
    fields: tuple[Field, ...] = ()
    text: str = ""
    ok: bool = True
    token: str | None = None


def refused(command: str, why: str) -> CommandResult:
    return CommandResult("Not allowed", text=f"`{command}`: {why}", ok=False)


def failed(title: str, text: str) -> CommandResult:
    return CommandResult(title, text=text, ok=False)


# -- what the commands read and change ---------------------------------------------------------

class UnknownMarket(LookupError):
    """The message names what was asked for; safe to show."""


class UnknownVenue(LookupError):
    """The message names what was asked for; safe to show."""


@dataclass(frozen=True, slots=True)
class PnlSummary:
    period: str
    since: float | None
    realized_usd: float
    executions: int | None = None
    fees_usd: float | None = None
    source: str = "engine"


@dataclass(frozen=True, slots=True)
class OpportunityRow:
    path: tuple[str, ...]
    venue: str
    net_return_bps: float
    profit_usd: float | None
    id: str = ""
    at: float | None = None


@dataclass(frozen=True, slots=True)
class TradeRow:
    id: str
    path: tuple[str, ...]
    realized_usd: float
    fees_usd: float
    mode: str
    at: float


@dataclass(frozen=True, slots=True)
class RiskState:
    killed_reason: str | None
    paused: tuple[str, ...]
    cooldowns: dict[str, float]
    in_flight: int
    limits: dict[str, float]


class EngineControls(Protocol):
    """Everything the commands may ask of a running engine. Markets are ``SYMBOL`` or ``venue:SYMBOL``."""

    async def status(self) -> EngineStatus: ...

    async def pnl(self, period: Period) -> PnlSummary: ...

    async def pnl_points(self, period: Period) -> list[tuple[float, float]]:
        """(time, realized USD) per execution in the period, oldest first (for the chart)."""
        ...

    async def balances(self, venue: str | None) -> dict[str, dict[str, float]]: ...

    async def opportunities(self, n: int) -> list[OpportunityRow]: ...

    async def trades(self, n: int) -> list[TradeRow]: ...

    async def watchlist(self) -> list[str]: ...

    async def risk(self) -> RiskState: ...

    async def pause(self, market: str | None, actor: str) -> list[str]:
        """Pause ``market`` (every market when None); returns what was paused."""
        ...

    async def resume(self, market: str | None, actor: str) -> list[str]:
        """Resume ``market`` (every paused market when None); returns what was resumed."""
        ...

    async def kill(self, reason: str) -> str:
        """Engage the kill switch; returns the reason in force (the first one wins)."""
        ...

    async def config(self) -> dict[str, Any]:
        """The effective configuration with every secret masked."""
        ...


# -- formatting helpers -------------------------------------------------------------------------

def usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{'-' if value < 0 else '+'}${abs(value):,.2f}"


def amount(value: float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".") if value else "0"


def duration(seconds: float) -> str:
    s = int(seconds)
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d}d{h:02d}h{m:02d}m" if d else f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def path_text(path: Sequence[str]) -> str:
    return " → ".join(path)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listing(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "") if items else "none"


def period_start(period: str, now: float) -> float | None:
    """UTC midnight for ``today`` (the risk gate's day), a trailing window otherwise, None for ``all``."""
    if period == "today":
        return now - now % DAY_S
    if period == "24h":
        return now - DAY_S
    if period == "7d":
        return now - 7 * DAY_S
    return None


_SECRETISH = ("token", "secret", "password", "passphrase", "webhook", "dsn", "api_key")


def scrub(data: Any, key: str = "") -> Any:
    """Mask anything under a secret-looking key; :func:`masked` already does ``secrets``, this is a net."""
    if isinstance(data, dict):
        return {k: scrub(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [scrub(v, key) for v in data]
    if data is not None and any(s in key.lower() for s in _SECRETISH):
        return SECRET_MASK
    return data


# -- the commands -----------------------------------------------------------------------------

async def status(controls: EngineControls) -> CommandResult:
    s = await controls.status()
    rejected = sum(s.rejected_by_reason.values())
    top = sorted(s.rejected_by_reason.items(), key=lambda kv: -kv[1])[:3]
    best = "\n".join(f"{path_text(b.path)} @{b.venue}: {b.net_return_bps:.1f} bps, {usd(b.profit_usd)}"
                     for b in s.best[:3]) or "none right now"
    return CommandResult("Engine status", (
        Field("Mode", s.mode.upper()),
        Field("Venues", ", ".join(s.venues) or "-"),
        Field("Uptime", duration(s.uptime_s)),
        Field("Updates", f"{s.updates:,} ({s.updates_per_s:,.0f}/s)"),
        Field("Books tradeable", f"{s.books_tradeable:,}/{s.books_total:,}"),
        Field("Opportunities", _opportunity_counts(s)),
        Field("Trades", f"{s.trades:,}"),
        Field("Realized PnL", usd(s.realized_pnl_usd)),
        Field("Loop lag ms", f"p50 {s.loop_lag_ms_p50:.1f} / p99 {s.loop_lag_ms_p99:.1f} / "
                             f"max {s.loop_lag_ms_max:.1f}"),
        Field("Rejected", f"{rejected:,}" + (" (" + ", ".join(f"{r} {n:,}" for r, n in top) + ")"
                                              if top else "")),
        Field("Best now", best, inline=False),
    ))


def _opportunity_counts(s: EngineStatus) -> str:
    return f"{s.opportunities_detected:,} detected, {s.opportunities_executed:,} executed"


async def pnl(controls: EngineControls, period: str = "today") -> CommandResult:
    if period not in PERIODS:
        return failed("PnL", f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    p = await controls.pnl(period)  # type: ignore[arg-type]
    fields = [Field("Realized", usd(p.realized_usd))]
    if p.executions is not None:
        fields.append(Field("Executions", f"{p.executions:,}"))
    if p.fees_usd is not None:
        fields.append(Field("Fees", f"${p.fees_usd:,.2f}"))
    fields.append(Field("Source", p.source))
    return CommandResult(f"PnL ({period})", tuple(fields))


async def balance(controls: EngineControls, venue: str | None = None) -> CommandResult:
    try:
        balances = await controls.balances(venue)
    except UnknownVenue as exc:
        return failed("Balances", str(exc))
    fields = []
    for name, assets in sorted(balances.items())[:MAX_ROWS]:
        lines = [f"{asset}: {amount(v)}" for asset, v in sorted(assets.items())]
        shown = "\n".join(lines[:MAX_LISTED]) + (f"\n+{len(lines) - MAX_LISTED} more"
                                                  if len(lines) > MAX_LISTED else "")
        fields.append(Field(name, shown or "empty"))
    return CommandResult("Balances" + (f" on {venue}" if venue else ""), tuple(fields),
                         text="" if fields else "no balances")


async def opportunities(controls: EngineControls, n: int = 5) -> CommandResult:
    rows = await controls.opportunities(n)
    fields = tuple(Field(clip(f"{path_text(r.path)} @{r.venue}", 250),
                         f"{r.net_return_bps:.1f} bps, {usd(r.profit_usd)}" + (f" [{r.id}]" if r.id else ""),
                         inline=False) for r in rows[:n])
    return CommandResult(f"Recent opportunities ({len(fields)})", fields,
                         text="" if fields else "none recently")


async def trades(controls: EngineControls, n: int = 5) -> CommandResult:
    rows = await controls.trades(n)
    fields = tuple(Field(clip(f"{path_text(r.path)} [{r.id}]", 250),
                         f"{usd(r.realized_usd)} realized, fees ${r.fees_usd:,.2f} ({r.mode})", inline=False)
                   for r in rows[:n])
    return CommandResult(f"Recent trades ({len(fields)})", fields, text="" if fields else "no trades yet")


async def watchlist(controls: EngineControls) -> CommandResult:
    markets = await controls.watchlist()
    return CommandResult(f"Watchlist ({len(markets)})", text=clip(", ".join(markets), 3900)
                         if markets else "empty: streaming every market")


async def risk(controls: EngineControls) -> CommandResult:
    r = await controls.risk()
    cooldowns = [f"{m} ({s:.0f}s)" for m, s in sorted(r.cooldowns.items())]
    limits = "\n".join(f"{k}: {v:g}" for k, v in r.limits.items())
    return CommandResult("Risk", (
        Field("Kill switch", f"ENGAGED: {r.killed_reason}" if r.killed_reason else "off", inline=False),
        Field("Paused", f"{len(r.paused)}: {listing(r.paused)}" if r.paused else "none", inline=False),
        Field("Cooldowns", listing(cooldowns), inline=False),
        Field("In flight", str(r.in_flight)),
        Field("Limits", limits or "-"),
    ), ok=True)


async def pause(controls: EngineControls, market: str | None = None, actor: str = "") -> CommandResult:
    try:
        done = await controls.pause(market, actor)
    except UnknownMarket as exc:
        return failed("Pause", str(exc))
    what = market or "every market"
    return CommandResult("Paused", text=f"paused {what}: {len(done)} market(s)",
                         fields=(Field("Markets", listing(done), inline=False),))


async def resume(controls: EngineControls, market: str | None = None, actor: str = "") -> CommandResult:
    try:
        done = await controls.resume(market, actor)
    except UnknownMarket as exc:
        return failed("Resume", str(exc))
    text = f"resumed {len(done)} market(s)"
    state = await controls.risk()
    if state.killed_reason:
        text += f"; the kill switch is still engaged ({state.killed_reason}): restart to trade again"
    return CommandResult("Resumed", text=text, fields=(Field("Markets", listing(done), inline=False),))


async def config(controls: EngineControls) -> CommandResult:
    data = scrub(await controls.config())
    fields = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    if scalars:
        fields.append(Field("general", _lines(scalars), inline=False))
    for name, section in sections.items():
        fields.append(Field(name, _lines(section), inline=False))
    return CommandResult("Configuration (secrets masked)", tuple(fields[:MAX_ROWS]))


def _lines(section: dict[str, Any]) -> str:
    body = "\n".join(f"{k} = {v}" for k, v in section.items())
    return "```\n" + clip(body, 1000 - 8) + "\n```"


async def daily_summary(controls: EngineControls, now: float | None = None) -> CommandResult:
    """The day's numbers (the chart comes from :meth:`EngineControls.pnl_points`).

    "Realized today" is the UTC day so far, the day the daily loss limit counts. In that day's first hour (the
    default summary hour is 0 UTC) it has barely begun, and "Last 24h" is the day that just ended: the field is
    left out rather than shown as a meaningless $0."""
    now = time.time() if now is None else now
    today, day = await controls.pnl("today"), await controls.pnl("24h")
    s = await controls.status()
    state = await controls.risk()
    day_so_far = () if now % DAY_S < 3600.0 else (Field("Realized today", usd(today.realized_usd)),)
    return CommandResult("Daily summary", (
        *day_so_far,
        Field("Last 24h", usd(day.realized_usd)),
        Field("Executions (24h)", "-" if day.executions is None else f"{day.executions:,}"),
        Field("Fees (24h)", "-" if day.fees_usd is None else f"${day.fees_usd:,.2f}"),
        Field("Realized since start", usd(s.realized_pnl_usd)),
        Field("Opportunities", _opportunity_counts(s)),
        Field("Kill switch", f"ENGAGED: {state.killed_reason}" if state.killed_reason else "off"),
    ))


def help_result(may_change: bool) -> CommandResult:
    names = sorted(COMMANDS if may_change else READ_ONLY)
    return CommandResult("Commands", text="\n".join(f"`{USAGE[n]}`" for n in names))


# -- who may run what ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    role_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Changes (and config) need an admin: a listed user id, or the admin role when one is set.

    Reads are open unless ``restrict_reads``; then admins, listed readers and the reader role may read.
    Nobody is an admin by default.
    """

    admin_user_ids: frozenset[int] = frozenset()
    admin_role_id: int | None = None
    restrict_reads: bool = False
    reader_user_ids: frozenset[int] = frozenset()
    reader_role_id: int | None = None

    def may_change(self, caller: Caller) -> bool:
        return caller.user_id in self.admin_user_ids or (
            self.admin_role_id is not None and self.admin_role_id in caller.role_ids)

    def may_read(self, caller: Caller) -> bool:
        return not self.restrict_reads or self.may_change(caller) or caller.user_id in self.reader_user_ids \
            or (self.reader_role_id is not None and self.reader_role_id in caller.role_ids)


@dataclass(frozen=True, slots=True)
class _PendingKill:
    user_id: int
    reason: str
    expires_at: float


class CommandLayer:
    """Runs commands for callers: authorization, argument checks, audit log, kill confirmation."""

    def __init__(self, controls: EngineControls, policy: AccessPolicy, *, confirm_ttl_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.controls = controls
        self.policy = policy
        self.confirm_ttl_s = confirm_ttl_s
        self.clock = clock
        self._pending: dict[str, _PendingKill] = {}

    def refusal(self, caller: Caller, command: str) -> CommandResult | None:
        """The refusal (logged) when ``caller`` may not run ``command``; None when allowed."""
        if command not in COMMANDS:
            return failed("Unknown command", f"`{command}`; try `help`")
        allowed = self.policy.may_change(caller) if command in PRIVILEGED else self.policy.may_read(caller)
        if allowed:
            return None
        log.warning("refused %s for user %s (not allowed)", command, caller.user_id)
        who = "allow-listed admins" if command in PRIVILEGED else "allow-listed users"
        return refused(command, f"only {who} may run this")

    async def run(self, caller: Caller, command: str, *args: str | int | None) -> CommandResult:
        """Run ``command`` with string or typed arguments (``None`` means "not given")."""
        command = command.lower()
        denial = self.refusal(caller, command)
        if denial is not None:
            return denial
        given = [a for a in args if a is not None and a != ""]
        try:
            result = await self._dispatch(caller, command, given)
        except Exception as exc:
            log.exception("command %s failed for user %s", command, caller.user_id)
            return failed(command.capitalize(), f"failed: {type(exc).__name__}")
        if command in PRIVILEGED and command != "config":
            log.info("user %s ran %s %s -> %s", caller.user_id, command, " ".join(map(str, given)),
                     "ok" if result.ok else "not done")
        return result

    async def run_text(self, caller: Caller, text: str) -> CommandResult:
        """``"pnl 7d"`` style input from a text front end."""
        words = text.split()
        if not words:
            return help_result(self.policy.may_change(caller))
        return await self.run(caller, words[0], *words[1:])

    async def _dispatch(self, caller: Caller, command: str, args: list[str | int]) -> CommandResult:
        c = self.controls
        first = str(args[0]) if args else None
        actor = f"user {caller.user_id}"
        if command == "help":
            return help_result(self.policy.may_change(caller))
        if command in ("opportunities", "trades"):
            n = _count(args[0] if args else 5)
            if n is None:
                return failed(command.capitalize(), f"usage: `{USAGE[command]}` with n from 1 to {MAX_ROWS}")
            return await (opportunities(c, n) if command == "opportunities" else trades(c, n))
        if command in ("kill", "confirm", "cancel"):
            text = " ".join(map(str, args))
            return await getattr(self, command)(caller, text)
        simple: dict[str, Callable[[], Awaitable[CommandResult]]] = {
            "status": lambda: status(c),
            "pnl": lambda: pnl(c, (first or "today").lower()),
            "balance": lambda: balance(c, first),
            "watchlist": lambda: watchlist(c),
            "risk": lambda: risk(c),
            "pause": lambda: pause(c, first, actor),
            "resume": lambda: resume(c, first, actor),
            "config": lambda: config(c),
        }
        return await simple[command]()

    # -- the two-step kill switch ---------------------------------------------------------------
    async def kill(self, caller: Caller, reason: str = "") -> CommandResult:
        """Step one: a prompt with a token; nothing changes until :meth:`confirm` with that token."""
        denial = self.refusal(caller, "kill")
        if denial is not None:
            return denial
        self._expire()
        for token, pending in list(self._pending.items()):
            if pending.user_id == caller.user_id:
                del self._pending[token]
        token = secrets.token_hex(3)
        full = f"manual kill by user {caller.user_id}" + (f": {reason}" if reason else "")
        self._pending[token] = _PendingKill(caller.user_id, full, self.clock() + self.confirm_ttl_s)
        return CommandResult(
            "Confirm kill switch",
            text=(f"This stops every new order until the engine restarts.\nConfirm within "
                  f"{self.confirm_ttl_s:.0f} s with the button or `confirm {token}`."),
            fields=(Field("Reason", full, inline=False),), token=token)

    async def confirm(self, caller: Caller, token: str) -> CommandResult:
        denial = self.refusal(caller, "confirm")
        if denial is not None:
            return denial
        self._expire()
        pending = self._pending.get(token.strip())
        if pending is None:
            return failed("Kill switch", "no pending kill with that token (expired or already used)")
        if pending.user_id != caller.user_id:
            log.warning("refused confirm for user %s (kill was requested by user %s)", caller.user_id,
                        pending.user_id)
            return refused("confirm", "only the user who asked for the kill can confirm it")
        del self._pending[token.strip()]
        in_force = await self.controls.kill(pending.reason)
        log.warning("kill switch engaged by user %s: %s", caller.user_id, in_force)
        return CommandResult("Kill switch engaged", text=in_force, fields=(
            Field("Trading", "stopped: no new orders until restart", inline=False),))

    async def cancel(self, caller: Caller, token: str) -> CommandResult:
        denial = self.refusal(caller, "cancel")
        if denial is not None:
            return denial
        pending = self._pending.get(token.strip())
        if pending is None or pending.user_id != caller.user_id:
            return failed("Kill switch", "no pending kill of yours with that token")
        del self._pending[token.strip()]
        return CommandResult("Kill cancelled", text="nothing was changed")

    def _expire(self) -> None:
        now = self.clock()
        for token, pending in list(self._pending.items()):
            if pending.expires_at <= now:
                del self._pending[token]


def _count(value: str | int) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 1 <= n <= MAX_ROWS else None


# -- the real engine behind the protocol ------------------------------------------------------

class ExecutionReader(Protocol):
    """The part of :class:`cryptoarb.storage.base.Store` the commands read."""

    async def recent_executions(self, n: int) -> list[Any]: ...

    async def pnl_usd(self, since: float | None = None) -> float: ...


class EventHistory:
    """Recent opportunities and executions in memory, for the commands when no store is wired.

    A Notifier: add it to the hub. Best effort by design (the hub may drop opportunities under load).
    """

    name = "history"

    def __init__(self, max_opportunities: int = 200, max_executions: int = 20_000) -> None:
        self.opportunities: deque[Opportunity] = deque(maxlen=max_opportunities)
        self.executions: deque[Execution] = deque(maxlen=max_executions)

    def record(self, event: Event) -> None:
        if isinstance(event, Opportunity):
            self.opportunities.append(event)
        elif isinstance(event, Execution):
            self.executions.append(event)

    async def notify(self, event: Event) -> None:
        self.record(event)

    async def close(self) -> None:
        return None

    def executions_since(self, since: float | None) -> list[Execution]:
        return [e for e in self.executions if since is None or e.at >= since]


class EngineAdapter:
    """:class:`EngineControls` over a running :class:`Engine`.

    ``clock`` must be the engine's clock (the simulated venue's in the demo). ``store`` answers PnL and
    trades across restarts; without it ``history`` (an :class:`EventHistory` fed by the hub) does.
    """

    def __init__(self, engine: Engine, status_fn: Callable[[], EngineStatus], *,
                 clock: Callable[[], float] = time.time, store: ExecutionReader | None = None,
                 history: EventHistory | None = None,
                 watchlist_fn: Callable[[], Sequence[str]] | None = None) -> None:
        self.engine = engine
        self.status_fn = status_fn
        self.clock = clock
        self.store = store
        self.history = history
        self.watchlist_fn = watchlist_fn

    async def status(self) -> EngineStatus:
        return self.status_fn()

    async def pnl(self, period: Period) -> PnlSummary:
        since = period_start(period, self.clock())
        done = self.history.executions_since(since) if self.history is not None else None
        executions = len(done) if done is not None else None
        fees = sum(e.fees_usd for e in done) if done is not None else None
        if self.store is not None:
            return PnlSummary(period, since, await self.store.pnl_usd(since), executions, fees, "store")
        ledger = self.engine.ledger
        if period == "all" or done is None:
            # The ledger knows this process's total exactly; a period needs per-execution history.
            realized = ledger.realized_pnl_usd if period == "all" else 0.0
            source = "engine (since start)" if period == "all" else "unavailable: no store or history"
            return PnlSummary(period, since, realized, self.engine.counters.executed if period == "all"
                              else None, ledger.fees_usd if period == "all" else None, source)
        return PnlSummary(period, since, sum(e.realized_profit_usd for e in done), executions, fees,
                          "memory (since start)")

    async def pnl_points(self, period: Period) -> list[tuple[float, float]]:
        since = period_start(period, self.clock())
        if self.history is not None:
            return [(e.at, e.realized_profit_usd) for e in self.history.executions_since(since)]
        if self.store is not None:
            records = await self.store.recent_executions(10_000)
            return sorted((r.at, r.realized_profit_usd) for r in records if since is None or r.at >= since)
        return []

    async def balances(self, venue: str | None) -> dict[str, dict[str, float]]:
        snapshot = self.engine.ledger.snapshot()
        if venue is None:
            return snapshot
        if venue not in snapshot and venue not in self.engine.venues:
            raise UnknownVenue(f"unknown venue {venue!r} (known: {', '.join(sorted(self.engine.venues))})")
        return {venue: snapshot.get(venue, {})}

    async def opportunities(self, n: int) -> list[OpportunityRow]:
        if self.history is not None and self.history.opportunities:
            recent = list(self.history.opportunities)[-n:][::-1]
            return [OpportunityRow(o.path, ",".join(dict.fromkeys(leg.venue for leg in o.legs)),
                                   o.net_return_bps, o.profit_usd, o.id, o.detected_at) for o in recent]
        return [OpportunityRow(b.path, b.venue, b.net_return_bps, b.profit_usd)
                for b in self.engine.best(self.clock(), n)]

    async def trades(self, n: int) -> list[TradeRow]:
        if self.store is not None:
            return [TradeRow(r.opportunity_id, tuple(r.path), r.realized_profit_usd, r.fees_usd, r.mode, r.at)
                    for r in await self.store.recent_executions(n)]
        if self.history is not None:
            recent = list(self.history.executions)[-n:][::-1]
            return [TradeRow(e.opportunity.id, e.opportunity.path, e.realized_profit_usd, e.fees_usd, e.mode,
                             e.at) for e in recent]
        return []

    async def watchlist(self) -> list[str]:
        return list(self.watchlist_fn()) if self.watchlist_fn is not None else []

    async def risk(self) -> RiskState:
        gate, now = self.engine.risk, self.clock()
        return RiskState(
            gate.killed_reason, tuple(sorted(_label(k) for k in gate.paused)),
            {_label(k): until - now for k, until in gate.cooldown_until.items() if until > now},
            len(gate.in_flight), {k: float(v) for k, v in asdict(gate.limits).items()})

    async def pause(self, market: str | None, actor: str) -> list[str]:
        keys = self._resolve(market) if market else list(self.engine.markets)
        fresh = [k for k in keys if k not in self.engine.risk.paused]
        self.engine.risk.paused.update(keys)
        self._announce(f"paused {market or 'every market'}", actor, len(fresh))
        return sorted(_label(k) for k in fresh)

    async def resume(self, market: str | None, actor: str) -> list[str]:
        paused = self.engine.risk.paused
        keys = [k for k in self._resolve(market) if k in paused] if market else list(paused)
        paused.difference_update(keys)
        self._announce(f"resumed {market or 'every paused market'}", actor, len(keys))
        return sorted(_label(k) for k in keys)

    async def kill(self, reason: str) -> str:
        self.engine.risk.kill(reason)
        in_force = self.engine.risk.killed_reason or reason
        self.engine.publish(Notice("kill_switch", f"kill switch engaged: {in_force}", self.clock()))
        return in_force

    async def config(self) -> dict[str, Any]:
        return masked(self.engine.settings)

    def _resolve(self, market: str) -> list[MarketKey]:
        venue, _, symbol = market.rpartition(":")
        symbol = symbol.strip().upper().replace("/", "-")
        venue = venue.strip().lower()  # venues are named in lower case (kucoin), as people may not type them
        keys = [k for k in self.engine.markets
                if k[1].upper() == symbol and (not venue or k[0].lower() == venue)]
        if not keys:
            raise UnknownMarket(f"unknown market {market!r} (use SYMBOL or venue:SYMBOL, e.g. BTC-USDT)")
        return keys

    def _announce(self, what: str, actor: str, n: int) -> None:
        self.engine.publish(Notice("risk", f"{what} ({n} market(s))", self.clock(), {"by": actor}))


def _label(key: MarketKey) -> str:
    return f"{key[0]}:{key[1]}"


__all__ = [
    "PERIODS", "AccessPolicy", "Caller", "CommandLayer", "CommandResult", "EngineAdapter", "EngineControls",
    "EventHistory", "Field", "OpportunityRow", "PnlSummary", "RiskState", "TradeRow", "UnknownMarket",
    "UnknownVenue",
]
