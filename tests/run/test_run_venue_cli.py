"""Network failures worded as one line naming the host; the --live gate; one-line logging."""

from __future__ import annotations

import logging
import socket

import aiohttp
import pytest
import typer

from cryptoarb.config import Settings
from cryptoarb.run.cli import OneLineFormatter, live_refusal, run_command
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
