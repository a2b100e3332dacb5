"""OSPFv2 packets: the common header and the five packet types (RFC 2328 §A.3).

:class:`Packet` = header fields + one body. The header checksum is the Internet checksum
of the whole packet except the 64-bit authentication field (RFC 2328 §D.4.1); it is
computed by :meth:`Packet.encode` and verified by :func:`decode` (not for cryptographic
authentication, where it is zero, §D.4.3). Authentication: :class:`Auth` keeps the AuType
and the 8-byte field; for cryptographic authentication (AuType 2) the key ID, digest
length and sequence number are read from it and the digest that follows the packet is
kept in :attr:`Packet.trailer` (so are LLS blocks, RFC 5613). :func:`md5_digest` computes
the keyed-MD5 digest of §D.4.3.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Any

from gmpls.checksum import inet_checksum
from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import Records, Repeat, Wired, layout
from gmpls.ospf.constants import HEADER_LEN, LSA_HEADER_LEN, VERSION, AuType, PacketType
from gmpls.ospf.lsa import LSA, LSAHeader, LSAKey
from gmpls.registry import Registry
from gmpls.wire import Reader, ipv4_of

BODIES: Registry[Any] = Registry("ospf.packet", attrs=("TYPE",))

_HDR = struct.Struct("!BBH4s4sHH8s")


@dataclass(frozen=True, slots=True)
class Auth:
    """AuType and the 64-bit authentication field (RFC 2328 §A.3.1, Appendix D)."""

    autype: int = AuType.NULL
    data: bytes = bytes(8)

    @classmethod
    def simple(cls, password: bytes) -> Auth:
        if len(password) > 8:
            raise EncodeError("ospf.auth.password", "longer than 8 octets")
        return cls(AuType.SIMPLE, password.ljust(8, b"\x00"))

    @classmethod
    def cryptographic(cls, key_id: int, seq: int, digest_len: int = 16) -> Auth:
        return cls(AuType.CRYPTOGRAPHIC, struct.pack("!HBBI", 0, key_id, digest_len, seq))

    @property
    def key_id(self) -> int:
        return self.data[2]

    @property
    def digest_len(self) -> int:
        return self.data[3]

    @property
    def crypto_seq(self) -> int:
        return int.from_bytes(self.data[4:8], "big")


@dataclass(frozen=True, slots=True)
class Packet:
    """An OSPFv2 packet. ``trailer`` is what follows the packet length on the wire."""

    router_id: IPv4Address
    area_id: IPv4Address
    body: Any
    auth: Auth = Auth()
    trailer: bytes = b""

    @property
    def type(self) -> int:
        return int(self.body.TYPE)

    def encode(self) -> bytes:
        """Encode with the header length and checksum filled in (RFC 2328 §D.4)."""
        payload = self.body.encode_body()
        length = HEADER_LEN + len(payload)
        if length > 0xFFFF:
            raise EncodeError("ospf.header.length", f"{length} does not fit 16 bits")
        if len(self.auth.data) != 8:
            raise EncodeError("ospf.header.auth", "authentication field must be 8 octets")
        head = _HDR.pack(
            VERSION,
            self.body.TYPE,
            length,
            self.router_id.packed,
            self.area_id.packed,
            0,
            self.auth.autype,
            bytes(8),
        )
        cks = 0
        if self.auth.autype != AuType.CRYPTOGRAPHIC:
            cks = inet_checksum(head[:16] + payload)
        head = head[:12] + struct.pack("!H", cks) + head[14:16] + self.auth.data
        return head + payload + self.trailer


def md5_digest(packet_bytes: bytes, key: bytes) -> bytes:
    """Keyed MD5 of RFC 2328 §D.4.3: MD5(packet || key padded to 16 octets)."""
    return hashlib.md5(packet_bytes + key[:16].ljust(16, b"\x00")).digest()


def sign_md5(packet: Packet, key_id: int, seq: int, key: bytes) -> bytes:
    """Encode ``packet`` with cryptographic authentication and append its MD5 digest."""
    p = replace(packet, auth=Auth.cryptographic(key_id, seq), trailer=b"")
    raw = p.encode()
    return raw + md5_digest(raw, key)


def verify_md5(data: bytes, key: bytes) -> bool:
    """Check the keyed-MD5 digest of a received packet (RFC 2328 §D.4.3)."""
    if len(data) < HEADER_LEN:
        return False
    length = int.from_bytes(data[2:4], "big")
    digest = data[length : length + 16]
    return len(digest) == 16 and md5_digest(data[:length], key) == digest


def decode(data: bytes, *, verify_checksum: bool = True) -> Packet:
    """Decode one OSPFv2 packet; raise :class:`DecodeError` naming the field if malformed.

    The error field ``ospf.header.checksum`` is a bad checksum, ``ospf.header.version`` a
    wrong version, anything else a truncated or inconsistent packet.
    """
    if len(data) < HEADER_LEN:
        _short_header(data)
    version, ptype, length, rid, area, checksum, autype, auth_data = _HDR.unpack_from(data)
    if version != VERSION:
        raise DecodeError("ospf.header.version", f"{version}, expected {VERSION}")
    if length < HEADER_LEN or length > len(data):
        raise DecodeError("ospf.header.length", f"{length} with {len(data)} bytes received")
    router_id, area_id = ipv4_of(rid), ipv4_of(area)
    if verify_checksum and autype != AuType.CRYPTOGRAPHIC:
        calc = inet_checksum(data[:12] + b"\x00\x00" + data[14:16] + data[HEADER_LEN:length])
        if calc != checksum:
            raise DecodeError("ospf.header.checksum", f"{checksum:#06x}, computed {calc:#06x}")
    cls = BODIES.get(ptype)
    if cls is None:
        raise DecodeError("ospf.header.type", f"unknown OSPF packet type {ptype}")
    body_r = Reader(data, f"ospf.{cls.__name__}", HEADER_LEN, length)
    body = cls.decode_body(body_r)
    body_r.expect_end("end")
    return Packet(router_id, area_id, body, Auth(autype, auth_data), bytes(data[length:]))


def _short_header(data: bytes) -> None:
    """Raise the error for a packet shorter than the header: a wrong version if the first
    byte says so, else the first field that is not there (the checks of :func:`decode`,
    in its order)."""
    r = Reader(data, "ospf.header")
    version = r.u8("version")
    if version != VERSION:
        raise r.fail("version", f"{version}, expected {VERSION}")
    r.u8("type")
    length = r.u16("length")
    if length < HEADER_LEN or length > len(data):
        raise r.fail("length", f"{length} with {len(data)} bytes received")
    raise AssertionError("a length of at least the header's fits no shorter packet")


@BODIES.register(PacketType.HELLO)
@layout(
    "network_mask:ipv4 hello_interval:u16 options:u8 priority:u8 dead_interval:u32 dr:ipv4"
    " bdr:ipv4",
    neighbors=Repeat("ipv4"),
)
class Hello(Wired):
    """RFC 2328 §A.3.2."""

    network_mask: IPv4Address
    hello_interval: int
    options: int
    priority: int
    dead_interval: int
    dr: IPv4Address
    bdr: IPv4Address
    neighbors: tuple[IPv4Address, ...] = ()


@BODIES.register(PacketType.DB_DESCRIPTION)
@layout("mtu:u16 options:u8 flags:u8 dd_seq:u32", headers=Records(LSAHeader))
class DatabaseDescription(Wired):
    """RFC 2328 §A.3.3: MTU, options, I/M/MS flags, DD sequence number, LSA headers."""

    mtu: int
    options: int
    flags: int
    dd_seq: int
    headers: tuple[LSAHeader, ...] = ()


@BODIES.register(PacketType.LS_REQUEST)
@layout(requests=Records(LSAKey, "ls_type:u32 ls_id:ipv4 adv_router:ipv4"))
class LSRequest(Wired):
    """RFC 2328 §A.3.4: (LS type, link state ID, advertising router) triples."""

    requests: tuple[LSAKey, ...]


@BODIES.register(PacketType.LS_UPDATE)
@dataclass(frozen=True, slots=True)
class LSUpdate:
    """RFC 2328 §A.3.5: a count and that many LSAs.

    Decoding checks the framing only (each LSA header and length); the LSA checksums are
    checked one by one by the receiver (RFC 2328 §13 step 1 drops one LSA, not the
    packet), and a malformed body is kept as :class:`~gmpls.ospf.lsa.MalformedBody`.
    """

    lsas: tuple[LSA, ...]

    def encode_body(self) -> bytes:
        return struct.pack("!I", len(self.lsas)) + b"".join(a.encode() for a in self.lsas)

    @classmethod
    def decode_body(cls, r: Reader) -> LSUpdate:
        n = r.u32("count")
        if n > r.remaining // LSA_HEADER_LEN:
            raise r.fail("count", f"{n} LSAs cannot fit in {r.remaining} bytes")
        return cls(tuple(LSA.decode_from(r, verify=False) for _ in range(n)))


@BODIES.register(PacketType.LS_ACK)
@layout(headers=Records(LSAHeader))
class LSAck(Wired):
    """RFC 2328 §A.3.6: LSA headers."""

    headers: tuple[LSAHeader, ...]


@dataclass(frozen=True, slots=True)
class Encoded:
    """A packet body already in bytes, of packet type ``TYPE``: the router builds the LS
    Updates it floods from the LSAs' own bytes (the age patched, RFC 2328 §13.3), the
    same bytes :class:`LSUpdate` would encode, without an LSA object per copy sent."""

    TYPE: int
    payload: bytes

    def encode_body(self) -> bytes:
        return self.payload


def ls_update_payload(lsas: list[bytes]) -> Encoded:
    """An LS Update body of LSAs already encoded."""
    return Encoded(PacketType.LS_UPDATE, struct.pack("!I", len(lsas)) + b"".join(lsas))
