"""Every example command in README.md runs as printed against the simulator, so the README cannot drift.

Commands are extracted from the README itself: lines of code blocks and inline code that start
with ``codat-exporter`` (optionally after ``$ `` and ``VAR=value`` assignments), leaving out
synopses (``[--config FILE]``, ``COMPANY``, ``a | b``). Each must have an expectation below, and
each expectation must still be in the README. They run in a shell whose ``PATH`` starts with the
virtual environment's ``bin`` (as the README tells the reader to set it), with ``CODAT_API_KEY``
and ``CODAT_BASE_URL`` exported for the simulator (as the reader exports their own). Only two
things are moved: the simulator's port 8330 to a free one, and node_exporter's textfile directory
into a temporary one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.exposition.families import DATA_STATUS
from tests.support.processes import stop_process, wait_until_ready
from tests.support.tools import REPO_ROOT, free_port
from tests.support.waiting import wait_until

README = REPO_ROOT / "README.md"
SIMULATOR_PORT = "8330"
TEXTFILE_DIR = "/var/lib/node_exporter"
STALE_COMPANY = "cdef84c1-39c3-4faa-900a-c6ce57f39dd9"

_COMMAND = re.compile(r"^(?:\$ )?((?:[A-Z_]+=\S+ )*codat-exporter(?: .*)?)$")
_ENV_PREFIX = re.compile(r"^(?:[A-Z_]+=\S+ )*")
# Metasyntax of a synopsis: optional parts, alternatives, ellipses, or an upper-case placeholder.
_SYNOPSIS = re.compile(r"[\[\]|(…]|\.\.\.|\b[A-Z][A-Z_:]*\b")


@dataclass(frozen=True)
class Runs:
    """A command that finishes: its exit code and what its output (or a file it writes) holds."""

    code: int
    says: str
    writes: str | None = None


@dataclass(frozen=True)
class Serves:
    """A command that serves until stopped: ``exporter`` (/metrics with company data) or ``simulator``."""

    what: str


EXPECTED: dict[str, Runs | Serves] = {
    "codat-exporter --version": Runs(0, "codat-exporter "),
    "codat-exporter companies": Runs(0, "Acme Trading Ltd"),
    "CODAT_BASE_URL=http://127.0.0.1:8330 CODAT_API_KEY=demo codat-exporter companies": Runs(
        0, "Acme Trading Ltd"
    ),
    f"codat-exporter status {STALE_COMPANY}": Runs(0, "LAST SUCCESSFUL SYNC"),
    "codat-exporter check-config config.yaml": Runs(0, "config.yaml: OK"),
    (
        "codat-exporter once > /var/lib/node_exporter/codat.prom.$$ && mv "
        "/var/lib/node_exporter/codat.prom.$$ /var/lib/node_exporter/codat.prom"
    ): Runs(0, f"\n{DATA_STATUS.name}{{", writes="codat.prom"),
    "codat-exporter run": Serves("exporter"),
    "codat-exporter run --config config.yaml": Serves("exporter"),
    "CODAT_BASE_URL=http://127.0.0.1:8330 CODAT_API_KEY=demo codat-exporter run": Serves("exporter"),
    "codat-exporter simulate": Serves("simulator"),
    "codat-exporter simulate &": Serves("simulator"),
    "codat-exporter simulate --control": Serves("simulator"),
}


def readme_commands(text: str) -> list[str]:
    """The example commands of a README: code lines and inline code starting with ``codat-exporter``."""
    found: list[str] = []
    in_fence = continued = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        candidates = re.findall(r"`([^`]+)`", line)
        # A line continuing another (`docker run … \`) holds arguments, not a command of its own.
        if (in_fence or line.startswith("    ")) and not continued:
            candidates.insert(0, line.strip())
        continued = line.rstrip().endswith("\\")
        for candidate in candidates:
            command = re.split(r"\s+#", candidate, maxsplit=1)[0].strip()
            match = _COMMAND.match(command)
            if match is None or match.group(1) == "codat-exporter":  # the name, not a command
                continue
            words = _ENV_PREFIX.sub("", match.group(1))
            if not _SYNOPSIS.search(words) and match.group(1) not in found:
                found.append(match.group(1))
    return found


def test_synopses_are_told_apart_from_examples() -> None:
    text = (
        "    codat-exporter status COMPANY [--data-type T]\n"
        "    $ codat-exporter status abc   # a comment\n"
        "```\ncodat-exporter companies | status | history\ncodat-exporter --version\n```\n"
        "Try `codat-exporter simulate &` then `X=1 codat-exporter companies`, not `codat-exporterx`.\n"
        "The `codat-exporter` command.\n"
        "```sh\ndocker run -d \\\n  codat-exporter run --config x.yaml\n```\n"
    )
    assert readme_commands(text) == [
        "codat-exporter status abc",
        "codat-exporter --version",
        "codat-exporter simulate &",
        "X=1 codat-exporter companies",
    ]


def test_every_readme_command_has_an_expectation_and_every_expectation_is_in_the_readme() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert sorted(set(commands) - set(EXPECTED)) == [], "README commands this test does not run"
    assert sorted(set(EXPECTED) - set(commands)) == [], "expectations for commands the README dropped"


@dataclass(frozen=True)
class Shell:
    """Where and with what environment the README's commands run."""

    cwd: Path
    env: dict[str, str]
    simulator_port: str

    def as_printed(self, command: str) -> str:
        """The command with the simulator's port and the textfile directory moved (nothing else)."""
        moved = command.replace(f"127.0.0.1:{SIMULATOR_PORT}", f"127.0.0.1:{self.simulator_port}")
        moved = moved.replace(TEXTFILE_DIR, str(self.cwd / "textfile"))
        if moved.startswith("codat-exporter simulate"):
            moved = moved.rstrip("& ") + f" --listen-address 127.0.0.1:{free_port()}"
        return moved


