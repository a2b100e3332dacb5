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

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, ClassVar

from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import Counted, Tail, layout
from gmpls.qkd.message import QkdMessage, decode_body
from gmpls.registry import Registry
from gmpls.wire import Reader

VERSION = 1
HEADER_LEN = 8
PORT = 5424
HANDLE_LEN = 64
ZERO_HANDLE = bytes(HANDLE_LEN)
MAX_KEY_BYTES = 1024
#: site IDs in an OPEN's relay path, head and tail included
MAX_RELAY_SITES = 16


class Status(IntEnum):
    """Status values of ETSI GS QKD 004 V1.1.1 (docs/etsi004.md §Status codes): 0-6 only.
    V2.1.1's 7 (QoS not satisfiable) and 8 (metadata) are not V1 values: never sent, and
    a reply carrying them does not decode."""

    SUCCESSFUL = 0
    PEER_NOT_CONNECTED = 1  # successful connection, but peer not connected
    INSUFFICIENT_KEY = 2  # GET_KEY failed because insufficient key available
    GET_KEY_PEER_NOT_CONNECTED = 3  # GET_KEY failed because peer application not connected
    NO_QKD_CONNECTION = 4  # no QKD connection available
    HANDLE_IN_USE = 5  # OPEN_CONNECT failed because the key_handle (KSID) is already in use
    TIMEOUT = 6  # the call failed because the specified timeout occurred


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


REGISTRY: Registry[Any] = Registry("etsi004.message", attrs=("TYPE",))
_HEADER = struct.Struct("!BBxxI")  # version, type, reserved, request ID


@dataclass(frozen=True, slots=True)
class QoS:
    """QKD_OPEN's QoS structure (V1.1.1 §6.1): key chunk length in bytes, max bit rate,
    priority and timeout (ms); on the wire four 32-bit numbers in this order."""

    requested_length: int = 32
    max_bps: int = 0
    priority: int = 0
    timeout_ms: int = 0


class _Message(QkdMessage):
    """Every message: the request ID (from the header), then its body."""

    __slots__ = ()
    TYPE: ClassVar[MsgType]


def _relay_out(path: tuple[IPv4Address, ...]) -> bytes:
    if not path:
        return b""  # no relay part: the OPEN of V1 as it always was
    if not 2 <= len(path) <= MAX_RELAY_SITES:
        raise OverflowError(f"{len(path)} sites, needs 2..{MAX_RELAY_SITES}")
    return bytes([len(path)]) + b"".join(a.packed for a in path)


def _relay_in(r: Reader, name: str) -> tuple[IPv4Address, ...]:
    if r.at_end():
        return ()
    n = r.u8("relay_count")
    if not 2 <= n <= MAX_RELAY_SITES:
        raise r.fail("relay_count", f"{n} is not in 2..{MAX_RELAY_SITES}")
    return tuple(r.ipv4(f"relay[{i}]") for i in range(n))


#: the optional relay path after an OPEN's key_handle: nothing when empty, else a count
#: (2..16) and the site IDs, head site first (docs/etsi004.md §Relay path)
RELAY_PATH = Tail(_relay_out, _relay_in)


@REGISTRY.register(MsgType.OPEN)
@layout("destination:ipv4 qos:u32*4 key_handle:b64", qos=QoS, relay=RELAY_PATH)
class Open(_Message):
    """QKD_OPEN(destination, QoS, key_handle): all-zero handle = allocate one. ``relay``
    (our extension) is the key relay path as site IDs, head site first, tail site last;
    empty = the key manager decides."""

    request_id: int
    destination: IPv4Address
    qos: QoS
    key_handle: bytes = ZERO_HANDLE
    relay: tuple[IPv4Address, ...] = ()


@layout("key_handle:b64")
class _HandleRequest(_Message):
    """A request whose body is the key_handle alone."""

    request_id: int
    key_handle: bytes


