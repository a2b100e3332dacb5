"""Checksums: the Internet checksum (RFC 1071; OSPF packets, RSVP) and the Fletcher
checksum of ISO 8473 that OSPF puts in LSA headers (RFC 2328 §12.1.7, Appendix B).

Both are computed without a Python loop over the bytes (they run on every packet and on
every LSA received): the one's-complement sum of 16-bit words is the packet read as one
big integer, modulo 0xFFFF (2^16 = 1 modulo 0xFFFF: each word counts once, the carries
fold back in); the Fletcher sums are the sum of the bytes and the sum of its running
totals (:func:`itertools.accumulate`), modulo 255.
"""

from __future__ import annotations

from itertools import accumulate


def inet_checksum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, complemented. Odd lengths are zero-padded."""
    if len(data) % 2:
        data += b"\x00"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF
    if s == 0 and n:  # a non-zero sum that folds to all ones (one's-complement -0)
        s = 0xFFFF
    return ~s & 0xFFFF


def _fletcher_sums(data: bytes) -> tuple[int, int]:
    """(C0, C1) of ISO 8473 Annex C over ``data``: C0 the sum of the octets, C1 the sum
    of C0 after each octet, both modulo 255."""
    return sum(data) % 255, sum(accumulate(data)) % 255


def fletcher_checksum(data: bytes, offset: int) -> int:
    """The 16-bit Fletcher checksum with the check octets at ``offset`` (ISO 8473 Annex C).

    ``data`` is the checksummed region with the checksum field's two bytes treated as
    zero. Returns the value to store there; a region carrying that value verifies to 0.
    """
    buf = bytes(data[:offset]) + b"\x00\x00" + bytes(data[offset + 2 :])
    c0, c1 = _fletcher_sums(buf)
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
    return _fletcher_sums(data) == (0, 0)
