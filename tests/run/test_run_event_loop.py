"""`run.event_loop` picks the loop `cryptoarb run` / `watch` run on: asyncio's by default, uvloop on request."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pydantic
import pytest

from cryptoarb.config import Settings
from cryptoarb.run.runner import RunError, run_app, run_coroutine


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_default_is_asyncio_s_own_loop():
    assert Settings().run.event_loop == "asyncio"
    assert run_coroutine(loop_module()).startswith("asyncio")


def test_uvloop_on_request():
    pytest.importorskip("uvloop", reason="uvloop does not run on Windows")
    assert run_coroutine(loop_module(), "uvloop").startswith("uvloop")


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_run_app_runs_on_the_loop_its_settings_name(name):
    pytest.importorskip("uvloop", reason="uvloop does not run on Windows")
    app = SimpleNamespace(settings=Settings(run={"event_loop": name}), run=loop_module)
    assert run_app(app).startswith(name)  # type: ignore[arg-type]


def test_an_unknown_loop_is_refused_with_what_is_allowed():
    with pytest.raises(pydantic.ValidationError, match="asyncio"):
        Settings(run={"event_loop": "trio"})
    coro = loop_module()
    with pytest.raises(RunError, match="'asyncio' or 'uvloop', not 'trio'"):
        run_coroutine(coro, "trio")
    assert coro.cr_frame is None  # closed, not left to warn that it was never awaited
