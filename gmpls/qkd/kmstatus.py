"""KM status on UDP 5425: a node agent asks its site's key manager for the site's QKD links
(docs/qkd-network.md §KM status).

The header is ETSI 004's (:mod:`gmpls.qkd.etsi004`): version, type, reserved, request ID,
which the answer echoes. A request has no body; the reply is a 16-bit count and that many
fixed-size link records::

    0        1        2                 4                 8
    +--------+--------+-----------------+-----------------+---- body ----
    | ver=1  |  type  |  reserved = 0   |   request ID    | ...
    +--------+--------+-----------------+-----------------+----

    LinkStatus (68 bytes)
    0           4         8              16             24             32
    +-----------+---------+--------------+--------------+--------------+
    | far site  | rate    | stock bits   | buffer bits  | used bits    |
    +-----------+---------+--------------+--------------+--------------+
    32          34   35        36                                      68
    +-----------+----+---------+---------------------------------------+
    | services  | up | namelen | name (UTF-8, zero-padded to 32 bytes) |
    +-----------+----+---------+---------------------------------------+

``up`` is 1 or 0; the padding after the name must be zero. Pure: no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, ClassVar, Self

from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import layout
from gmpls.qkd.message import QkdMessage, decode_body
from gmpls.registry import Registry
from gmpls.wire import Reader

VERSION = 1
HEADER_LEN = 8
PORT = 5425
NAME_LEN = 32
LINK_LEN = 68
#: links in one reply: a KM has few, and the reply must fit one datagram
MAX_LINKS = 64


class MsgType(IntEnum):
    LINKS_REQUEST = 0x01
    LINKS_REPLY = 0x81


REGISTRY: Registry[Any] = Registry("kmstatus.message", attrs=("TYPE",))
_HEADER = struct.Struct("!BBxxI")  # version, type, reserved, request ID
_LINK = struct.Struct("!4sIQQQHBB32s")


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """One QKD link of the site: the far site's ID, the link's name (``km1-km2``), whether
    it is up, its secret-key rate, the key bits in stock now, the buffer, the key bits
    consumed over it since the KM started and the sessions (direct or relay) using it."""

    far_site: IPv4Address
    name: str
    up: bool
    rate_bps: int
    stock_bits: int
    buffer_bits: int
    used_bits: int
    services: int

    def encode(self) -> bytes:
        name = self.name.encode()
        if len(name) > NAME_LEN:
            raise EncodeError("kmstatus.link.name", f"{len(name)} bytes, at most {NAME_LEN}")
        try:
            return _LINK.pack(
                self.far_site.packed,
                self.rate_bps,
                self.stock_bits,
                self.buffer_bits,
                self.used_bits,
                self.services,
                1 if self.up else 0,
                len(name),
                name,
            )
        except struct.error as e:
            raise EncodeError("kmstatus.link", str(e)) from None

    @classmethod
    def decode(cls, r: Reader) -> Self:
        raw = r.bytes(LINK_LEN, "link")
        site, rate, stock, buf, used, services, up, n, padded = _LINK.unpack(raw)
        if up > 1:
            raise r.fail("link.up", f"{up} is not 0 or 1")
        if n > NAME_LEN or any(padded[n:]):
            raise r.fail("link.name", "length over 32 or non-zero padding")
        try:
            name = padded[:n].decode()
        except UnicodeDecodeError:
            raise r.fail("link.name", "not UTF-8") from None
        return cls(IPv4Address(site), name, bool(up), rate, stock, buf, used, services)


class _Message(QkdMessage):
    __slots__ = ()
    TYPE: ClassVar[MsgType]


@REGISTRY.register(MsgType.LINKS_REQUEST)
@layout()
class LinksRequest(_Message):
    """The site's QKD links, please."""

    request_id: int


@REGISTRY.register(MsgType.LINKS_REPLY)
@dataclass(frozen=True, slots=True)
class LinksReply(_Message):
    request_id: int
    links: tuple[LinkStatus, ...] = ()

    def encode_body(self) -> bytes:
        if len(self.links) > MAX_LINKS:
            raise EncodeError("kmstatus.links", f"{len(self.links)} links, at most {MAX_LINKS}")
        return struct.pack("!H", len(self.links)) + b"".join(x.encode() for x in self.links)

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        n = r.u16("count")
        if n > MAX_LINKS:
            raise r.fail("count", f"{n} links, at most {MAX_LINKS}")
        return cls(links=tuple(LinkStatus.decode(r) for _ in range(n)), **extra)


Message = LinksRequest | LinksReply


def encode(msg: Message) -> bytes:
    try:
        head = _HEADER.pack(VERSION, msg.TYPE, msg.request_id)
    except struct.error:
        raise EncodeError("kmstatus.request_id", f"{msg.request_id} does not fit 32 bits") from None
    return head + msg.encode_body()


def decode(data: bytes) -> Message:
    r = Reader(bytes(data), "kmstatus")
    version = r.u8("version")
    if version != VERSION:
        raise r.fail("version", f"unsupported version {version}")
    mtype = r.u8("type")
    r.u16("reserved")
    rid = r.u32("request_id")
    msg: Message = decode_body(REGISTRY, mtype, r, request_id=rid)
    return msg


__all__ = [
    "PORT",
    "DecodeError",
    "LinkStatus",
    "LinksReply",
    "LinksRequest",
    "Message",
    "decode",
    "encode",
]
