"""IDQ3P emulator wire protocol on UDP 5323 (docs/idq3p.md).

ID Quantique's IDQ3P is proprietary; the paper (Aguado et al. 2017, §IV) emulates the
Clavis2 3100 key interface with its own UDP messages. This module is our equivalent: a
small request/response protocol with a request ID in every message, so a client can
retransmit and the emulator answer a repeat from its response cache.

Every datagram: an 8-byte header, then the body of its type::

    0      2        3      4               8
    +------+--------+------+---------------+----- body ----
    | "IQ" | ver=1  | type |  request ID   | ...
    +------+--------+------+---------------+-----

Requests: GET_NEXT_KEY (1), GET_KEY_BY_ID (2), STATUS (3). Answers: KEYS (0x81, to 1 and
2), STATUS_REPLY (0x83), ERROR (0xFF, to a request that could not be decoded). Pure:
no I/O; decode raises :class:`~gmpls.errors.DecodeError` naming the field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self

from gmpls.errors import EncodeError
from gmpls.layout import Counted, Tail, layout
from gmpls.qkd.message import QkdMessage, decode_body
from gmpls.registry import Registry
from gmpls.wire import Reader

MAGIC = b"IQ"
VERSION = 1
HEADER_LEN = 8
PORT = 5323
#: largest key one request may ask for, in bytes (an ETSI 004 key is at most this long here)
MAX_KEY_BYTES = 1024
#: most keys one request may carry: keeps an answer under a 64 KiB datagram
MAX_KEYS = 1024
MAX_DATAGRAM = 65000
#: the key lengths a request may ask for, and how many keys
KEY_BYTES = range(1, MAX_KEY_BYTES + 1)
KEY_COUNT = range(1, MAX_KEYS + 1)


class Status(IntEnum):
    """Result of an IDQ3P request (docs/idq3p.md §Status)."""

    OK = 0
    INSUFFICIENT_KEY = 1
    UNKNOWN_KEY_ID = 2
    BAD_REQUEST = 3


class MsgType(IntEnum):
    GET_NEXT_KEY = 0x01
    GET_KEY_BY_ID = 0x02
    STATUS = 0x03
    KEYS = 0x81
    STATUS_REPLY = 0x83
    ERROR = 0xFF


REGISTRY: Registry[Any] = Registry("idq3p.message", attrs=("TYPE",))
_HEADER = struct.Struct("!2sBBI")  # magic, version, type, request ID


class Message(QkdMessage):
    """Every message: the request ID (from the header), then its body."""

    __slots__ = ()
    TYPE: ClassVar[MsgType]


@REGISTRY.register(MsgType.GET_NEXT_KEY)
@layout("key_bytes:u16 count:u16", key_bytes=KEY_BYTES, count=KEY_COUNT)
class GetNextKey(Message):
    """Deliver up to ``count`` fresh keys of ``key_bytes`` bytes each (at least one, or
    INSUFFICIENT_KEY); each is deleted from the emulator once delivered."""

    request_id: int
    key_bytes: int
    count: int = 1


@REGISTRY.register(MsgType.GET_KEY_BY_ID)
@layout(
    "key_bytes:u16",
    key_bytes=KEY_BYTES,
    key_ids=Counted("u64", KEY_COUNT, names=("count", "key_id")),
)
class GetKeyById(Message):
    """Deliver the keys with these IDs (the pair device handed them out by GET_NEXT_KEY)."""

    request_id: int
    key_bytes: int
    key_ids: tuple[int, ...]


@REGISTRY.register(MsgType.STATUS)
@layout("key_bytes:u16", key_bytes=KEY_BYTES)
class StatusRequest(Message):
    """Ask how much key is available (counted in keys of ``key_bytes``)."""

    request_id: int
    key_bytes: int = 32


@dataclass(frozen=True, slots=True)
class Key:
    key_id: int
    material: bytes

    def __repr__(self) -> str:  # never print key bytes
        return f"Key(key_id={self.key_id:#x}, {len(self.material)} bytes)"


_KEY_ID = struct.Struct("!Q")
_COUNT = struct.Struct("!H")


def _keys_encode(keys: tuple[Key, ...]) -> bytes:
    if len(keys) > MAX_KEYS:
        raise OverflowError(f"{len(keys)} > {MAX_KEYS}")
    return _COUNT.pack(len(keys)) + b"".join(_KEY_ID.pack(k.key_id) + k.material for k in keys)


def _keys_decode(r: Reader, name: str) -> tuple[Key, ...]:
    """The count, then the keys: all of one length, which :class:`Keys` checks against
    its ``key_bytes``."""
    count = r.u16("count")
    if count > MAX_KEYS:
        raise r.fail("count", f"{count} > {MAX_KEYS}")
    if not count:
        return ()
    size, odd = divmod(r.remaining, count)
    if odd or size <= _KEY_ID.size:
        raise r.fail(name, f"{r.remaining} bytes is not {count} keys")
    data, p = r.data, r.pos
    r.pos = r.end
    return tuple(
        Key(_KEY_ID.unpack_from(data, i)[0], data[i + 8 : i + size])
        for i in range(p, p + count * size, size)
    )


@REGISTRY.register(MsgType.KEYS)
@layout(
    "status:u8 reserved:x1 key_bytes:u16",
    status=Status,
    key_bytes=KEY_BYTES,
    keys=Tail(_keys_encode, _keys_decode),
)
class Keys(Message):
    """Answer to GET_NEXT_KEY / GET_KEY_BY_ID: the keys delivered (all ``key_bytes`` long)."""

    request_id: int
    status: Status
    key_bytes: int
    keys: tuple[Key, ...] = ()

    def encode_body(self) -> bytes:
        for k in self.keys:
            if len(k.material) != self.key_bytes:
                raise EncodeError("idq3p.KEYS.key", f"{len(k.material)} != {self.key_bytes}")
        return self.WIRE.encode(self)

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        keys: Self = cls.WIRE.decode(cls, r, **extra)
        if keys.keys and len(keys.keys[0].material) != keys.key_bytes:
            raise r.fail(
                "keys", f"keys of {len(keys.keys[0].material)} bytes, not {keys.key_bytes}"
            )
        return keys


@REGISTRY.register(MsgType.STATUS_REPLY)
@layout(
    "status:u8 reserved:x1 key_bytes:u16 keys_available:u32 bits_available:u64 rate_bps:u64"
    " buffer_bits:u64 delivered_keys:u64",
    status=Status,
)
class StatusReply(Message):
    """Key available to GET_NEXT_KEY now (in keys of ``key_bytes``: a u32 on the wire, the
    sender saturates it), the rate it grows at and its ceiling."""

    request_id: int
    status: Status
    key_bytes: int
    keys_available: int
    bits_available: int
    rate_bps: int
    buffer_bits: int
    delivered_keys: int


@REGISTRY.register(MsgType.ERROR)
@layout("status:u8", status=Status)
class Error(Message):
    """Answer to a request the emulator could not decode (its header was readable)."""

    request_id: int
    status: Status = Status.BAD_REQUEST


AnyMessage = GetNextKey | GetKeyById | StatusRequest | Keys | StatusReply | Error


def encode(msg: AnyMessage) -> bytes:
    """Header plus body; raises :class:`EncodeError` for values that do not fit."""
    try:
        head = _HEADER.pack(MAGIC, VERSION, msg.TYPE, msg.request_id)
    except struct.error:
        raise EncodeError("idq3p.request_id", f"{msg.request_id} does not fit 32 bits") from None
    data = head + msg.encode_body()
    if len(data) > MAX_DATAGRAM:
        raise EncodeError("idq3p.length", f"{len(data)} bytes exceed one datagram")
    return data


def peek_header(data: bytes) -> tuple[int, int] | None:
    """(type, request ID) if the header is well formed, else None (used to answer ERROR)."""
    if len(data) < HEADER_LEN or data[:2] != MAGIC or data[2] != VERSION:
        return None
    return data[3], int.from_bytes(data[4:8], "big")


def decode(data: bytes) -> AnyMessage:
    """One datagram to one message; :class:`DecodeError` names what was wrong."""
    r = Reader(bytes(data), "idq3p")
    magic = r.bytes(2, "magic")
    if magic != MAGIC:
        raise r.fail("magic", f"{magic!r} is not {MAGIC!r}")
    version = r.u8("version")
    if version != VERSION:
        raise r.fail("version", f"unsupported version {version}")
    mtype = r.u8("type")
    rid = r.u32("request_id")
    msg: AnyMessage = decode_body(REGISTRY, mtype, r, request_id=rid)
    return msg
