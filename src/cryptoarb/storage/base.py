"""The ``Store`` protocol: what the engine and its reports ask of a database, and nothing more.

Rows are plain tuples in the column order of :attr:`schema.Table.insert_columns`, so a backend can
hand them to ``executemany`` (SQLite) or ``COPY``/``copy_records_to_table`` (PostgreSQL) unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from cryptoarb.storage.schema import TABLES

Row = tuple[Any, ...]


class StoreError(Exception):
    """The store could not do what was asked; the message is safe to show."""


@dataclass(slots=True)
class Batch:
    """Rows to write in one transaction, grouped per table."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def add(self, table: str, row: Row) -> None:
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}")
        self.rows.setdefault(table, []).append(row)

    def tables(self) -> Iterator[tuple[str, list[Row]]]:
        """Non-empty tables in schema order (the same order on every backend)."""
        for name in TABLES:
            rows = self.rows.get(name)
            if rows:
                yield name, rows

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One executed opportunity as stored: what it earned, with the path it took."""

    opportunity_id: str
    kind: str
    path: tuple[str, ...]
    realized_profit: Decimal
    realized_profit_usd: float
    fees_usd: float
    mode: str
    at: float


@runtime_checkable
class Store(Protocol):
    async def open(self) -> None:
        ...

    async def close(self) -> None:
        ...

    async def migrate(self) -> int:
        """Apply every pending migration; returns the schema version now in force. Idempotent."""
        ...

    async def schema_version(self) -> int:
        """0 when no migration has run."""
        ...

    async def write_batch(self, batch: Batch) -> None:
        """Write every row of ``batch`` in one transaction. Re-writing the same batch is harmless for
        opportunities, orders, fills and executions (their rows are keyed), and statuses only move
        forward: a late ``detected`` opportunity or ``new`` order (an intent) never undoes a later one."""
        ...

    async def count(self, table: str) -> int:
        ...

    async def trades_count(self) -> int:
        """Trades as an exchange counts them: one per fill (an order may fill in several)."""
        ...

    async def recent_executions(self, n: int) -> list[ExecutionRecord]:
        """The ``n`` most recent executions, newest first."""
        ...

    async def pnl_usd(self, since: float | None = None, mode: str | None = None) -> float:
        """Sum of realized profit in USD over executions at or after ``since`` (all when ``None``), of one
        ``mode`` (``paper``, ``live``) or all."""
        ...
