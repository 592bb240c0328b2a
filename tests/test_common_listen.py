"""Listen addresses: one rule set for the exporter, the webhook port, the simulator and the config."""

from __future__ import annotations

import pytest

from exporter.common.listen import ListenAddressError, parse_listen_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("0.0.0.0:8329", ("0.0.0.0", 8329)),
        (":8329", ("0.0.0.0", 8329)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::]:65535", ("::", 65535)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8329", "there is no port (expected HOST:PORT"),
        ("", "there is no port"),
        ("host:", "port must be a number from 0 to 65535, got ''"),
        ("host:http", "port must be a number from 0 to 65535"),
        ("host:70000", "port must be a number from 0 to 65535"),
        ("host:٣٣", "port must be a number"),  # digits of another script are not a port
        ("host:-1", "port must be a number"),
        ("::1:80", "an IPv6 host must be in brackets"),
        ("[::1:80", "an IPv6 host must be in brackets"),
    ],
)
def test_refusals_name_the_value_and_the_reason(address: str, reason: str) -> None:
    with pytest.raises(ListenAddressError) as caught:
        parse_listen_address(address)
    assert caught.value.reason.startswith(reason)
    assert str(caught.value).startswith(f"listen address {address!r} is not HOST:PORT: ")


def test_port_zero_is_refused_where_a_fixed_port_is_needed() -> None:
    with pytest.raises(ListenAddressError, match="from 1 to 65535"):
        parse_listen_address(":0", allow_port_zero=False)
    assert parse_listen_address(":1", allow_port_zero=False) == ("0.0.0.0", 1)
