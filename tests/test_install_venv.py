"""The README's way to install without make: `python3 -m venv .venv && .venv/bin/pip install .` works.

On a fresh Debian 12 a system-wide `pip install .` is refused (PEP 668), so the README sends readers
to a virtual environment of their own. This test does exactly that with the system's Python, in a
copy of the project (the build writes into the source tree), and runs the installed command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter import __version__
from tests.support.tools import REPO_ROOT, require_tool


def _copy_tracked_files(target: Path) -> None:
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listing):
        source = REPO_ROOT / raw.decode()
        if source.is_file():
            destination = target / raw.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pip_install_into_a_venv_as_the_readme_says(tmp_path: Path) -> None:
    python3 = require_tool("python3")
    require_tool("git")
    project = tmp_path / "codat-exporter"
    _copy_tracked_files(project)
    install = subprocess.run(
        ["bash", "-c", "python3 -m venv .venv && .venv/bin/pip install -q ."],
        cwd=project,
        # The user's pip configuration and cache, but not this test run's virtual environment.
        env={
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
            "PATH": f"{Path(python3).parent}:/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    version = subprocess.run(
        [str(project / ".venv" / "bin" / "codat-exporter"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (version.returncode, version.stdout.strip()) == (0, f"codat-exporter {__version__}")
    check = subprocess.run(
        [str(project / ".venv" / "bin" / "codat-exporter"), "check-config", "config.example.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
