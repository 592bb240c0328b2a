"""Test certificates made with the ``openssl`` CLI: a CA, a server certificate, client certificates.

Everything is generated into a temporary directory per test session; nothing is
checked in, so no key ever lives in the repository.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import require_tool

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    """Files of a throw-away PKI: ``ca`` signs ``server`` and ``client``; ``other_ca`` signs ``stranger``."""

    directory: Path

    def path(self, name: str) -> Path:
        """The file ``name`` (e.g. ``server.crt``)."""
        return self.directory / name

    def pair(self, name: str) -> tuple[str, str]:
        """``(cert, key)`` paths of ``name``, as ``requests``' ``cert=`` wants them."""
        return str(self.path(f"{name}.crt")), str(self.path(f"{name}.key"))


def _run(openssl: str, *args: str, cwd: Path) -> None:
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(openssl: str, name: str, cwd: Path) -> None:
    _run(
        openssl,
        "req",
        "-x509",
        *_EC,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=cwd,
    )


def _signed(openssl: str, name: str, ca: str, cwd: Path, *, days: str = "2", san: str | None = None) -> None:
    _run(
        openssl, "req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd
    )
    extra: list[str] = []
    if san is not None:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    _run(
        openssl,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        days,
        *extra,
        cwd=cwd,
    )


def make_pki(directory: Path) -> Pki:
    """Generate the CA, server (for 127.0.0.1 and localhost), client, expired client and stranger files."""
    openssl = require_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    _ca(openssl, "ca", directory)
    _ca(openssl, "other_ca", directory)
    _signed(openssl, "server", "ca", directory, san="IP:127.0.0.1,DNS:localhost")
    _signed(openssl, "client", "ca", directory)
    _signed(openssl, "expired", "ca", directory, days="-1")
    _signed(openssl, "stranger", "other_ca", directory)
    return Pki(directory)
