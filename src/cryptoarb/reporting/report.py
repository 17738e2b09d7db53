"""``cryptoarb report``: what the opportunity ledger in a database says, as tables and PNG charts.

Read-only on any cryptoarb SQLite database (a demo's ``data/demo-seed7.sqlite``, a paper or live run):

- **capture rate**: opportunities detected, executed (something filled), captured (every leg's order
  filled in full), missed (nothing filled), refused before any order;
- **expected versus realized PnL**, and per execution the attribution of the difference
  (:func:`cryptoarb.core.ledger.attribute`): ``realized = expected - shortfall - slippage - extra fees``,
  plus what the marks explain (``mark drift``: the store holds the ledger's realized PnL at the engine's
  marks at execution; the report values plans and fills at the prices the plan itself implies);
- **slippage distribution**: each leg's average fill price against the plan's average price, in bps;
- **rejects by reason**: risk and sizing rejections, venue order rejects by code, orders that found no
  liquidity, refusals before any order;
- **latency percentiles** per stage the tables can show (detect -> send, send -> done, detect -> done).

Everything is recomputed from the stored rows (``opportunities.legs`` holds the plan, ``fills`` the
actual prices), so reports work on any database written so far.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from cryptoarb.core.ledger import PLAN_LEG_LIMIT, attribute
from cryptoarb.core.valuation import USD_LIKE
from cryptoarb.execution.latency import percentile
from cryptoarb.model import Fill, Market, Opportunity, Order, OrderResult, OrderStatus, PlannedLeg, Side

ZERO = Decimal(0)
LATENCY_STAGES = ("detect_to_send", "send_to_done", "detect_to_done")


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    opportunity_id: str
    kind: str
    path: str
    mode: str
    detected_at: float
    at: float
    outcome: str
    """captured (every leg's order filled in full), partial (something filled), missed (nothing filled)."""
    legs_planned: int
    legs_filled: int
    recovery_orders: int
    expected_usd: float
    realized_usd: float
    fees_usd: float
    slippage_usd: float
    extra_fees_usd: float
    shortfall_usd: float
    mark_drift_usd: float
    """Realized at the engine's marks minus what the plan-implied marks explain."""
    expected_profit: str
    realized_profit: str
    slippage_bps: tuple[float, ...]


@dataclass(slots=True)
class Report:
    db: str
    detected: int = 0
    executed: int = 0
    captured: int = 0
    partial: int = 0
    missed: int = 0
    refused: int = 0
    pending: int = 0
    fills: int = 0
    """Fill rows: what the demo's summary counts as trades."""
    expected_usd: float = 0.0
    """Sum of the plans' profit (USD at detection) over every resolved opportunity."""
    expected_executed_usd: float = 0.0
    realized_usd: float = 0.0
    fees_usd: float = 0.0
    slippage_usd: float = 0.0
    extra_fees_usd: float = 0.0
    shortfall_usd: float = 0.0
    mark_drift_usd: float = 0.0
    rejects: dict[str, int] = field(default_factory=dict)
    leg_slippage_bps: list[float] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    executions: list[ExecutionRow] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)
    modes: list[str] = field(default_factory=list)

    @property
    def capture_rate(self) -> float:
        """Executed (something filled) over detected."""
        return self.executed / self.detected if self.detected else 0.0

    @property
    def full_capture_rate(self) -> float:
        return self.captured / self.detected if self.detected else 0.0

    def summary(self) -> dict[str, Any]:
        """Everything but the per-execution rows, as plain data."""
        data = asdict(self)
        data.pop("executions")
        data.pop("leg_slippage_bps")
        slips = self.leg_slippage_bps
        data["capture_rate"] = round(self.capture_rate, 6)
        data["full_capture_rate"] = round(self.full_capture_rate, 6)
        data["leg_slippage_bps"] = {
            "n": len(slips), "mean": _round(sum(slips) / len(slips)) if slips else None,
            **{f"p{q}": _round(percentile(slips, q)) if slips else None for q in (5, 50, 95)},
            "worst": _round(max(slips)) if slips else None}
        for key in ("expected_usd", "expected_executed_usd", "realized_usd", "fees_usd", "slippage_usd",
                    "extra_fees_usd", "shortfall_usd", "mark_drift_usd"):
            data[key] = _round(data[key])
        return data


