"""gmpls/wire.py: the 64-bit field the QKD codecs carry key IDs and sequence numbers in."""

from __future__ import annotations

import pytest

from gmpls.errors import DecodeError
from gmpls.wire import Reader, u64


def test_u64_round_trip_and_truncation() -> None:
    data = u64(0x0123456789ABCDEF) + u64(2**64 - 1)
    assert data[:8] == bytes.fromhex("0123456789abcdef")
    r = Reader(data, "t")
    assert (r.u64("a"), r.u64("b")) == (0x0123456789ABCDEF, 2**64 - 1) and r.at_end()
    with pytest.raises(DecodeError) as e:
        Reader(bytes(7), "t").u64("key_id")
    assert e.value.field == "t.key_id"


def test_ipv4_addresses_are_shared_and_the_cache_bounded() -> None:
    from ipaddress import IPv4Address

    from gmpls import wire

    a = Reader(bytes([10, 0, 0, 1]) * 2, "t")
    first, second = a.ipv4("a"), a.ipv4("b")
    assert first == IPv4Address("10.0.0.1") and second is first
    wire._IPV4.clear()
    for i in range(wire._IPV4_MAX + 5):
        assert wire.ipv4_of(i.to_bytes(4, "big")) == IPv4Address(i)
        assert len(wire._IPV4) <= wire._IPV4_MAX
