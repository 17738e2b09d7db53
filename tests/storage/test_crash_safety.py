"""Crash safety: a writer process killed with SIGKILL mid-batch loses and duplicates nothing.

This file is also the child process (``python test_crash_safety.py ...``). The child trades in a loop
the way the live executor will: it commits each opportunity's order intents with
``StoreWriter.write_intent`` before "sending" them, submits the execution (orders, fills), and every
few executions awaits ``flush``. A side file, fsync'd line by line, says what was acknowledged:
``I n`` intents of execution n committed, ``S n`` execution n submitted, ``A n`` every execution up to n
committed. The test SIGKILLs the child (while a batch transaction is open, or while it runs flat
out), checks the database, restarts the child to re-submit the unacknowledged tail, and checks that
every row is there exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptoarb.model import Execution, Fill, Opportunity, Order, OrderResult, OrderStatus, Side
from cryptoarb.storage import Batch, PostgresStore, SqliteStore, StoreWriter
from cryptoarb.storage.postgres import pg_unavailable
from cryptoarb.storage.schema import SQLITE, TABLES, insert_sql

PG_DSN = os.environ.get("CRYPTOARB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
LEGS = 3
ACK_EVERY = 4


def execution(n: int) -> Execution:
    oid = f"op{n:05d}"
    opp = Opportunity(id=oid, cycle_id=n % 17, kind="triangular", path=("USDT", "BTC", "ETH", "USDT"),
                      legs=(), input=Decimal("100"), output=Decimal("100.05"), profit=Decimal("0.05"),
                      profit_usd=0.05, net_return_bps=5.0, detected_at=float(n))
    results = []
    for leg in range(LEGS):
        order = orders(n)[leg]
        fills = tuple(Fill(order.client_oid, oid, leg, "kucoin", "BTC-USDT", Side.BUY, Decimal("60000.1"),
                           Decimal("0.0005"), Decimal("0.00000003"), "USDT", float(n))
                      for _ in range(fills_per_leg(n, leg)))
        results.append(OrderResult(order, OrderStatus.FILLED, fills))
    return Execution(opp, tuple(results), Decimal("0.05"), 0.05, 0.001, at=float(n))


def orders(n: int) -> list[Order]:
    return [Order(f"op{n:05d}-L{leg}", f"op{n:05d}", leg, "kucoin", "BTC-USDT", Side.BUY, Decimal("60000.1"),
                  Decimal("0.001"), created_at=float(n)) for leg in range(LEGS)]


def fills_per_leg(n: int, leg: int) -> int:
    return 1 + (n + leg) % 2


# -- the child process ---------------------------------------------------------------------------


class PausingStore:
    """Delegates to the real store; on the ``pause_at``-th batch with fills it writes the rows inside an
    open transaction, tells the parent (stdout) and hangs there until it is killed."""

    def __init__(self, inner: Any, pause_at: int) -> None:
        self.inner = inner
        self.pause_at = pause_at
        self.batches_with_fills = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write_batch(self, batch: Batch) -> None:
        if "fills" in batch.rows:
            self.batches_with_fills += 1
            if self.batches_with_fills == self.pause_at:
                await self._hang_mid_batch(batch)
        await self.inner.write_batch(batch)

    async def _hang_mid_batch(self, batch: Batch) -> None:
        if isinstance(self.inner, SqliteStore):
            await self.inner.db.execute("BEGIN")
            for table, rows in batch.tables():
                await self.inner.db.executemany(insert_sql(TABLES[table], SQLITE), rows)
        else:
            conn = await self.inner.write_pool.acquire()
            await conn.execute("BEGIN")
            await self.inner.write_rows(conn, batch)
        in_flight = sorted({row[0] for row in batch.rows.get("executions", [])})
        print("MID", *in_flight, flush=True)
        await asyncio.Event().wait()


class SideFile:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a")

    def log(self, kind: str, n: int) -> None:
        self.file.write(f"{kind} {n}\n")
        self.file.flush()
        os.fsync(self.file.fileno())


@dataclass
class Acks:
    intents: set[int]
    submitted: set[int]
    acked_upto: int

    @classmethod
    def read(cls, path: Path) -> Acks:
        text = path.read_text() if path.exists() else ""
        lines = [line.split() for line in text.splitlines() if line.strip()]
        intents = {int(n) for kind, n in lines if kind == "I"}
        submitted = {int(n) for kind, n in lines if kind == "S"}
        acked = max((int(n) for kind, n in lines if kind == "A"), default=-1)
        return cls(intents, submitted, acked)

    @property
    def last(self) -> int:
        return max(self.intents, default=-1)


def open_store(backend: str, target: str) -> Any:
    return SqliteStore(target) if backend == "sqlite" else PostgresStore(PG_DSN, schema=target)


async def child(args: argparse.Namespace) -> None:
    store = open_store(args.backend, args.target)
    await store.open()
    await store.migrate()
    wrapped = PausingStore(store, args.pause_at) if args.pause_at else store
    writer = StoreWriter(wrapped, batch_size=40, flush_interval_s=0.005)
    runner = asyncio.create_task(writer.run())
    side = SideFile(Path(args.side))
    if args.mode == "resume":
        acks = Acks.read(Path(args.side))
        todo = range(acks.acked_upto + 1, acks.last + 1)  # the unacknowledged tail, re-submitted as is
    else:
        todo = range(args.executions)
    for n in todo:
        await writer.write_intent(*orders(n))  # committed before the orders are "sent"
        side.log("I", n)
        writer.submit(execution(n))
        side.log("S", n)
        if n % ACK_EVERY == ACK_EVERY - 1 or n == todo[-1]:
            await writer.flush()
            side.log("A", n)
            print("A", n, flush=True)
    await writer.close()
    await runner
    await store.close()


# -- the test ------------------------------------------------------------------------------------


@dataclass
class Target:
    backend: str
    target: str


@pytest.fixture(params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        yield Target("sqlite", str(tmp_path / "crash.sqlite"))
        return
    if reason := await pg_unavailable(PG_DSN):
        pytest.skip(reason)
    schema = f"crash{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield Target("postgres", schema)
    async with PostgresStore(PG_DSN, schema=schema) as store:
        await store.drop_schema()


def start_child(t: Target, side: Path, mode: str, *, pause_at: int = 0,
                executions: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--backend", t.backend, "--target", t.target, "--side", str(side),
           "--mode", mode, "--pause-at", str(pause_at), "--executions", str(executions)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen, ready: Any) -> list[str]:
    """Read the child's stdout until ``ready(line)`` holds, then SIGKILL it. Returns that line's words."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if ready(line):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            return line.split()
    proc.wait(timeout=30)
    raise AssertionError(f"child ended before the kill point: {proc.stderr.read() if proc.stderr else ''}")


