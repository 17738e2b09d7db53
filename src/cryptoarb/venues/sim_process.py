"""A simulator server in a child process, from the parent's side: start it, wait for the line it prints once
it listens (:data:`~cryptoarb.venues.sim_command.LISTENING`), stop it. Used by the tests and benchmarks that
talk to a simulator over loopback as a real client would.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from cryptoarb.venues.sim_command import LISTENING


def start_server(module: str, *args: str, timeout_s: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m module --port 0 *args``; the process and the URL it listens on.

    Raises RuntimeError (the process killed) when it exits or stays silent for ``timeout_s``."""
    cmd: Sequence[str] = [sys.executable, "-m", module, "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{module} exited with {proc.wait()} before listening: {' '.join(cmd)}")
            if line.startswith(LISTENING):
                return proc, line[len(LISTENING):].strip()
        raise RuntimeError(f"{module} did not start within {timeout_s:g} s: {' '.join(cmd)}")
    except BaseException:
        stop_server(proc)
        raise


def stop_server(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; a server paused with SIGSTOP is resumed first."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    if proc.stdout is not None:
        proc.stdout.close()
