"""ETSI 004 OPEN's relay path extension (docs/etsi004.md §Relay path): an OPEN without it
is byte for byte the OPEN of before; with it, a count and the site IDs follow."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from gmpls.errors import DecodeError, EncodeError
from gmpls.qkd import etsi004 as etsi

H = bytes(range(64))
DEST = IPv4Address("10.1.1.5")
S = [IPv4Address(f"10.1.1.{i}") for i in range(1, 5)]
#: the OPEN of V1 with no relay path, as it was before the extension
GOLDEN = bytes.fromhex("01010000000000090a010105000000200000000000000000000003e8") + H


def test_open_without_relay_unchanged() -> None:
    msg = etsi.Open(9, DEST, etsi.QoS(32, 0, 0, 1000), H)
    assert etsi.encode(msg) == GOLDEN
    assert etsi.decode(GOLDEN) == msg
    assert etsi.decode(GOLDEN).relay == ()


def test_open_with_relay_golden() -> None:
    msg = etsi.Open(9, DEST, etsi.QoS(32, 0, 0, 1000), H, (S[0], S[1], S[2]))
    wire = GOLDEN + bytes.fromhex("030a0101010a0101020a010103")
    assert etsi.encode(msg) == wire
    assert etsi.decode(wire) == msg


@pytest.mark.parametrize(
    ("tail", "field"),
    [
        ("010a010101", "relay_count"),
        ("11", "relay_count"),
        ("00", "relay_count"),
        ("020a010101", "relay[1]"),
        ("020a0101010a01010200", "end"),
    ],
)
def test_bad_relay_part(tail: str, field: str) -> None:
    with pytest.raises(DecodeError) as e:
        etsi.decode(GOLDEN + bytes.fromhex(tail))
    assert e.value.field.endswith(field), e.value.field


@pytest.mark.parametrize("n", [1, 17])
def test_relay_length_checked_on_encode(n: int) -> None:
    with pytest.raises(EncodeError):
        etsi.encode(etsi.Open(1, DEST, etsi.QoS(), H, tuple(S[0] for _ in range(n))))