def _exec(command: str) -> str:
    """``command`` run by ``exec`` (so SIGTERM reaches it, not a shell), its assignments kept."""
    assignments = _ENV_PREFIX.match(command)
    prefix = assignments.group() if assignments else ""
    return f"{prefix}exec {command[len(prefix) :]}"


def _start_simulator(cwd: Path, env: dict[str, str], port: str) -> subprocess.Popen[bytes]:
    log_path = cwd / f"simulator-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec codat-exporter simulate --listen-address 127.0.0.1:{port}"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/companies"
    wait_until(lambda: proc.poll() is not None or _answers(url), "the simulator to answer", timeout=30)
    assert proc.poll() is None, log_path.read_text()
    return proc


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 401 without a key: it is up
    except OSError:
        return False


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """The README's `codat-exporter simulate &`, and a shell set up as the README tells its reader."""
    cwd = tmp_path_factory.mktemp("readme")
    (cwd / "textfile").mkdir()
    shutil.copy(REPO_ROOT / "config.example.yaml", cwd / "config.yaml")
    port = str(free_port())
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODAT_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    simulator = _start_simulator(cwd, env, port)
    try:
        env.update({"CODAT_API_KEY": "demo", "CODAT_BASE_URL": f"http://127.0.0.1:{port}"})
        yield Shell(cwd, env, port)
    finally:
        stop_process(simulator)


@pytest.mark.parametrize("command", sorted(c for c, e in EXPECTED.items() if isinstance(e, Runs)))
def test_command_runs_as_printed(shell: Shell, command: str) -> None:
    expected = EXPECTED[command]
    assert isinstance(expected, Runs)
    result = subprocess.run(
        ["bash", "-c", shell.as_printed(command)],
        cwd=shell.cwd,
        env=shell.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == expected.code, result.stdout + result.stderr
    output = (shell.cwd / "textfile" / expected.writes).read_text() if expected.writes else result.stdout
    assert expected.says in output, output[-2000:]
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("command", sorted(c for c, e in EXPECTED.items() if isinstance(e, Serves)))
def test_serving_command_serves_then_stops_on_sigterm(shell: Shell, command: str) -> None:
    expected = EXPECTED[command]
    assert isinstance(expected, Serves)
    address = f"127.0.0.1:{free_port()}"
    env = {**shell.env, "CODAT_EXPORTER_LISTEN_ADDRESS": address}
    printed = shell.as_printed(command)
    log_path = shell.cwd / f"serve-{address.rpartition(':')[2]}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", _exec(printed.removesuffix("&").strip())],
            cwd=shell.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if expected.what == "exporter":
            wait_until_ready(
                proc, f"http://{address}/readyz", name=printed, log_path=log_path, timeout=60, interval=0.2
            )
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
                assert f"\n{DATA_STATUS.name}{{" in response.read().decode()
        else:
            sim_address = printed.rpartition("--listen-address ")[2]
            url = f"http://{sim_address}/companies"
            wait_until(lambda: proc.poll() is not None or _answers(url), f"{printed} to answer", timeout=30)
        assert proc.poll() is None, log_path.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
        assert "Traceback" not in log_path.read_text()
    finally:
        stop_process(proc)