def _round(x: float, digits: int = 6) -> float:
    return round(x, digits) if math.isfinite(x) else x


# ---------------------------------------------------------------------------------------------------
# reading


def _connect(path: Path) -> sqlite3.Connection:
    """A connection that only reads ``path`` and leaves its directory as it found it.

    Not ``mode=ro``: on a WAL database every reader needs the ``-wal`` and ``-shm`` files and creates
    them, and only a connection that may write can checkpoint and delete them as the last one to close,
    so a read-only one leaves them behind. A read-write connection with ``PRAGMA query_only`` changes
    no data yet lets SQLite clean up under its own locks: while a writer has the database open, the
    files are the writer's and stay (its close removes them). ``immutable=1`` would create nothing but
    also skip the locks, so a live writer's checkpoint could tear the pages being read. A file the OS
    write-protects is opened read-only all the same (and may keep the ``-wal``/``-shm`` it needed).
    """
    if not path.is_file():
        raise FileNotFoundError(f"no database at {path}")
    # as_uri() percent-encodes "?", "#", "%" and spaces, which a "file:" URI would otherwise misread.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    try:
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _plan(row: sqlite3.Row) -> Opportunity:
    legs = tuple(
        PlannedLeg(venue=leg["venue"], symbol=leg["symbol"], side=Side(leg["side"]),
                   limit_price=Decimal(leg["limit_price"]), size=Decimal(leg["size"]),
                   amount_in=Decimal(leg["amount_in"]), amount_out=Decimal(leg["amount_out"]),
                   fee=Decimal(leg["fee"]), fee_asset=leg["fee_asset"], asset_in=leg["asset_in"],
                   asset_out=leg["asset_out"], book_age_ms=float(leg.get("book_age_ms") or 0.0))
        for leg in json.loads(row["legs"]))
    return Opportunity(
        id=row["id"], cycle_id=row["cycle_id"], kind=row["kind"] or "", path=tuple(json.loads(row["path"])),
        legs=legs, input=Decimal(row["input"]), output=Decimal(row["output"]), profit=Decimal(row["profit"]),
        profit_usd=float(row["profit_usd"] or 0.0), net_return_bps=float(row["net_return_bps"] or 0.0),
        detected_at=float(row["detected_at"]))


def _markets(opportunity: Opportunity, results: list[OrderResult]) -> dict[tuple[str, str], Market]:
    """Stand-in markets for the plan's legs: base, quote and the taker fee rate the rows imply."""
    rates: dict[tuple[str, str], Decimal] = {}
    for result in results:
        for f in result.fills:
            key = (f.venue, f.symbol)
            if key not in rates and f.price * f.size > 0:
                rates[key] = f.fee / (f.size if f.fee_asset == _base(opportunity, key) else f.price * f.size)
    venue_rate: dict[str, Decimal] = {}
    for leg in opportunity.legs:
        if leg.side is Side.SELL and leg.amount_out + leg.fee > 0:
            venue_rate.setdefault(leg.venue, leg.fee / (leg.amount_out + leg.fee))
    out = {}
    for leg in opportunity.legs:
        key = (leg.venue, leg.symbol)
        base, quote = (leg.asset_out, leg.asset_in) if leg.side is Side.BUY else (leg.asset_in, leg.asset_out)
        rate = rates.get(key, venue_rate.get(leg.venue, ZERO))
        received = leg.side is Side.BUY and leg.fee_asset == leg.asset_out
        out[key] = Market(leg.venue, leg.symbol, base, quote, ZERO, ZERO, ZERO, ZERO, rate, rate,
                          "received" if received else "quote")
    return out


