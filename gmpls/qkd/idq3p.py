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

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Protocol

from gmpls.errors import EncodeError
from gmpls.registry import Registry
from gmpls.wire import Reader, u8, u16, u32, u64

MAGIC = b"IQ"
VERSION = 1
HEADER_LEN = 8
PORT = 5323
#: largest key one request may ask for, in bytes (an ETSI 004 key is at most this long here)
MAX_KEY_BYTES = 1024
#: most keys one request may carry: keeps an answer under a 64 KiB datagram
MAX_KEYS = 1024
MAX_DATAGRAM = 65000


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


class Message(Protocol):
    TYPE: ClassVar[MsgType]
    request_id: int

    def encode_body(self) -> bytes: ...


REGISTRY: Registry[Any] = Registry("idq3p.message")


def _check_key_bytes(n: int, field: str) -> None:
    if not 1 <= n <= MAX_KEY_BYTES:
        raise EncodeError(field, f"{n} is not in 1..{MAX_KEY_BYTES}")


def _read_key_bytes(r: Reader) -> int:
    n = r.u16("key_bytes")
    if not 1 <= n <= MAX_KEY_BYTES:
        raise r.fail("key_bytes", f"{n} is not in 1..{MAX_KEY_BYTES}")
    return n


def _read_count(r: Reader) -> int:
    """A request's count of keys: 1..MAX_KEYS."""
    count = r.u16("count")
    if not 1 <= count <= MAX_KEYS:
        raise r.fail("count", f"{count} is not in 1..{MAX_KEYS}")
    return count


@REGISTRY.register(MsgType.GET_NEXT_KEY)
@dataclass(frozen=True, slots=True)
class GetNextKey:
    """Deliver up to ``count`` fresh keys of ``key_bytes`` bytes each (at least one, or
    INSUFFICIENT_KEY); each is deleted from the emulator once delivered."""

    TYPE: ClassVar[MsgType] = MsgType.GET_NEXT_KEY
    request_id: int
    key_bytes: int
    count: int = 1

    def encode_body(self) -> bytes:
        _check_key_bytes(self.key_bytes, "idq3p.GET_NEXT_KEY.key_bytes")
        if not 1 <= self.count <= MAX_KEYS:
            raise EncodeError("idq3p.GET_NEXT_KEY.count", f"{self.count} not in 1..{MAX_KEYS}")
        return u16(self.key_bytes) + u16(self.count)

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> GetNextKey:
        n = _read_key_bytes(r)
        count = _read_count(r)
        r.expect_end("end")
        return cls(rid, n, count)


@REGISTRY.register(MsgType.GET_KEY_BY_ID)
@dataclass(frozen=True, slots=True)
class GetKeyById:
    """Deliver the keys with these IDs (the pair device handed them out by GET_NEXT_KEY)."""

    TYPE: ClassVar[MsgType] = MsgType.GET_KEY_BY_ID
    request_id: int
    key_bytes: int
    key_ids: tuple[int, ...]

    def encode_body(self) -> bytes:
        _check_key_bytes(self.key_bytes, "idq3p.GET_KEY_BY_ID.key_bytes")
        if not 1 <= len(self.key_ids) <= MAX_KEYS:
            raise EncodeError("idq3p.GET_KEY_BY_ID.count", f"{len(self.key_ids)} IDs")
        return u16(self.key_bytes) + u16(len(self.key_ids)) + b"".join(u64(k) for k in self.key_ids)

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> GetKeyById:
        n = _read_key_bytes(r)
        count = _read_count(r)
        ids = tuple(r.u64(f"key_id[{i}]") for i in range(count))
        r.expect_end("end")
        return cls(rid, n, ids)


@REGISTRY.register(MsgType.STATUS)
@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Ask how much key is available (counted in keys of ``key_bytes``)."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS
    request_id: int
    key_bytes: int = 32

    def encode_body(self) -> bytes:
        _check_key_bytes(self.key_bytes, "idq3p.STATUS.key_bytes")
        return u16(self.key_bytes)

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> StatusRequest:
        n = _read_key_bytes(r)
        r.expect_end("end")
        return cls(rid, n)


