"""The exporter-toolkit web configuration file (``--web.config.file``): TLS, basic auth, extra headers.

The same file format every Go exporter reads, so an operator reuses what they know::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12
    http_server_config:
      headers:
        Strict-Transport-Security: max-age=31536000
    basic_auth_users:
      prometheus: $2b$12$...         # a bcrypt hash, never the password

It applies to every path of both ports (/healthz too, as in the Go exporters).
Settings this server cannot honour (cipher suites, curve preferences, allowed
SANs, clients' certificates taken without verification) are refused, never
silently ignored.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from exporter.http.auth import BasicAuth, is_bcrypt_hash
from exporter.http.messages import Response

MAX_FILE_BYTES: Final = 64 * 1024

TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert")
ALLOWED_HEADERS: Final[Mapping[str, tuple[str, ...] | None]] = {
    # The headers (and values) exporter-toolkit allows; None = any value.
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_TLS_KEYS: Final = frozenset(
    {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
)
_UNSUPPORTED_TLS_KEYS: Final = frozenset(
    {
        "cert",
        "key",
        "client_ca",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
    }
)


class WebConfigError(ValueError):
    """An unusable web configuration file; the message is one line: ``FILE: field.path: reason``."""


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the HTTP servers apply: a TLS context, basic auth, extra response headers (all optional)."""

    tls: ssl.SSLContext | None = None
    auth: BasicAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def authorize(self, headers: Mapping[str, str]) -> Response | None:
        """None if the request may proceed, else the 401 response."""
        return self.auth.authorize(headers) if self.auth is not None else None

    def describe(self) -> str:
        """A short summary for the start-up log (never a secret)."""
        parts = [
            "TLS" if self.tls is not None else "no TLS",
            "basic auth" if self.auth is not None else "no basic auth",
        ]
        return ", ".join(parts)


