"""ETSI GS QKD 004 V1.1.1 application interface on UDP 5424 (docs/etsi004.md).

ETSI GS QKD 004 V1.1.1 (2010-12) §6 defines the API as function calls (QKD_OPEN,
QKD_CONNECT_NONBLOCK, QKD_CONNECT_BLOCKING, QKD_GET_KEY, QKD_CLOSE) and their status
values, not a wire format. This module is our wire format for those calls: every
datagram starts with an 8-byte header carrying a request ID, which the answer echoes, so
clients can retransmit and the proxy can answer repeats from its response cache::

    0        1        2                 4                 8
    +--------+--------+-----------------+-----------------+---- body ----
    | ver=1  |  type  |  reserved = 0   |   request ID    | ...
    +--------+--------+-----------------+-----------------+----

Requests have types 1..5; their answers the same type with 0x80 set, and start with the
32-bit status. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, ClassVar, Self

from gmpls.errors import DecodeError, EncodeError
from gmpls.registry import Registry
from gmpls.wire import Reader, u8, u16, u32

VERSION = 1
HEADER_LEN = 8
PORT = 5424
HANDLE_LEN = 64
ZERO_HANDLE = bytes(HANDLE_LEN)
MAX_KEY_BYTES = 1024


class Status(IntEnum):
    """Status values of ETSI GS QKD 004 (docs/etsi004.md §Status codes)."""

    SUCCESSFUL = 0
    PEER_NOT_CONNECTED = 1  # successful connection, but peer not connected
    INSUFFICIENT_KEY = 2  # GET_KEY failed because insufficient key available
    GET_KEY_PEER_NOT_CONNECTED = 3  # GET_KEY failed because peer application not connected
    NO_QKD_CONNECTION = 4  # no QKD connection available
    HANDLE_IN_USE = 5  # OPEN failed because the key_handle (KSID) is already in use
    TIMEOUT = 6  # the call failed because the specified timeout occurred
    QOS_NOT_MET = 7  # OPEN failed because the requested QoS could not be met


class MsgType(IntEnum):
    OPEN = 0x01
    CONNECT_NONBLOCK = 0x02
    CONNECT_BLOCKING = 0x03
    GET_KEY = 0x04
    CLOSE = 0x05
    OPEN_REPLY = 0x81
    CONNECT_NONBLOCK_REPLY = 0x82
    CONNECT_BLOCKING_REPLY = 0x83
    GET_KEY_REPLY = 0x84
    CLOSE_REPLY = 0x85


REGISTRY: Registry[Any] = Registry("etsi004.message")


def _handle(r: Reader) -> bytes:
    return r.bytes(HANDLE_LEN, "key_handle")


def _check_handle(h: bytes, field: str) -> bytes:
    if len(h) != HANDLE_LEN:
        raise EncodeError(field, f"key_handle is {len(h)} bytes, not {HANDLE_LEN}")
    return h


def _status(r: Reader) -> Status:
    v = r.u32("status")
    try:
        return Status(v)
    except ValueError:
        raise r.fail("status", f"unknown status {v}") from None


@dataclass(frozen=True, slots=True)
class QoS:
    """QKD_OPEN's QoS structure (V1.1.1 §6.1): key chunk length in bytes, max bit rate,
    priority and timeout (ms)."""

    requested_length: int = 32
    max_bps: int = 0
    priority: int = 0
    timeout_ms: int = 0

    def encode(self) -> bytes:
        return (
            u32(self.requested_length)
            + u32(self.max_bps)
            + u32(self.priority)
            + u32(self.timeout_ms)
        )

    @classmethod
    def decode(cls, r: Reader) -> QoS:
        return cls(
            r.u32("qos.requested_length"),
            r.u32("qos.max_bps"),
            r.u32("qos.priority"),
            r.u32("qos.timeout"),
        )


@REGISTRY.register(MsgType.OPEN)
@dataclass(frozen=True, slots=True)
class Open:
    """QKD_OPEN(destination, QoS, key_handle): all-zero handle = allocate one."""

    TYPE: ClassVar[MsgType] = MsgType.OPEN
    request_id: int
    destination: IPv4Address
    qos: QoS
    key_handle: bytes = ZERO_HANDLE

    def encode_body(self) -> bytes:
        return (
            self.destination.packed
            + self.qos.encode()
            + _check_handle(self.key_handle, "etsi004.OPEN.key_handle")
        )

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> Open:
        dest = r.ipv4("destination")
        qos = QoS.decode(r)
        h = _handle(r)
        r.expect_end("end")
        return cls(rid, dest, qos, h)


@dataclass(frozen=True, slots=True)
class _HandleRequest:
    """A request whose body is the key_handle alone."""

    TYPE: ClassVar[MsgType]
    request_id: int
    key_handle: bytes

    def encode_body(self) -> bytes:
        if len(self.key_handle) == HANDLE_LEN:  # hot path (GET_KEY): no field name to build
            return self.key_handle
        return _check_handle(self.key_handle, f"etsi004.{self.TYPE.name}.key_handle")

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> Self:
        h = _handle(r)
        r.expect_end("end")
        return cls(rid, h)


@REGISTRY.register(MsgType.CONNECT_NONBLOCK)
@dataclass(frozen=True, slots=True)
class ConnectNonblock(_HandleRequest):
    """QKD_CONNECT_NONBLOCK(key_handle): is the peer application there yet?"""

    TYPE: ClassVar[MsgType] = MsgType.CONNECT_NONBLOCK


@REGISTRY.register(MsgType.CONNECT_BLOCKING)
@dataclass(frozen=True, slots=True)
class ConnectBlocking:
    """QKD_CONNECT_BLOCKING(key_handle, timeout): wait (ms) until the peer is there."""

    TYPE: ClassVar[MsgType] = MsgType.CONNECT_BLOCKING
    request_id: int
    key_handle: bytes
    timeout_ms: int

    def encode_body(self) -> bytes:
        return _check_handle(self.key_handle, "etsi004.CONNECT_BLOCKING.key_handle") + u32(
            self.timeout_ms
        )

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> ConnectBlocking:
        h = _handle(r)
        t = r.u32("timeout")
        r.expect_end("end")
        return cls(rid, h, t)


@REGISTRY.register(MsgType.GET_KEY)
@dataclass(frozen=True, slots=True)
class GetKey(_HandleRequest):
    """QKD_GET_KEY(key_handle): the next key of the session."""

    TYPE: ClassVar[MsgType] = MsgType.GET_KEY


@REGISTRY.register(MsgType.CLOSE)
@dataclass(frozen=True, slots=True)
class Close(_HandleRequest):
    """QKD_CLOSE(key_handle)."""

    TYPE: ClassVar[MsgType] = MsgType.CLOSE


@REGISTRY.register(MsgType.OPEN_REPLY)
@dataclass(frozen=True, slots=True)
class OpenReply:
    TYPE: ClassVar[MsgType] = MsgType.OPEN_REPLY
    request_id: int
    status: Status
    key_handle: bytes = ZERO_HANDLE
    qos: QoS = QoS()

    def encode_body(self) -> bytes:
        return (
            u32(self.status)
            + _check_handle(self.key_handle, "etsi004.OPEN_REPLY.key_handle")
            + self.qos.encode()
        )

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> OpenReply:
        s = _status(r)
        h = _handle(r)
        q = QoS.decode(r)
        r.expect_end("end")
        return cls(rid, s, h, q)


@dataclass(frozen=True, slots=True)
class _StatusHandleReply:
    request_id: int
    status: Status
    key_handle: bytes

    def encode_body(self) -> bytes:
        return u32(self.status) + _check_handle(self.key_handle, "etsi004.reply.key_handle")

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> Self:
        s = _status(r)
        h = _handle(r)
        r.expect_end("end")
        return cls(rid, s, h)


@REGISTRY.register(MsgType.CONNECT_NONBLOCK_REPLY)
@dataclass(frozen=True, slots=True)
class ConnectNonblockReply(_StatusHandleReply):
    TYPE: ClassVar[MsgType] = MsgType.CONNECT_NONBLOCK_REPLY


@REGISTRY.register(MsgType.CONNECT_BLOCKING_REPLY)
@dataclass(frozen=True, slots=True)
class ConnectBlockingReply(_StatusHandleReply):
    TYPE: ClassVar[MsgType] = MsgType.CONNECT_BLOCKING_REPLY


@REGISTRY.register(MsgType.CLOSE_REPLY)
@dataclass(frozen=True, slots=True)
class CloseReply(_StatusHandleReply):
    TYPE: ClassVar[MsgType] = MsgType.CLOSE_REPLY


@REGISTRY.register(MsgType.GET_KEY_REPLY)
@dataclass(frozen=True, slots=True)
class GetKeyReply:
    """Status, the key's index in the session (0, 1, ...) and the key (empty on error)."""

    TYPE: ClassVar[MsgType] = MsgType.GET_KEY_REPLY
    request_id: int
    status: Status
    index: int = 0
    key: bytes = b""

    def __repr__(self) -> str:  # never print key bytes
        return (
            f"GetKeyReply(request_id={self.request_id}, status={self.status!r}, "
            f"index={self.index}, key=<{len(self.key)} bytes>)"
        )

    def encode_body(self) -> bytes:
        if len(self.key) > MAX_KEY_BYTES:
            raise EncodeError("etsi004.GET_KEY_REPLY.key", f"{len(self.key)} bytes")
        return u32(self.status) + u32(self.index) + u16(len(self.key)) + self.key

    @classmethod
    def decode_body(cls, rid: int, r: Reader) -> GetKeyReply:
        s = _status(r)
        idx = r.u32("index")
        n = r.u16("key_length")
        if n > MAX_KEY_BYTES:
            raise r.fail("key_length", f"{n} > {MAX_KEY_BYTES}")
        key = r.bytes(n, "key")
        r.expect_end("end")
        return cls(rid, s, idx, key)


