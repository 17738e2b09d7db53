"""Network failures worded as one line naming the host; the --live gate; one-line logging."""

from __future__ import annotations

import asyncio
import io
import logging
import socket

import aiohttp
import pytest
import typer
from rich.console import Console

from cryptoarb.config import Settings, environment_secrets
from cryptoarb.run.cli import (
    QUIET_LIBRARIES,
    OneLineFormatter,
    live_refusal,
    run_command,
    setup_logging,
)
from cryptoarb.run.runner import RunApp
from cryptoarb.run.venue import describe_failure, is_network_failure
from cryptoarb.venues.kucoin.rest import KucoinRest


async def test_connection_refused_names_the_host() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = KucoinRest(base_url=f"http://127.0.0.1:{port}", timeout_s=3)
    try:
        with pytest.raises(Exception) as caught:
            await rest.load_markets()
    finally:
        await rest.close()
    assert is_network_failure(caught.value)
    assert describe_failure(caught.value) == "cannot reach 127.0.0.1: connection refused"


def test_dns_failure_through_ccxt_style_wrapping() -> None:
    root = socket.gaierror(-2, "Name or service not known")
    try:
        try:
            try:
                raise root
            except OSError as exc:
                raise aiohttp.ClientConnectorDNSError(
                    aiohttp.client_reqrep.ConnectionKey("api.kucoin.com", 443, True, True, None, None, None),
                    exc) from exc
        except aiohttp.ClientError as exc:
            raise RuntimeError("kucoin GET https://api.kucoin.com/api/v3/currencies") from exc
    except RuntimeError as wrapped:
        text = describe_failure(wrapped)
    assert text == "cannot reach api.kucoin.com: DNS lookup failed (Name or service not known)"
    assert "\n" not in text


def test_other_failures_keep_their_message() -> None:
    assert describe_failure(ValueError("bad answer"), "https://api.kucoin.com") == "api.kucoin.com: bad answer"
    assert not is_network_failure(ValueError("x"))


def test_live_is_refused_naming_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for key in ("KEY", "SECRET", "PASSPHRASE"):
        monkeypatch.delenv(f"CRYPTOARB_SECRETS__KUCOIN_API_{key}", raising=False)
    refusal = live_refusal(Settings())
    assert refusal is not None and refusal.startswith("--live refused")
    assert 'mode = "live"' in refusal and "CRYPTOARB_SECRETS__KUCOIN_API_KEY" in refusal
    monkeypatch.chdir(tmp_path)
    with pytest.raises(typer.Exit) as exit_:
        run_command(config=None, live=True, as_json=False, duration=0.5)
    assert exit_.value.exit_code == 2


def test_live_gate_passes_with_mode_keys_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOARB_MODE", "live")
    for key in ("KEY", "SECRET", "PASSPHRASE"):
        monkeypatch.setenv(f"CRYPTOARB_SECRETS__KUCOIN_API_{key}", f"test-{key.lower()}")
    assert live_refusal(Settings()) is None


def test_log_lines_are_one_line_without_tracebacks() -> None:
    fmt = OneLineFormatter(debug=False)
    try:
        raise ConnectionError("peer went away")
    except ConnectionError as exc:
        record = logging.LogRecord("cryptoarb.run", logging.ERROR, __file__, 1, "task %s failed\nbadly", ("x",),
                                   (type(exc), exc, exc.__traceback__))
    text = fmt.format(record)
    assert text == "error: task x failed badly (ConnectionError: peer went away)"
    other = logging.LogRecord("aiohttp.client", logging.WARNING, __file__, 1, "slow", (), None)
    assert fmt.format(other) == "warning: aiohttp.client: slow"
    assert "Traceback" in OneLineFormatter(debug=True).format(record)


def test_live_needs_the_keys_of_the_venue_run_trades(monkeypatch: pytest.MonkeyPatch) -> None:
    # run streams and trades run.venue (KuCoin); keys of another venue listed in `venues` do not let it go live
    monkeypatch.setenv("CRYPTOARB_MODE", "live")
    for key in ("KEY", "SECRET", "PASSPHRASE"):
        monkeypatch.delenv(f"CRYPTOARB_SECRETS__KUCOIN_API_{key}", raising=False)
    monkeypatch.setenv("CRYPTOARB_VENUES", '["coinbase"]')
    monkeypatch.setenv("CRYPTOARB_SECRETS__CCXT__COINBASE__API_KEY", "x")
    monkeypatch.setenv("CRYPTOARB_SECRETS__CCXT__COINBASE__SECRET", "y")
    refusal = live_refusal(Settings())
    assert refusal is not None and "CRYPTOARB_SECRETS__KUCOIN_API_KEY" in refusal


def test_debug_logging_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # CRYPTOARB_DEBUG=1 opens every logger to DEBUG, where ccxt logs each request with its signed key headers
    monkeypatch.setenv("CRYPTOARB_DEBUG", "1")
    monkeypatch.setenv("CRYPTOARB_SECRETS__KUCOIN_API_KEY", "key-SECRETVALUE-1")
    monkeypatch.setenv("CRYPTOARB_DB_DSN", "postgresql://bob:PASSWORDVALUE@db/x")
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("cryptoarb", *QUIET_LIBRARIES)}
    try:
        setup_logging(Console(file=out, width=200), environment_secrets())
        logging.getLogger("ccxt.base.exchange").debug("GET /api/v1/accounts, Request: {'KC-API-KEY': "
                                                      "'key-SECRETVALUE-1'}")
        logging.getLogger("cryptoarb.run").debug("connecting with key-SECRETVALUE-1")
        logging.getLogger("cryptoarb.storage").error("cannot open postgresql://bob:PASSWORDVALUE@db/x")
    finally:
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
    text = out.getvalue()
    assert "SECRETVALUE" not in text and "PASSWORDVALUE" not in text
    assert "debug: connecting with ********" in text and "error: cannot open ********" in text
    assert "ccxt" not in text  # third-party debug stays off even under CRYPTOARB_DEBUG


async def test_duration_ends_a_run_whose_venue_never_answers(tmp_path) -> None:
    # the venue refuses every connection: the run keeps retrying, and --duration still ends it on time
    settings = Settings(data_dir=tmp_path / "data", run={"rest_url": "http://127.0.0.1:1", "status_port": 0,
                                                         "watchlist_file": tmp_path / "watchlist.json"})
    app = RunApp(settings, command="watch", console=Console(file=io.StringIO()), live_view=False,
                 install_signals=False, duration_s=1.0)
    summary = await asyncio.wait_for(app.run(), 20)
    assert app.stop_reason == "duration" and app.venue_state == "unreachable"
    assert summary is not None