@REGISTRY.register(MsgType.CONNECT_NONBLOCK)
class ConnectNonblock(_HandleRequest):
    """QKD_CONNECT_NONBLOCK(key_handle): is the peer application there yet?"""

    __slots__ = ()


@REGISTRY.register(MsgType.CONNECT_BLOCKING)
@layout("key_handle:b64 timeout_ms:u32")
class ConnectBlocking(_Message):
    """QKD_CONNECT_BLOCKING(key_handle, timeout): wait (ms) until the peer is there."""

    request_id: int
    key_handle: bytes
    timeout_ms: int


@REGISTRY.register(MsgType.GET_KEY)
class GetKey(_HandleRequest):
    """QKD_GET_KEY(key_handle): the next key of the session."""

    __slots__ = ()


@REGISTRY.register(MsgType.CLOSE)
class Close(_HandleRequest):
    """QKD_CLOSE(key_handle)."""

    __slots__ = ()


@REGISTRY.register(MsgType.OPEN_REPLY)
@layout("status:u32 key_handle:b64 qos:u32*4", status=Status, qos=QoS)
class OpenReply(_Message):
    request_id: int
    status: Status
    key_handle: bytes = ZERO_HANDLE
    qos: QoS = QoS()


@layout("status:u32 key_handle:b64", status=Status)
class _StatusHandleReply(_Message):
    request_id: int
    status: Status
    key_handle: bytes


@REGISTRY.register(MsgType.CONNECT_NONBLOCK_REPLY)
class ConnectNonblockReply(_StatusHandleReply):
    __slots__ = ()


@REGISTRY.register(MsgType.CONNECT_BLOCKING_REPLY)
class ConnectBlockingReply(_StatusHandleReply):
    __slots__ = ()


@REGISTRY.register(MsgType.CLOSE_REPLY)
class CloseReply(_StatusHandleReply):
    __slots__ = ()


@REGISTRY.register(MsgType.GET_KEY_REPLY)
@layout(
    "status:u32 index:u32",
    status=Status,
    key=Counted("bytes", range(MAX_KEY_BYTES + 1), names=("key_length", "key")),
)
class GetKeyReply(_Message):
    """Status, the key's index in the session (0, 1, ...) and the key (empty on error)."""

    request_id: int
    status: Status
    index: int = 0
    key: bytes = b""

    def __repr__(self) -> str:  # never print key bytes
        return (
            f"GetKeyReply(request_id={self.request_id}, status={self.status!r}, "
            f"index={self.index}, key=<{len(self.key)} bytes>)"
        )


Request = Open | ConnectNonblock | ConnectBlocking | GetKey | Close
Reply = OpenReply | ConnectNonblockReply | ConnectBlockingReply | GetKeyReply | CloseReply
Message = Request | Reply


def encode(msg: Message) -> bytes:
    try:
        head = _HEADER.pack(VERSION, msg.TYPE, msg.request_id)
    except struct.error:
        raise EncodeError("etsi004.request_id", f"{msg.request_id} does not fit 32 bits") from None
    return head + msg.encode_body()


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
    msg: Message = decode_body(REGISTRY, mtype, r, request_id=rid)
    return msg


def reply_type(request_type: int) -> int:
    return request_type | 0x80


def status_reply(request: Request, status: Status) -> Reply:
    """The answer to ``request`` that carries ``status`` alone (and echoes its handle)."""
    rid = request.request_id
    if isinstance(request, Open):
        return OpenReply(rid, status, request.key_handle, request.qos)
    if isinstance(request, GetKey):
        return GetKeyReply(rid, status)
    if isinstance(request, ConnectNonblock):
        return ConnectNonblockReply(rid, status, request.key_handle)
    if isinstance(request, ConnectBlocking):
        return ConnectBlockingReply(rid, status, request.key_handle)
    return CloseReply(rid, status, request.key_handle)


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
    "status_reply",
]