def _base(opportunity: Opportunity, key: tuple[str, str]) -> str:
    for leg in opportunity.legs:
        if (leg.venue, leg.symbol) == key:
            return leg.asset_out if leg.side is Side.BUY else leg.asset_in
    return key[1].partition("-")[0]


def plan_marks(opportunity: Opportunity, markets: dict[tuple[str, str], Market],
               notionals: list[Decimal]) -> dict[str, float]:
    """USD per unit of each asset of the plan, implied by the plan's own prices (its average price per
    leg) from the start asset's USD value at detection."""
    start = opportunity.start_asset
    marks: dict[str, float] = {}
    if opportunity.profit and opportunity.profit_usd:
        marks[start] = opportunity.profit_usd / float(opportunity.profit)
    elif start in USD_LIKE:
        marks[start] = 1.0
    else:
        return marks
    for asset in USD_LIKE:
        marks.setdefault(asset, 1.0)
    for _ in range(len(opportunity.legs)):
        for leg, notional in zip(opportunity.legs, notionals, strict=True):
            market = markets[(leg.venue, leg.symbol)]
            if leg.size <= 0 or notional <= 0:
                continue
            price = float(notional / leg.size)
            if market.quote in marks and market.base not in marks:
                marks[market.base] = price * marks[market.quote]
            elif market.base in marks and market.quote not in marks:
                marks[market.quote] = marks[market.base] / price
    return marks


def _notionals(opportunity: Opportunity, markets: dict[tuple[str, str], Market]) -> list[Decimal]:
    from cryptoarb.core.ledger import planned_notional

    return [planned_notional(leg, markets[(leg.venue, leg.symbol)].taker_fee) for leg in opportunity.legs]


