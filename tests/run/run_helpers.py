"""Helpers of the ``cryptoarb run`` tests (a uniquely named module: test files import it directly).

- the KuCoin simulator launcher of tests/kucoin/kucoin_sim_process.py, loaded by path;
- the argv that runs ``cryptoarb run`` / ``watch`` (mounted on the main app, or ``python -m cryptoarb.run``);
- a strict parser of the Prometheus text format.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

_NAME = "kucoin_sim_process"
if _NAME in sys.modules:
    _sim = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).parents[1] / "kucoin" / f"{_NAME}.py")
    assert _spec is not None and _spec.loader is not None
    _sim = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _sim  # dataclasses look their module up while the class is built
    _spec.loader.exec_module(_sim)

SimProcess: Any = _sim.SimProcess
start_sim: Any = _sim.start_sim


def command_argv(command: str) -> list[str]:
    """``cryptoarb <command>`` once the lead mounted it on the main app, else ``python -m cryptoarb.run``."""
    import typer

    from cryptoarb.cli import app

    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    if command in names:
        return [sys.executable, "-m", "cryptoarb.cli", command]
    return [sys.executable, "-m", "cryptoarb.run", command]


SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(?P<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<v>(?:[^"\\]|\\.)*)"(?:,|$)')


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A strict little parser of the text format: every sample after its family's HELP and TYPE."""
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    typed: set[str] = set()
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge"), line
            typed.add(name)
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m["name"]
            assert name in typed and name in helped, f"{name} sampled before HELP/TYPE"
            labels = {lm["k"]: lm["v"] for lm in LABEL.finditer(m["labels"] or "")}
            families.setdefault(name, []).append((labels, float(m["value"])))
    for name, samples in families.items():
        keys = [tuple(sorted(labels.items())) for labels, _ in samples]
        assert len(keys) == len(set(keys)), f"duplicate series in {name}"
    return families
