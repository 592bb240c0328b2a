"""Building and running the exporter's image with podman, without a Docker engine or image registry.

The base image is made locally from the Debian mirror this machine's apt already uses (mmdebstrap,
then ``podman import``), because CI machines cannot pull images. It is cached under
:data:`BASE_IMAGE` between runs.
"""

from __future__ import annotations

import fcntl
import os
import re
import ssl
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BASE_IMAGE = "localhost/codat-exporter-base:bookworm"
BASE_SUITE = "bookworm"
# What the official python:3.11-slim-bookworm image offers the Dockerfile: Python 3.11 with the
# venv module, CA certificates, and useradd (Priority: required, hence the minbase variant).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR_ENV = "CODAT_EXPORTER_DEBIAN_MIRROR"
PODMAN_BRIDGE = "cni-podman0"
"""The bridge podman creates for its default network (with NAT chains); the tests never use it."""

# podman 4.3 on a cgroup v1/v2 hybrid host: crun cannot run RUN steps or containers, and the
# default ulimits podman asks for exceed the host's hard limits.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
events_logger = "file"
"""


@dataclass(frozen=True, slots=True)
class AptSource:
    """One ``deb`` entry of the apt sources: a mirror URI and the suites it serves."""

    uri: str
    suites: tuple[str, ...]


def parse_apt_sources(text: str) -> list[AptSource]:
    """Parse apt sources, in one-line (``sources.list``) or deb822 (``*.sources``) format."""
    sources: list[AptSource] = []
    stanza: dict[str, str] = {}

    def flush() -> None:
        enabled = stanza.get("enabled", "yes").lower() != "no"
        if enabled and "deb" in stanza.get("types", "").split():
            for uri in stanza.get("uris", "").split():
                sources.append(AptSource(uri.rstrip("/"), tuple(stanza.get("suites", "").split())))
        stanza.clear()

    for raw in text.splitlines():
        if not raw.strip():  # a blank line ends a deb822 stanza; a comment line does not
            flush()
            continue
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        one_line = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if one_line:
            sources.append(AptSource(one_line.group(1).rstrip("/"), (one_line.group(2),)))
            continue
        field = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
        if field:
            stanza[field.group(1).lower()] = field.group(2)
    flush()
    return sources


def debian_mirror(sources: Sequence[AptSource], suite: str = BASE_SUITE) -> str | None:
    """The mirror URI that serves ``suite`` itself (not -security or -updates), if any."""
    for source in sources:
        if suite in source.suites:
            return source.uri
    return None


def host_debian_mirror(env: Mapping[str, str] = os.environ) -> str | None:
    """The Debian mirror of this machine's apt sources (or ``$CODAT_EXPORTER_DEBIAN_MIRROR``)."""
    if env.get(MIRROR_ENV):
        return env[MIRROR_ENV]
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    sources: list[AptSource] = []
    for path in files:
        if path.is_file() and path.suffix in (".list", ".sources"):
            sources.extend(parse_apt_sources(path.read_text(encoding="utf-8", errors="replace")))
    return debian_mirror(sources)


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine trusts, so pip inside the build trusts the same (TLS proxies)."""
    candidates = [
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class Podman:
    """Runs podman with a private containers.conf (runc, ulimits that fit this kind of host)."""

    executable: str
    containers_conf: Path

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS``; raise with podman's stderr if ``check`` and it fails."""
        env = {**os.environ, "CONTAINERS_CONF": str(self.containers_conf)}
        result = subprocess.run(
            [self.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def footprint(self) -> set[str]:
        """What podman has made on this machine: containers, images and its bridge network device."""
        containers = self.run("ps", "--all", "--quiet", "--no-trunc").stdout.split()
        listing = self.run("images", "--no-trunc", "--format={{.ID}} {{.Repository}}:{{.Tag}}").stdout
        # The base image is a cache kept on purpose (the README says how to remove it).
        images = {line.split()[0] for line in listing.splitlines() if line.strip() and BASE_IMAGE not in line}
        found = {f"container {c}" for c in containers} | {f"image {i}" for i in images}
        if Path("/sys/class/net", PODMAN_BRIDGE).exists():
            found.add(f"network device {PODMAN_BRIDGE} (with its iptables chains)")
        return found

    def image_exists(self, name: str) -> bool:
        """True if the local store holds image ``name``."""
        return self.run("image", "exists", name, check=False).returncode == 0


@contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """Hold a machine-wide lock, so concurrent test runs build the base image once."""
    lock_path = Path(tempfile.gettempdir()) / f"{name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_base_image(podman: Podman, mmdebstrap: str | None, mirror: str | None, work_dir: Path) -> None:
    """Make :data:`BASE_IMAGE` from the Debian mirror unless it is already in the local store."""
    with _exclusive("codat-exporter-base-image"):
        if podman.image_exists(BASE_IMAGE):
            return
        if mmdebstrap is None or mirror is None:
            raise AssertionError(
                f"{BASE_IMAGE} is missing and cannot be made: needs mmdebstrap and a Debian mirror in the "
                f"apt sources (or {MIRROR_ENV})"
            )
        tarball = work_dir / "base.tar"
        subprocess.run(
            [
                mmdebstrap,
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                BASE_SUITE,
                str(tarball),
                mirror,
            ],
            check=True,
            timeout=600,
        )
        try:
            podman.run(
                "import",
                "--change",
                'CMD ["/bin/bash"]',
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                str(tarball),
                BASE_IMAGE,
                timeout=300,
            )
        finally:
            tarball.unlink(missing_ok=True)
