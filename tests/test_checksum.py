"""The checksums against their textbook definitions (RFC 1071's loop, ISO 8473 Annex C's
loop): the fast forms in gmpls/checksum.py must agree on every input."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from gmpls.checksum import fletcher_checksum, fletcher_ok, inet_checksum


def inet_reference(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def fletcher_reference(data: bytes, offset: int) -> int:
    buf = bytearray(data)
    buf[offset : offset + 2] = b"\x00\x00"
    c0 = c1 = 0
    for b in buf:
        c0 = (c0 + b) % 255
        c1 = (c1 + c0) % 255
    x = ((len(buf) - offset - 1) * c0 - c1) % 255
    if x <= 0:
        x += 255
    y = 510 - c0 - x
    if y > 255:
        y -= 255
    return (x << 8) | (y & 0xFF)


def fletcher_ok_reference(data: bytes) -> bool:
    c0 = c1 = 0
    for b in data:
        c0 = (c0 + b) % 255
        c1 = (c1 + c0) % 255
    return c0 == 0 and c1 == 0


EDGES = [b"", b"\x00", b"\xff", b"\xff\xff", b"\x00\x00", b"\xff\xff" * 2, b"\x80\x00\x80\x00"]


def test_inet_checksum_edges() -> None:
    for data in EDGES:
        assert inet_checksum(data) == inet_reference(data), data


@given(st.binary(max_size=1500))
def test_inet_checksum_matches_rfc1071(data: bytes) -> None:
    assert inet_checksum(data) == inet_reference(data)


@given(st.binary(min_size=18, max_size=600))
def test_fletcher_matches_iso8473(data: bytes) -> None:
    cks = fletcher_checksum(data, 14)
    assert cks == fletcher_reference(data, 14)
    filled = data[:14] + struct.pack("!H", cks) + data[16:]
    assert fletcher_ok(filled)
    assert fletcher_ok(data) == fletcher_ok_reference(data)
