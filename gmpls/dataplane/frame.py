"""The QE data-plane frame on a channel (docs/dataplane.md#the-frame): Ethernet II with
EtherType 0x88B5 (IEEE 802 local experimental 1), the QE header, then the AEAD
ciphertext of the whole original Ethernet frame and its 16-byte tag. The header is the
AEAD's additional data, so every bit of it is authenticated.

The header (18 bytes, network byte order)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version|D|A|0 0|   Algorithm   |        Key index ...          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |    ... key index (u32)        |  Receive index (u32) ...      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  ... receive index            |  Packet number (u64) ...      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                   ... packet number ...                       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  ... packet number            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

* Version: 1. D: the direction (0: head to tail, 1: tail to head). A: an announcement
  (an empty, authenticated frame that only tells the peer the receive index), the three
  other flag bits zero.
* Algorithm: the QE algorithm code point (10 AES-256-GCM, 11 AES-128-GCM, 12
  ChaCha20-Poly1305).
* Key index: the QKD key index *k* (the association) the frame is sealed under.
* Receive index: the newest key index the sender holds, so can receive: the peer moves
  its own sending to that index (the rekey rule of :mod:`gmpls.dataplane.core`).
* Packet number: 1, 2, ... per key index and direction, never repeated; the nonce is the
  direction (4 bytes) and the packet number (8 bytes).

:func:`decode_header` raises :class:`~gmpls.errors.DecodeError` only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gmpls.errors import DecodeError, EncodeError

ETHERTYPE = 0x88B5
VERSION = 1
ETH_LEN = 14
HEADER_LEN = 18
TAG_LEN = 16
#: Ethernet + QE header + tag: what a frame grows by on a channel
OVERHEAD = ETH_LEN + HEADER_LEN + TAG_LEN
FLAG_DIRECTION = 0x08
FLAG_ANNOUNCE = 0x04
FLAG_RESERVED = 0x03
#: the two directions of a service (the D bit)
HEAD_TO_TAIL, TAIL_TO_HEAD = 0, 1
MAX_PN = (1 << 64) - 1
MAX_INDEX = (1 << 32) - 1
#: the AEAD algorithms of the QE registry a data plane runs (docs/design.md registries)
ALGORITHMS = {10: "AES-256-GCM", 11: "AES-128-GCM", 12: "ChaCha20-Poly1305"}

_HEADER = struct.Struct("!BBIIQ")
_ETH = struct.Struct("!6s6sH")
_NONCE_DIR = (b"\x00\x00\x00\x00", b"\x00\x00\x00\x01")


@dataclass(frozen=True, slots=True)
class Header:
    """The QE data-plane header (see the module docstring)."""

    direction: int
    algorithm: int
    key_index: int
    rx_index: int
    pn: int
    announce: bool = False
    version: int = VERSION

    def encode(self) -> bytes:
        if self.direction not in (0, 1):
            raise EncodeError("dataplane.direction", f"{self.direction} is not 0 or 1")
        if not 0 <= self.version <= 15:
            raise EncodeError("dataplane.version", f"{self.version} out of range 0..15")
        if not 0 <= self.algorithm <= 255:
            raise EncodeError("dataplane.algorithm", f"{self.algorithm} out of range")
        for name, v in (("key_index", self.key_index), ("rx_index", self.rx_index)):
            if not 0 <= v <= MAX_INDEX:
                raise EncodeError(f"dataplane.{name}", f"{v} out of range 0..2^32-1")
        if not 1 <= self.pn <= MAX_PN:
            raise EncodeError("dataplane.pn", f"{self.pn} out of range 1..2^64-1")
        flags = (FLAG_DIRECTION if self.direction else 0) | (FLAG_ANNOUNCE if self.announce else 0)
        first = self.version << 4 | flags
        return _HEADER.pack(first, self.algorithm, self.key_index, self.rx_index, self.pn)


def decode_header(data: bytes | memoryview, offset: int = 0) -> Header:
    """The header at ``offset`` of ``data`` (a channel frame's payload starts at 14)."""
    if len(data) - offset < HEADER_LEN + TAG_LEN:
        raise DecodeError(
            "dataplane.length",
            f"{len(data) - offset} bytes, the header and tag need {HEADER_LEN + TAG_LEN}",
        )
    first, alg, index, rx, pn = _HEADER.unpack_from(data, offset)
    version = first >> 4
    if version != VERSION:
        raise DecodeError("dataplane.version", f"version {version}, expected {VERSION}")
    if first & FLAG_RESERVED:
        raise DecodeError("dataplane.flags", f"reserved flag bits set ({first & 0x0F:#x})")
    if pn == 0:
        raise DecodeError("dataplane.pn", "packet number 0 is never sent")
    return Header(
        1 if first & FLAG_DIRECTION else 0,
        alg,
        index,
        rx,
        pn,
        bool(first & FLAG_ANNOUNCE),
        version,
    )


def nonce(direction: int, pn: int) -> bytes:
    """The 96-bit AEAD nonce: the direction (32 bits) and the packet number (64 bits).
    Both directions of a service share its key, so the direction keeps their nonces
    apart; the packet number never repeats under one key index in one direction."""
    return _NONCE_DIR[direction] + pn.to_bytes(8, "big")


def eth_header(dst: bytes, src: bytes) -> bytes:
    """The Ethernet II header of a channel frame (EtherType 0x88B5)."""
    if len(dst) != 6 or len(src) != 6:
        raise EncodeError("dataplane.mac", "a MAC address is 6 bytes")
    return _ETH.pack(dst, src, ETHERTYPE)


def split_eth(frame: bytes) -> tuple[bytes, int]:
    """The source MAC and EtherType of an Ethernet frame (DecodeError: too short)."""
    if len(frame) < ETH_LEN:
        raise DecodeError("dataplane.ethernet", f"{len(frame)} bytes, an Ethernet header is 14")
    _dst, src, etype = _ETH.unpack_from(frame)
    return src, etype
