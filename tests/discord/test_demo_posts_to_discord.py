"""The demo, run as a user runs it, reports its trades to a Discord webhook (a loopback fake)."""

import asyncio
import json
import os
import sys

import pytest
from fake_discord import WEBHOOK_TOKEN, FakeDiscord

pytestmark = pytest.mark.slow


async def test_demo_posts_trade_embeds_to_the_webhook_and_never_logs_its_token(tmp_path):
    fake = FakeDiscord()
    url = await fake.start()
    env = {**os.environ, "CRYPTOARB_DATA_DIR": str(tmp_path / "data"),
           "CRYPTOARB_SECRETS__DISCORD_WEBHOOK_URL": url,
           "CRYPTOARB_DISCORD__AGGREGATE_WINDOW_S": "0.5"}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptoarb.cli", "demo", "--duration", "10", "--speed", "0", "--json",
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
        assert proc.returncode == 0, err.decode()[-2000:]
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["opportunities_executed"] > 0
        assert fake.accepted, "nothing reached the webhook"
        trades = [e for e in fake.embeds if str(e.get("title", "")).startswith("Trade executed")]
        assert trades, [e.get("title") for e in fake.embeds]
        assert any("USDT" in json.dumps(e) for e in trades)  # trade embeds name the cycle's path
        assert WEBHOOK_TOKEN not in (out + err).decode()
    finally:
        await fake.close()
