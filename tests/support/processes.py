"""Waiting for a real server process to become ready, and stopping it, for test fixtures."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path


def wait_until_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    log_path: Path,
    timeout: float,
    interval: float,
) -> None:
    """Poll ``url`` until it answers 200; fail with the process log if it exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} was not ready in {timeout} s:\n{log_path.read_text()}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Ask ``proc`` to stop (SIGTERM); kill it if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
