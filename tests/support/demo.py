"""``codat-exporter run --demo`` as a real subprocess, for tests that need the exporter on demo data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import stop_process, wait_until_ready
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
            wait_until_ready(
                proc,
                f"http://{address}/readyz",
                name="the demo exporter",
                log_path=log_path,
                timeout=READY_TIMEOUT,
                interval=0.2,
            )
            yield address
        finally:
            stop_process(proc)
