"""Listen addresses (``HOST:PORT``): one rule set for the exporter, the webhook port and the simulator.

``:PORT`` means all interfaces (``0.0.0.0``); an IPv6 host goes in brackets
(``[::1]:9100``). Port 0 (any free port) is for tests and tools that print the
port they got: configuration refuses it, since an operator's scrape config
needs a port that stays put.
"""

from __future__ import annotations

from typing import Final

ALL_INTERFACES: Final = "0.0.0.0"
EXAMPLE: Final = "e.g. 0.0.0.0:8329 or :8329"


class ListenAddressError(ValueError):
    """A listen address that cannot be used; ``reason`` says why without repeating the value."""

    def __init__(self, value: str, reason: str) -> None:
        """Keep the offending value and the reason."""
        self.value = value
        self.reason = reason
        super().__init__(f"listen address {value!r} is not HOST:PORT: {reason}")


def parse_listen_address(value: str, *, allow_port_zero: bool = True) -> tuple[str, int]:
    """Split ``HOST:PORT`` into host and port; raise :class:`ListenAddressError` with the reason."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ListenAddressError(value, f"there is no port (expected HOST:PORT, {EXAMPLE})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ListenAddressError(value, "an IPv6 host must be in brackets, e.g. [::]:8329")
    lowest = 0 if allow_port_zero else 1
    # isascii: str.isdigit also accepts other scripts' digits, which int() would then take.
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise ListenAddressError(value, f"port must be a number from {lowest} to 65535, got {port_text!r}")
    port = int(port_text)
    if not lowest <= port <= 65535:
        raise ListenAddressError(value, f"port must be a number from {lowest} to 65535, got {port_text!r}")
    return (host or ALL_INTERFACES, port)