def load_report(db: Path | str) -> Report:
    """Read ``db`` and compute the report (no charts; see :func:`render_charts`)."""
    path = Path(db)
    conn = _connect(path)
    try:
        tables = _tables(conn)
        missing = {"opportunities", "orders", "fills", "executions"} - tables
        if missing:
            raise ValueError(f"{path} is not a cryptoarb database (missing tables: {', '.join(sorted(missing))})")
        report = Report(db=str(path))
        opportunities = {r["id"]: r for r in conn.execute("SELECT * FROM opportunities ORDER BY detected_at, id")}
        orders: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for r in conn.execute("SELECT * FROM orders ORDER BY created_at, client_oid"):
            orders[r["opportunity_id"]].append(r)
        fills: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for r in conn.execute("SELECT * FROM fills ORDER BY at, id"):
            fills[r["client_oid"]].append(r)
        report.fills = sum(len(rows) for rows in fills.values())
        executions = {r["opportunity_id"]: r for r in conn.execute("SELECT * FROM executions ORDER BY at")}
        rejects: Counter[str] = Counter()
        if "rejections" in tables:
            for reason, n in conn.execute("SELECT reason, COUNT(*) FROM rejections GROUP BY reason"):
                rejects[reason] += n
        refused_ids: set[str] = set()
        if "events" in tables:
            for r in conn.execute("SELECT kind, fields FROM events WHERE kind = 'preflight'"):
                fields = json.loads(r["fields"] or "{}")
                rejects[f"preflight: {fields.get('reason', 'refused')}"] += 1
                refused_ids.add(fields.get("opportunity", ""))
        if "rejections" in tables:
            for (detail,) in conn.execute("SELECT detail FROM rejections WHERE reason IN "
                                          "('kill_switch', 'no_balance', 'stale_book', 'crossed_book', "
                                          "'market_disabled', 'below_min_size', 'below_min_funds')"):
                head = (detail or "").split(":", 1)[0]
                if head in opportunities:
                    refused_ids.add(head)
    finally:
        conn.close()

    report.detected = len(opportunities)
    latency: dict[str, list[float]] = defaultdict(list)
    modes: set[str] = set()
    for opp_id, row in opportunities.items():
        opportunity = _plan(row)
        done = executions.get(opp_id)
        if done is None:
            if opp_id in refused_ids:
                report.refused += 1
                report.expected_usd += opportunity.profit_usd
            else:
                report.pending += 1
            continue
        report.expected_usd += opportunity.profit_usd
        modes.add(done["mode"] or "")
        results = []
        for o in orders.get(opp_id, []):
            order = Order(o["client_oid"], opp_id, int(o["leg_index"]), o["venue"], o["symbol"], Side(o["side"]),
                          Decimal(o["price"]), Decimal(o["size"]), float(o["created_at"] or 0.0),
                          o["type"] or "limit", o["time_in_force"] or "IOC")
            order_fills = tuple(
                Fill(f["client_oid"], opp_id, int(f["leg_index"]), f["venue"], f["symbol"], Side(f["side"]),
                     Decimal(f["price"]), Decimal(f["size"]), Decimal(f["fee"]), f["fee_asset"], float(f["at"]))
                for f in fills.get(o["client_oid"], []))
            results.append(OrderResult(order, OrderStatus(o["status"]), order_fills, o["reason"] or ""))
            if o["status"] == OrderStatus.REJECTED.value:
                rejects[f"order: {_code(o['reason'])}"] += 1
            elif o["status"] == OrderStatus.CANCELED.value and not order_fills:
                rejects[f"order: {_code(o['reason']) or 'canceled'}"] += 1
        markets = _markets(opportunity, results)
        notionals = _notionals(opportunity, markets)
        marks = plan_marks(opportunity, markets, notionals)
        att = attribute(opportunity, results, markets, lambda _v, a, m=marks: m.get(a), notionals)
        realized_usd = float(done["realized_profit_usd"] or 0.0)
        filled_legs = sum(1 for leg in att.legs if leg.filled_size > 0)
        outcome = _outcome(opportunity, results)
        if outcome == "missed":
            report.missed += 1
        else:
            report.executed += 1
            report.captured += outcome == "captured"
            report.partial += outcome == "partial"
        slips = tuple(leg.slippage_bps for leg in att.legs if leg.slippage_bps is not None)
        report.leg_slippage_bps.extend(slips)
        recovery = sum(1 for r in results if r.order.leg_index >= PLAN_LEG_LIMIT)
        row_out = ExecutionRow(
            opportunity_id=opp_id, kind=opportunity.kind, path=">".join(opportunity.path), mode=done["mode"] or "",
            detected_at=opportunity.detected_at, at=float(done["at"]), outcome=outcome,
            legs_planned=len(opportunity.legs), legs_filled=filled_legs, recovery_orders=recovery,
            expected_usd=att.expected_usd, realized_usd=realized_usd, fees_usd=float(done["fees_usd"] or 0.0),
            slippage_usd=att.slippage_usd, extra_fees_usd=att.extra_fees_usd, shortfall_usd=att.shortfall_usd,
            mark_drift_usd=realized_usd - att.explained_usd, expected_profit=str(opportunity.profit),
            realized_profit=str(done["realized_profit"]), slippage_bps=slips)
        report.executions.append(row_out)
        report.expected_executed_usd += att.expected_usd
        report.realized_usd += realized_usd
        report.fees_usd += row_out.fees_usd
        report.slippage_usd += att.slippage_usd
        report.extra_fees_usd += att.extra_fees_usd
        report.shortfall_usd += att.shortfall_usd
        report.mark_drift_usd += row_out.mark_drift_usd
        sent = [float(r.order.created_at) for r in results]
        if sent:
            latency["detect_to_send"].append((min(sent) - opportunity.detected_at) * 1000.0)
            latency["send_to_done"].append((row_out.at - min(sent)) * 1000.0)
        latency["detect_to_done"].append((row_out.at - opportunity.detected_at) * 1000.0)
    report.rejects = dict(sorted(rejects.items(), key=lambda kv: (-kv[1], kv[0])))
    report.latency_ms = {  # microsecond resolution: the timestamps are float seconds (50.00000000000071 ms)
        stage: {"n": float(len(v)), **{f"p{q}": round(percentile(v, q), 3) for q in (50, 90, 99)},
                "max": round(max(v), 3)}
        for stage in LATENCY_STAGES if (v := latency.get(stage))}
    report.modes = sorted(modes)
    return report