async def snapshot(t: Target) -> dict[str, list[tuple[Any, ...]]]:
    """Every order, fill and execution id, read through a freshly opened (and migrated) store."""
    store = open_store(t.backend, t.target)
    async with store:
        await store.migrate()  # the database opens cleanly after the crash
        out = {}
        for table, sql in (("orders", "SELECT client_oid, status FROM orders ORDER BY client_oid"),
                           ("fills", "SELECT id FROM fills ORDER BY id"),
                           ("executions", "SELECT opportunity_id FROM executions ORDER BY opportunity_id")):
            if isinstance(store, SqliteStore):
                async with store.db.execute(sql) as cur:
                    out[table] = [tuple(r) for r in await cur.fetchall()]
            else:
                out[table] = await store.fetch(sql)
    if t.backend == "sqlite":
        with sqlite3.connect(t.target) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return out


def expected_fill_ids(n: int) -> list[str]:
    return [f"op{n:05d}-L{leg}:{k}" for leg in range(LEGS) for k in range(fills_per_leg(n, leg))]


def check_consistent(db: dict[str, list[tuple[Any, ...]]], acks: Acks, complete: set[int]) -> None:
    order_ids = [r[0] for r in db["orders"]]
    fill_ids = [r[0] for r in db["fills"]]
    assert len(order_ids) == len(set(order_ids)) and len(fill_ids) == len(set(fill_ids))
    executed = {int(r[0][2:]) for r in db["executions"]}
    # Acknowledged means present: every committed intent and every execution up to the last ack.
    for n in acks.intents:
        assert {o.client_oid for o in orders(n)} <= set(order_ids), n
    assert set(range(acks.acked_upto + 1)) <= executed
    assert executed <= complete | acks.submitted
    # Atomic batches: an execution is there with all its fills, or neither is.
    assert sorted(fill_ids) == sorted(f for n in executed for f in expected_fill_ids(n))
    status = dict(db["orders"])
    for n in executed:
        assert all(status[o.client_oid] == "filled" for o in orders(n)), n
    for oid, st in status.items():
        if int(oid[2:7]) not in executed:
            assert st == "new", oid  # an intent whose result never got recorded (yet)


@pytest.mark.parametrize("how", ["mid-transaction", "flat-out"])
async def test_sigkill_mid_batch_loses_and_duplicates_nothing(target: Target, tmp_path: Path,
                                                              how: str) -> None:
    side = tmp_path / "side.log"
    if how == "mid-transaction":
        proc = start_child(target, side, "run", pause_at=3, executions=10_000)
        words = kill_when(proc, lambda line: line.startswith("MID"))
        in_flight = {int(w[2:]) for w in words[1:]}
        assert in_flight
    else:
        proc = start_child(target, side, "run", executions=100_000)
        kill_when(proc, lambda line: line.startswith("A") and int(line.split()[1]) >= 150)
        in_flight = set()

    acks = Acks.read(side)
    db = await snapshot(target)
    check_consistent(db, acks, complete=set())
    executed = {int(r[0][2:]) for r in db["executions"]}
    assert not in_flight & executed  # the open transaction died with the process
    assert acks.acked_upto >= 0

    resumed = start_child(target, side, "resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-2000:]
    acks = Acks.read(side)
    everything = set(range(acks.last + 1))
    db = await snapshot(target)
    check_consistent(db, acks, complete=everything)
    assert {int(r[0][2:]) for r in db["executions"]} == everything
    assert len(db["fills"]) == sum(len(expected_fill_ids(n)) for n in everything)
    assert in_flight <= everything


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--side", required=True)
    parser.add_argument("--mode", choices=("run", "resume"), required=True)
    parser.add_argument("--pause-at", type=int, default=0)
    parser.add_argument("--executions", type=int, default=0)
    asyncio.run(child(parser.parse_args()))
