"""Headless Chromium (Debian package ``chromium``) driven from tests: DOM dumps and screenshots."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.tools import require_tool

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium(url: str, workdir: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with a throw-away profile in ``workdir``; fail on a non-zero exit."""
    binary = require_tool("chromium")
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}"
    return result


def dump_dom(url: str, workdir: Path) -> str:
    """The DOM of ``url`` after Chromium rendered it, serialised as HTML."""
    return chromium(url, workdir, "--dump-dom").stdout


def screenshot(url: str, workdir: Path, out: Path, width: int = 1200, height: int = 900) -> Path:
    """Save a PNG screenshot of ``url`` at ``width``×``height`` to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    chromium(url, workdir, f"--screenshot={out}", f"--window-size={width},{height}", "--hide-scrollbars")
    return out
