"""Where the engine records what it sees and does: a ``Store`` (SQLite by default, PostgreSQL when a DSN
is configured) fed by a ``StoreWriter`` that never blocks the hot path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptoarb.config import Settings, StorageSettings
from cryptoarb.storage.base import Batch, ExecutionRecord, Row, Store, StoreError
from cryptoarb.storage.postgres import PostgresStore, mask_dsn
from cryptoarb.storage.sqlite import SqliteStore
from cryptoarb.storage.writer import StoreWriter, event_rows

DSN_ENV = "CRYPTOARB_DB_DSN"

__all__ = [
    "DSN_ENV",
    "Batch",
    "ExecutionRecord",
    "PostgresStore",
    "Row",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreWriter",
    "create_store",
    "create_writer",
    "event_rows",
    "mask_dsn",
    "resolve_dsn",
]


def resolve_dsn(settings: Settings, explicit: str | None = None,
                environ: Mapping[str, str] = os.environ) -> str | None:
    """The PostgreSQL DSN in force: ``explicit``, else ``CRYPTOARB_DB_DSN``, else ``secrets.db_dsn``."""
    if explicit:
        return explicit
    if environ.get(DSN_ENV):
        return environ[DSN_ENV]
    secret = settings.secrets.db_dsn
    return secret.get_secret_value() if secret is not None else None


def create_store(settings: StorageSettings, sqlite_path: Path, *, dsn: str | None = None,
                 schema: str | None = None) -> Store:
    """The configured backend, not yet opened: PostgreSQL when a DSN is given, else the SQLite file."""
    if dsn:
        return PostgresStore(dsn, schema=schema)
    backend = str(settings.backend)
    if backend == "sqlite":
        return SqliteStore(sqlite_path)
    if backend == "postgres":
        raise StoreError(f"storage.backend = 'postgres' needs a DSN: set {DSN_ENV}")
    raise StoreError(f"storage.backend: unsupported backend {backend!r}")


def create_writer(store: Store, settings: StorageSettings, max_queue: int = 100_000) -> StoreWriter:
    return StoreWriter(store, batch_size=settings.batch_size, flush_interval_s=settings.flush_interval_s,
                       max_queue=max_queue)
