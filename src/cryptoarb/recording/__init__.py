"""Market data recordings: record a venue's book stream, replay it as a venue, backtest over it.

A recording is a JSON Lines file (gzip-compressed when its name ends in ``.gz``): a header line with
the venues' markets (their trading rules), one line per ``BookUpdate`` tagged with its batch number
and the venue clock of that batch, and a trailer line that marks the recording complete.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JsonlSink": "recorder", "RecordStats": "recorder", "StoreSink": "recorder", "record": "recorder",
    "Recording": "replay", "ReplayVenue": "replay",
    "RecordingError": "format", "RecordingHeader": "format",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so that mounting the CLI commands (cryptoarb.recording.cli) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
