"""``codat-exporter run --demo`` as a real subprocess, for tests that need the exporter on demo data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.tools import REPO_ROOT, free_port

READY_TIMEOUT = 60.0


@contextmanager
def run_demo_exporter(workdir: Path) -> Iterator[str]:
    """Start the demo exporter on a free loopback port, wait for /readyz, yield its host:port; stop it."""
    address = f"127.0.0.1:{free_port()}"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "exporter.log"
    # The demo ignores real Codat settings anyway; dropping them keeps the test hermetic.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODAT_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "run", "--demo", "--web.listen-address", address],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"the demo exporter exited with {proc.returncode}:\n{log_path.read_text()}"
                    )
                try:
                    with urllib.request.urlopen(f"http://{address}/readyz", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the demo exporter was not ready in {READY_TIMEOUT} s:\n{log_path.read_text()}"
                    )
                time.sleep(0.2)
            yield address
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