def _outcome(opportunity: Opportunity, results: list[OrderResult]) -> str:
    """``captured``: every planned leg's order filled in full; ``partial``: some fills; ``missed``: none
    (the definition ``recording.backtest.outcome`` uses)."""
    legs = [r for r in results if r.order.leg_index < PLAN_LEG_LIMIT]
    if len(legs) == len(opportunity.legs) and all(r.status is OrderStatus.FILLED for r in legs):
        return "captured"
    return "partial" if any(r.fills for r in results) else "missed"


def _code(reason: str | None) -> str:
    """``below_min_funds: funds 1 < 5`` -> ``below_min_funds``; free text is kept whole."""
    text = (reason or "").strip()
    head, sep, _ = text.partition(":")
    return head.strip() if sep and " " not in head.strip() else text


def default_db(data_dir: Path, configured: Path) -> Path:
    """The configured database when it exists, else the newest demo database in ``data_dir``."""
    if configured.is_file():
        return configured
    demos = sorted(data_dir.glob("demo*.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True)
    if demos:
        return demos[0]
    raise FileNotFoundError(f"no database: {configured} does not exist and {data_dir} holds no demo database "
                            "(run `cryptoarb demo --duration 20 --speed 0` to make one, or pass --db)")


# ---------------------------------------------------------------------------------------------------
# rendering and the command


def print_report(report: Report, console: Any, *, rows: int = 10) -> None:
    """The report as rich tables on ``console``."""
    from rich.table import Table

    head = Table(title=f"cryptoarb report — {report.db}", show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    resolved = report.executed + report.missed + report.refused
    head.add_row("mode", ", ".join(report.modes) or "-")
    head.add_row("opportunities detected", f"{report.detected:,}")
    head.add_row("  executed (something filled)", f"{report.executed:,}")
    head.add_row("  fills (trades)", f"{report.fills:,}")
    head.add_row("    captured (every leg's order filled)", f"{report.captured:,}")
    head.add_row("    partly", f"{report.partial:,}")
    head.add_row("  missed (nothing filled)", f"{report.missed:,}")
    head.add_row("  refused before any order", f"{report.refused:,}")
    if report.pending:
        head.add_row("  unresolved", f"{report.pending:,}")
    head.add_row("capture rate (executed / detected)", f"{report.capture_rate:.1%}")
    head.add_row("full capture rate", f"{report.full_capture_rate:.1%}")
    head.add_row("expected PnL, plans at detection (USD)", f"{report.expected_usd:,.4f}")
    head.add_row("realized PnL (USD)", f"{report.realized_usd:,.4f}")
    head.add_row("fees paid (USD)", f"{report.fees_usd:,.4f}")
    out_of = f" of {resolved:,}" if resolved != report.detected else ""
    head.caption = f"{resolved:,}{out_of} resolved opportunities"
    console.print(head)

    att = Table(title="Expected vs realized (executed opportunities, USD)")
    for name in ("expected (plan)", "- shortfall", "- slippage", "- extra fees", "+ mark drift", "= realized"):
        att.add_column(name, justify="right")
    att.add_row(*(f"{v:,.4f}" for v in (report.expected_executed_usd, report.shortfall_usd, report.slippage_usd,
                                        report.extra_fees_usd, report.mark_drift_usd, report.realized_usd)))
    console.print(att)

    summary = report.summary()["leg_slippage_bps"]
    slip = Table(title="Slippage per leg vs the plan's average price (bps, positive = worse)")
    for name in ("legs", "mean", "p5", "p50", "p95", "worst"):
        slip.add_column(name, justify="right")
    slip.add_row(str(summary["n"]), *(("-" if summary[k] is None else f"{summary[k]:.2f}")
                                      for k in ("mean", "p5", "p50", "p95", "worst")))
    console.print(slip)

    rej = Table(title="Rejects by reason")
    rej.add_column("reason")
    rej.add_column("count", justify="right")
    for reason, n in report.rejects.items():
        rej.add_row(reason, f"{n:,}")
    console.print(rej)

    lat = Table(title="Latency (ms; engine clock: virtual on a simulator)")
    for name in ("stage", "n", "p50", "p90", "p99", "max"):
        lat.add_column(name, justify="right" if name != "stage" else "left")
    for stage, row in report.latency_ms.items():
        lat.add_row(stage.replace("_", " "), f"{row['n']:.0f}",
                    *(f"{row[k]:.2f}" for k in ("p50", "p90", "p99", "max")))
    console.print(lat)

    if rows and report.executions:
        ex = Table(title=f"Largest gaps between expected and realized (top {rows})")
        for name in ("opportunity", "path", "outcome", "expected", "realized", "shortfall", "slippage",
                     "extra fees"):
            ex.add_column(name, justify="right" if name not in ("opportunity", "path", "outcome") else "left")
        worst = sorted(report.executions, key=lambda r: r.realized_usd - r.expected_usd)[:rows]
        for r in worst:
            ex.add_row(r.opportunity_id, r.path, r.outcome, f"{r.expected_usd:.4f}", f"{r.realized_usd:.4f}",
                       f"{r.shortfall_usd:.4f}", f"{r.slippage_usd:.4f}", f"{r.extra_fees_usd:.4f}")
        console.print(ex)
    if report.charts:
        console.print("charts: " + ", ".join(report.charts.values()), highlight=False, soft_wrap=True)


def build_report(db: Path, out_dir: Path | None = None, *, charts: bool = True) -> Report:
    """Load ``db`` and write the charts into ``out_dir`` (default ``<db>-report/`` beside it)."""
    report = load_report(db)
    if charts:
        from cryptoarb.reporting.charts import render_charts

        report.charts = render_charts(report, out_dir or db.with_name(f"{db.stem}-report"))
    return report


def report(
    db: Annotated[Path | None, typer.Option(
        "--db", help="SQLite database to report on (default: the configured one, else the newest demo "
        "database in the data directory).", dir_okay=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory for the PNG charts (default: <db>-report/ next to the database).",
        file_okay=False)] = None,
    charts: Annotated[bool, typer.Option(help="Render the PNG charts.")] = True,
    rows: Annotated[int, typer.Option(min=0, help="Executions listed (largest expected-realized gap).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on the last "
                                          "line of stdout.")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML settings file (default: ./cryptoarb.toml when present).",
        dir_okay=False)] = None,
) -> None:
    """Summarize the opportunity ledger: capture rate, expected vs realized PnL, slippage, rejects by
    reason, latency percentiles, with PNG charts."""
    from rich.console import Console

    from cryptoarb.config import ConfigError, load_settings

    err = Console(stderr=True)
    if db is None:
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        try:
            db = default_db(settings.data_dir, settings.sqlite_path)
        except FileNotFoundError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        from cryptoarb.storage import resolve_dsn

        if resolve_dsn(settings):
            err.print(f"[yellow]note: the report reads SQLite databases ({db}); a PostgreSQL store has the same "
                      "tables to query directly[/]", highlight=False, soft_wrap=True)
    if not db.is_file():  # a missing input file is bad usage, as for replay, backtest and scan
        err.print(f"[bold red]error:[/] no database at {db}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        result = build_report(db, out, charts=charts)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except sqlite3.DatabaseError as exc:  # "file is not a database": say which file
        err.print(f"[bold red]error:[/] {db}: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result.summary(), separators=(",", ":"), default=str))
    else:
        print_report(result, Console(), rows=rows)