Request = Open | ConnectNonblock | ConnectBlocking | GetKey | Close
Reply = OpenReply | ConnectNonblockReply | ConnectBlockingReply | GetKeyReply | CloseReply
Message = Request | Reply


def encode(msg: Message) -> bytes:
    if not 0 <= msg.request_id <= 0xFFFFFFFF:
        raise EncodeError("etsi004.request_id", f"{msg.request_id} does not fit 32 bits")
    return u8(VERSION) + u8(msg.TYPE) + u16(0) + u32(msg.request_id) + msg.encode_body()


def peek_header(data: bytes) -> tuple[int, int] | None:
    """(type, request ID) of a datagram with a readable header, else None."""
    if len(data) < HEADER_LEN or data[0] != VERSION:
        return None
    return data[1], int.from_bytes(data[4:8], "big")


_GET_KEY_LEN = HEADER_LEN + HANDLE_LEN
_GET_KEY_PREFIX = bytes([VERSION, MsgType.GET_KEY, 0, 0])


def decode(data: bytes) -> Message:
    # fast path for the hot request: a well-formed GET_KEY is exactly header + handle
    if len(data) == _GET_KEY_LEN and data[:4] == _GET_KEY_PREFIX:
        return GetKey(int.from_bytes(data[4:8], "big"), bytes(data[8:]))
    r = Reader(bytes(data), "etsi004")
    version = r.u8("version")
    if version != VERSION:
        raise r.fail("version", f"unsupported version {version}")
    mtype = r.u8("type")
    r.u16("reserved")
    rid = r.u32("request_id")
    cls = REGISTRY.get(mtype)
    if cls is None:
        raise r.fail("type", f"unknown message type {mtype:#04x}")
    msg: Message = cls.decode_body(rid, r.sub(r.remaining, MsgType(mtype).name))
    return msg


def reply_type(request_type: int) -> int:
    return request_type | 0x80


__all__ = [
    "HANDLE_LEN",
    "PORT",
    "ZERO_HANDLE",
    "Close",
    "CloseReply",
    "ConnectBlocking",
    "ConnectBlockingReply",
    "ConnectNonblock",
    "ConnectNonblockReply",
    "DecodeError",
    "GetKey",
    "GetKeyReply",
    "Message",
    "Open",
    "OpenReply",
    "QoS",
    "Reply",
    "Request",
    "Status",
    "decode",
    "encode",
]
