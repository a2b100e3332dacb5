"""Checksums: the Internet checksum (RFC 1071; OSPF packets, RSVP) and the Fletcher
checksum of ISO 8473 that OSPF puts in LSA headers (RFC 2328 §12.1.7, Appendix B)."""

from __future__ import annotations

import struct


def inet_checksum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, complemented. Odd lengths are zero-padded."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def fletcher_checksum(data: bytes, offset: int) -> int:
    """The 16-bit Fletcher checksum with the check octets at ``offset`` (ISO 8473 Annex C).

    ``data`` is the checksummed region with the checksum field's two bytes treated as
    zero. Returns the value to store there; a region carrying that value verifies to 0.
    """
    buf = bytearray(data)
    buf[offset : offset + 2] = b"\x00\x00"
    c0 = c1 = 0
    for b in buf:
        c0 = (c0 + b) % 255
        c1 = (c1 + c0) % 255
    length = len(buf)
    x = ((length - offset - 1) * c0 - c1) % 255
    if x <= 0:
        x += 255
    y = 510 - c0 - x
    if y > 255:
        y -= 255
    return (x << 8) | (y & 0xFF)


def fletcher_ok(data: bytes) -> bool:
    """True when a region carrying its Fletcher check octets verifies."""
    c0 = c1 = 0
    for b in data:
        c0 = (c0 + b) % 255
        c1 = (c1 + c0) % 255
    return c0 == 0 and c1 == 0