def load_web_config(path: str | Path | None) -> WebConfig:
    """Read and check the file at ``path`` (None = plain HTTP, no auth); raise ``WebConfigError``."""
    if path is None:
        return WebConfig()
    path = Path(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise WebConfigError(f"{path}: cannot read the web config file: {error.strerror or error}") from None
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise _FieldError(
                "", f"larger than {MAX_FILE_BYTES // 1024} KiB; a web config file is a few lines"
            )
        return parse_web_config(_yaml(raw), path.parent, str(path))
    except _FieldError as problem:
        where = f"{problem.field}: " if problem.field else ""
        raise WebConfigError(f"{path}: {where}{problem.reason}") from None


class _FieldError(Exception):
    def __init__(self, field_path: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_path
        self.reason = reason


def _yaml(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
        return yaml.safe_load(text)
    except UnicodeDecodeError:
        raise _FieldError("", "not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise _FieldError("", f"invalid YAML{at}: {problem}") from None


def parse_web_config(data: object, base: Path, source: str = "") -> WebConfig:
    """The ``WebConfig`` for parsed YAML ``data``; relative file names resolve against ``base``."""
    if data is None:
        return WebConfig(source=source)
    root = _mapping(data, "")
    _known(root, "", {"tls_server_config", "http_server_config", "basic_auth_users"})
    tls = _tls(root["tls_server_config"], base) if root.get("tls_server_config") is not None else None
    auth = _auth(root["basic_auth_users"]) if root.get("basic_auth_users") else None
    headers = _headers(root.get("http_server_config"))
    return WebConfig(tls, auth, headers, source)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _FieldError(where, "must be a mapping of names to values")
    return value


def _known(section: Mapping[str, Any], where: str, keys: set[str] | frozenset[str]) -> None:
    for key in section:
        if key not in keys:
            raise _FieldError(_join(where, key), f"unknown field; expected one of {', '.join(sorted(keys))}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _string(section: Mapping[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _FieldError(_join(where, key), "must be a string")
    return value


def _tls(value: object, base: Path) -> ssl.SSLContext:
    where = "tls_server_config"
    section = _mapping(value, where)
    for name in section:
        if name in _UNSUPPORTED_TLS_KEYS:
            raise _FieldError(_join(where, name), "not supported by this exporter; remove it")
    _known(section, where, _TLS_KEYS)
    cert = _string(section, "cert_file", where)
    key = _string(section, "key_file", where)
    if cert is None:
        raise _FieldError(_join(where, "cert_file"), "missing; TLS needs a certificate file")
    if key is None:
        raise _FieldError(_join(where, "key_file"), "missing; TLS needs a key file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _version(section, "min_version", where, ssl.TLSVersion.TLSv1_2)
    context.maximum_version = _version(section, "max_version", where, ssl.TLSVersion.MAXIMUM_SUPPORTED)
    try:
        context.load_cert_chain(base / cert, base / key)
    except (OSError, ssl.SSLError) as error:
        raise _FieldError(
            _join(where, "cert_file"), f"cannot load the certificate and key: {_why(error)}"
        ) from None
    ca = _string(section, "client_ca_file", where)
    default_auth = "RequireAndVerifyClientCert" if ca is not None else "NoClientCert"
    auth_type = _string(section, "client_auth_type", where) or default_auth
    if auth_type in UNVERIFIED_CLIENT_AUTH:
        raise _FieldError(
            _join(where, "client_auth_type"),
            f"{auth_type} (a client certificate without verification) is not supported; "
            "use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
        )
    if auth_type not in CLIENT_AUTH:
        raise _FieldError(_join(where, "client_auth_type"), f"must be one of {', '.join(CLIENT_AUTH)}")
    context.verify_mode = CLIENT_AUTH[auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        if ca is None:
            raise _FieldError(
                _join(where, "client_ca_file"), f"missing; {auth_type} needs the CA to verify against"
            )
        try:
            context.load_verify_locations(cafile=base / ca)
        except (OSError, ssl.SSLError) as error:
            raise _FieldError(_join(where, "client_ca_file"), f"cannot load: {_why(error)}") from None
    return context


def _why(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error)
    return f"{error.strerror or error}: {error.filename}" if error.filename else str(error.strerror or error)


def _version(section: Mapping[str, Any], key: str, where: str, default: ssl.TLSVersion) -> ssl.TLSVersion:
    name = _string(section, key, where)
    if name is None:
        return default
    if name not in TLS_VERSIONS:
        raise _FieldError(_join(where, key), f"must be one of {', '.join(TLS_VERSIONS)}, got {name!r}")
    return TLS_VERSIONS[name]


def _auth(value: object) -> BasicAuth:
    where = "basic_auth_users"
    users = _mapping(value, where)
    for user, hashed in users.items():
        if ":" in user:
            raise _FieldError(_join(where, user), "a user name cannot contain ':'")
        if not isinstance(hashed, str) or not is_bcrypt_hash(hashed):
            raise _FieldError(
                _join(where, user), "must be a bcrypt hash ($2b$...), never the password itself"
            )
    return BasicAuth(users)


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    where = "http_server_config"
    section = _mapping(value, where)
    _known(section, where, {"headers", "http2"})
    if "http2" in section and not isinstance(section["http2"], bool):
        raise _FieldError(_join(where, "http2"), "must be true or false")
    raw = section.get("headers") or {}
    headers = _mapping(raw, _join(where, "headers"))
    canonical = {name.lower(): name for name in ALLOWED_HEADERS}
    out: dict[str, str] = {}
    for name, header_value in headers.items():
        field_path = f"{where}.headers.{name}"
        known = canonical.get(name.lower())
        if known is None:
            raise _FieldError(field_path, f"not an allowed header; allowed: {', '.join(ALLOWED_HEADERS)}")
        if not isinstance(header_value, str) or any(c in header_value for c in "\r\n\0"):
            raise _FieldError(field_path, "must be a one-line string")
        values = ALLOWED_HEADERS[known]
        if values is not None and header_value.lower() not in values:
            raise _FieldError(field_path, f"must be one of {', '.join(values)}")
        out[known] = header_value
    return out
