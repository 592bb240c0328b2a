"""Fresh clone → first /metrics with company data, as a new user's `make demo` does it, cold pip cache.

    .venv/bin/python -m bench.bench_first_contact            # a clone of HEAD
    .venv/bin/python -m bench.bench_first_contact --worktree # the working tree, uncommitted changes too
    .venv/bin/python -m bench.bench_first_contact --dev      # also time the `make test` install

Each run copies the project into a new temporary directory, gives pip an empty cache directory and
ignores pip configuration files (so packages come from the index, as on a new machine), starts
`make demo` with the system ``python3``, and polls the demo's /metrics until a
``codat_data_status`` series appears. It prints the elapsed times and the size of ``.venv``, then
stops the demo and removes everything it made. Needs network access to the package index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from exporter.exposition.families import DATA_STATUS

REPO_ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 300.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _copy_project(target: Path, worktree: bool) -> None:
    if not worktree:
        subprocess.run(
            ["git", "clone", "--quiet", "--depth=1", f"file://{REPO_ROOT}", str(target)], check=True
        )
        return
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listing:
        if not raw:
            continue
        source = REPO_ROOT / raw.decode()
        if source.is_file():
            destination = target / raw.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _has_company_data(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return f"\n{DATA_STATUS.name}{{" in response.read().decode()
    except OSError:
        return False


def _du_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def _environment(work: Path, address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODAT_", "PIP_", "VIRTUAL_ENV"))}
    env.update(
        {
            "PIP_CACHE_DIR": str(work / "pip-cache"),  # cold: an empty cache
            "PIP_CONFIG_FILE": os.devnull,  # no local wheelhouse or extra index: the public index only
            "CODAT_EXPORTER_LISTEN_ADDRESS": address,
            "PATH": ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p),
        }
    )
    ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca_bundle.is_file():
        env["PIP_CERT"] = str(ca_bundle)  # trust what the machine trusts (TLS-inspecting proxies)
    return env


def measure_demo(worktree: bool) -> dict[str, float]:
    """Time `make demo` in a fresh copy: until the venv is installed, and until company data is served."""
    with tempfile.TemporaryDirectory(prefix="first-contact-") as tmp:
        work = Path(tmp)
        project = work / "codat-exporter"
        _copy_project(project, worktree)
        address = f"127.0.0.1:{_free_port()}"
        env = _environment(work, address)
        started = time.monotonic()
        log = (work / "make-demo.log").open("wb")
        proc = subprocess.Popen(
            ["make", "demo"],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        installed_at = metrics_at = None
        try:
            while time.monotonic() - started < DEADLINE and proc.poll() is None:
                if installed_at is None and list((project / ".venv").glob(".installed-*")):
                    installed_at = time.monotonic() - started
                if _has_company_data(f"http://{address}/metrics"):
                    metrics_at = time.monotonic() - started
                    break
                time.sleep(0.1)  # the polling interval of a deadline loop
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()
        if metrics_at is None:
            sys.exit(f"no company data within {DEADLINE:.0f} s:\n{(work / 'make-demo.log').read_text()}")
        return {
            "install_s": installed_at or float("nan"),
            "first_metrics_s": metrics_at,
            "venv_mb": _du_mb(project / ".venv"),
        }


def measure_dev_install(worktree: bool) -> dict[str, float]:
    """Time the `make test` Python install (runtime + dev tools) in a fresh copy, cold cache."""
    with tempfile.TemporaryDirectory(prefix="first-contact-dev-") as tmp:
        work = Path(tmp)
        project = work / "codat-exporter"
        _copy_project(project, worktree)
        env = _environment(work, "127.0.0.1:0")
        started = time.monotonic()
        subprocess.run(["make", "setup-python"], cwd=project, env=env, check=True, capture_output=True)
        return {"install_s": time.monotonic() - started, "venv_mb": _du_mb(project / ".venv")}


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worktree", action="store_true", help="copy the working tree, not a clone of HEAD")
    parser.add_argument("--dev", action="store_true", help="also time the development install")
    parser.add_argument("--runs", type=int, default=1, help="how many demo runs (default 1)")
    args = parser.parse_args(argv)
    for run in range(1, args.runs + 1):
        demo = measure_demo(args.worktree)
        print(
            f"make demo run {run}: runtime install {demo['install_s']:.1f} s, first /metrics with company "
            f"data {demo['first_metrics_s']:.1f} s, .venv {demo['venv_mb']:.0f} MB"
        )
    if args.dev:
        dev = measure_dev_install(args.worktree)
        print(
            f"make setup-python (dev tools): install {dev['install_s']:.1f} s, .venv {dev['venv_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