@dataclass(frozen=True, slots=True)
class Key:
    key_id: int
    material: bytes

    def __repr__(self) -> str:  # never print key bytes
        return f"Key(key_id={self.key_id:#x}, {len(self.material)} bytes)"


@REGISTRY.register(MsgType.KEYS)
@dataclass(frozen=True, slots=True)
class Keys:
    """Answer to GET_NEXT_KEY / GET_KEY_BY_ID: the keys delivered (all ``key_bytes`` long)."""

    TYPE: ClassVar[MsgType] = MsgType.KEYS
    request_id: int
    status: Status
    key_bytes: int
    keys: tuple[Key, ...] = ()

    def encode_body(self) -> bytes:
        _check_key_bytes(self.key_bytes, "idq3p.KEYS.key_bytes")
        if len(self.keys) > MAX_KEYS:
            raise EncodeError("idq3p.KEYS.count", f"{len(self.keys)} > {MAX_KEYS}")
        out = [u8(self.status), u8(0), u16(self.key_bytes), u16(len(self.keys))]
        for k in self.keys:
            if len(k.material) != self.key_bytes:
                raise EncodeError("idq3p.KEYS.key", f"{len(k.material)} != {self.key_bytes}")
            out.append(u64(k.key_id) + k.material)
        return b"".join(out)

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> Keys:
        status = _status(r)
        r.u8("reserved")
        n = _read_key_bytes(r)
        count = r.u16("count")
        if count > MAX_KEYS:
            raise r.fail("count", f"{count} > {MAX_KEYS}")
        keys = tuple(
            Key(r.u64(f"key[{i}].id"), r.bytes(n, f"key[{i}].material")) for i in range(count)
        )
        r.expect_end("end")
        return cls(rid, status, n, keys)


@REGISTRY.register(MsgType.STATUS_REPLY)
@dataclass(frozen=True, slots=True)
class StatusReply:
    """Key available to GET_NEXT_KEY now, the rate it grows at and its ceiling."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS_REPLY
    request_id: int
    status: Status
    key_bytes: int
    keys_available: int
    bits_available: int
    rate_bps: int
    buffer_bits: int
    delivered_keys: int

    def encode_body(self) -> bytes:
        return (
            u8(self.status)
            + u8(0)
            + u16(self.key_bytes)
            + u32(min(self.keys_available, 0xFFFFFFFF))
            + u64(self.bits_available)
            + u64(self.rate_bps)
            + u64(self.buffer_bits)
            + u64(self.delivered_keys)
        )

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> StatusReply:
        status = _status(r)
        r.u8("reserved")
        n = r.u16("key_bytes")
        out = cls(
            rid,
            status,
            n,
            r.u32("keys_available"),
            r.u64("bits_available"),
            r.u64("rate_bps"),
            r.u64("buffer_bits"),
            r.u64("delivered_keys"),
        )
        r.expect_end("end")
        return out


@REGISTRY.register(MsgType.ERROR)
@dataclass(frozen=True, slots=True)
class Error:
    """Answer to a request the emulator could not decode (its header was readable)."""

    TYPE: ClassVar[MsgType] = MsgType.ERROR
    request_id: int
    status: Status = Status.BAD_REQUEST

    def encode_body(self) -> bytes:
        return u8(self.status)

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> Error:
        status = _status(r)
        r.expect_end("end")
        return cls(rid, status)


AnyMessage = GetNextKey | GetKeyById | StatusRequest | Keys | StatusReply | Error


def _status(r: Reader) -> Status:
    v = r.u8("status")
    try:
        return Status(v)
    except ValueError:
        raise r.fail("status", f"unknown status {v}") from None


def encode(msg: AnyMessage) -> bytes:
    """Header plus body; raises :class:`EncodeError` for values that do not fit."""
    if not 0 <= msg.request_id <= 0xFFFFFFFF:
        raise EncodeError("idq3p.request_id", f"{msg.request_id} does not fit 32 bits")
    data = MAGIC + u8(VERSION) + u8(msg.TYPE) + u32(msg.request_id) + msg.encode_body()
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
    cls = REGISTRY.get(mtype)
    if cls is None:
        raise r.fail("type", f"unknown message type {mtype:#04x}")
    body = r.sub(r.remaining, MsgType(mtype).name)
    msg: AnyMessage = cls.decode_body(rid, body)
    return msg
