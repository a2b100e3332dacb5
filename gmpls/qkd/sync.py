"""The proxy-to-proxy synchronisation channel on UDP 5626 (docs/etsi004.md §Sync channel).

The two ETSI 004 proxies of a QKD link agree here on sessions (key_handle, endpoints,
key length) and on which key ID goes with which (key_handle, index). Key IDs cross this
channel; key bytes never do (docs/design.md#the-qkd-side).

Every frame is authenticated with HMAC-SHA256 under the pair's shared secret (topology
``qkd.sync_secret``) and carries a 64-bit sequence number: ``epoch << 32 | counter``,
where the epoch (wall-clock seconds at start, passed in) keeps a restarted proxy's numbers
above its old ones. The receiver keeps a sliding replay window (RFC 4303 §3.4.3 style):
a frame older than the window or already seen is rejected and counted::

    0      2       3      4                              12
    +------+-------+------+------------------------------+---- body ----+--- 32 ---+
    | "QS" | ver=1 | type |       sequence number        |     ...      |  HMAC    |
    +------+-------+------+------------------------------+--------------+----------+

Pure: frames in, frames out; no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, ClassVar, Self

from gmpls.errors import DecodeError, EncodeError
from gmpls.registry import Registry
from gmpls.wire import Reader, u8, u16, u32, u64

MAGIC = b"QS"
VERSION = 1
PORT = 5626
HEADER_LEN = 12
MAC_LEN = 32
HANDLE_LEN = 64
MAX_IDS = 4096


class SyncType(IntEnum):
    CREATE = 1
    CREATE_RESP = 2
    OPENED = 3
    BIND = 4
    ALLOC = 5
    ALLOC_RESP = 6
    CLOSE = 7
    ACK = 8


class Result(IntEnum):
    """Outcome codes in CREATE_RESP / ALLOC_RESP / ACK."""

    OK = 0  # CREATE: the receiver made the session and follows the sender's key IDs
    JOINED = 1  # CREATE: the receiver already had it and allocates; the sender follows
    IN_USE = 2  # the handle is in use with other endpoints
    NO_ROUTE = 3  # the destination is not served by the receiver
    UNKNOWN_HANDLE = 4
    INSUFFICIENT_KEY = 5
    NOT_AUTHORIZED = 6


REGISTRY: Registry[Any] = Registry("sync.message")


def _result(r: Reader) -> Result:
    v = r.u8("result")
    try:
        return Result(v)
    except ValueError:
        raise r.fail("result", f"unknown result {v}") from None


def _ids(r: Reader) -> tuple[int, ...]:
    n = r.u16("count")
    if n > MAX_IDS:
        raise r.fail("count", f"{n} > {MAX_IDS}")
    return tuple(r.u64(f"key_id[{i}]") for i in range(n))


def _enc_ids(ids: tuple[int, ...], field: str) -> bytes:
    if len(ids) > MAX_IDS:
        raise EncodeError(field, f"{len(ids)} IDs > {MAX_IDS}")
    return u16(len(ids)) + b"".join(u64(i) for i in ids)


def _h(h: bytes, field: str) -> bytes:
    if len(h) != HANDLE_LEN:
        raise EncodeError(field, f"{len(h)} bytes, not {HANDLE_LEN}")
    return h


@REGISTRY.register(SyncType.CREATE)
@dataclass(frozen=True, slots=True)
class Create:
    """A session: the node that opened it at the sender, the destination node, key length."""

    TYPE: ClassVar[SyncType] = SyncType.CREATE
    txid: int
    key_handle: bytes
    opener: IPv4Address
    destination: IPv4Address
    key_length: int

    def encode_body(self) -> bytes:
        return (
            u32(self.txid)
            + _h(self.key_handle, "sync.CREATE.key_handle")
            + self.opener.packed
            + self.destination.packed
            + u16(self.key_length)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> Create:
        return cls(
            r.u32("txid"),
            r.bytes(HANDLE_LEN, "key_handle"),
            r.ipv4("opener"),
            r.ipv4("destination"),
            r.u16("key_length"),
        )


@REGISTRY.register(SyncType.CREATE_RESP)
@dataclass(frozen=True, slots=True)
class CreateResp:
    TYPE: ClassVar[SyncType] = SyncType.CREATE_RESP
    txid: int
    key_handle: bytes
    result: Result

    def encode_body(self) -> bytes:
        return u32(self.txid) + _h(self.key_handle, "sync.CREATE_RESP.key_handle") + u8(self.result)

    @classmethod
    def decode_body(cls, r: Reader) -> CreateResp:
        return cls(r.u32("txid"), r.bytes(HANDLE_LEN, "key_handle"), _result(r))


@dataclass(frozen=True, slots=True)
class _TxHandle:
    txid: int
    key_handle: bytes

    def encode_body(self) -> bytes:
        return u32(self.txid) + _h(self.key_handle, "sync.key_handle")

    @classmethod
    def decode_body(cls, r: Reader) -> Self:
        return cls(r.u32("txid"), r.bytes(HANDLE_LEN, "key_handle"))


@REGISTRY.register(SyncType.OPENED)
@dataclass(frozen=True, slots=True)
class Opened(_TxHandle):
    """The sender's application (the named destination) opened the session."""

    TYPE: ClassVar[SyncType] = SyncType.OPENED


@REGISTRY.register(SyncType.CLOSE)
@dataclass(frozen=True, slots=True)
class Close(_TxHandle):
    """The sender's application closed the session."""

    TYPE: ClassVar[SyncType] = SyncType.CLOSE


@REGISTRY.register(SyncType.BIND)
@dataclass(frozen=True, slots=True)
class Bind:
    """Indexes start, start+1, ... of the session go with these key IDs (of key_length)."""

    TYPE: ClassVar[SyncType] = SyncType.BIND
    txid: int
    key_handle: bytes
    start_index: int
    key_length: int
    key_ids: tuple[int, ...]

    def encode_body(self) -> bytes:
        return (
            u32(self.txid)
            + _h(self.key_handle, "sync.BIND.key_handle")
            + u32(self.start_index)
            + u16(self.key_length)
            + _enc_ids(self.key_ids, "sync.BIND.count")
        )

    @classmethod
    def decode_body(cls, r: Reader) -> Bind:
        return cls(
            r.u32("txid"),
            r.bytes(HANDLE_LEN, "key_handle"),
            r.u32("start_index"),
            r.u16("key_length"),
            _ids(r),
        )


@REGISTRY.register(SyncType.ALLOC)
@dataclass(frozen=True, slots=True)
class Alloc:
    """Ask the allocating proxy for the key IDs of ``index`` and after."""

    TYPE: ClassVar[SyncType] = SyncType.ALLOC
    txid: int
    key_handle: bytes
    index: int

    def encode_body(self) -> bytes:
        return u32(self.txid) + _h(self.key_handle, "sync.ALLOC.key_handle") + u32(self.index)

    @classmethod
    def decode_body(cls, r: Reader) -> Alloc:
        return cls(r.u32("txid"), r.bytes(HANDLE_LEN, "key_handle"), r.u32("index"))


@REGISTRY.register(SyncType.ALLOC_RESP)
@dataclass(frozen=True, slots=True)
class AllocResp:
    TYPE: ClassVar[SyncType] = SyncType.ALLOC_RESP
    txid: int
    key_handle: bytes
    result: Result
    start_index: int = 0
    key_length: int = 0
    key_ids: tuple[int, ...] = ()

    def encode_body(self) -> bytes:
        return (
            u32(self.txid)
            + _h(self.key_handle, "sync.ALLOC_RESP.key_handle")
            + u8(self.result)
            + u32(self.start_index)
            + u16(self.key_length)
            + _enc_ids(self.key_ids, "sync.ALLOC_RESP.count")
        )

    @classmethod
    def decode_body(cls, r: Reader) -> AllocResp:
        return cls(
            r.u32("txid"),
            r.bytes(HANDLE_LEN, "key_handle"),
            _result(r),
            r.u32("start_index"),
            r.u16("key_length"),
            _ids(r),
        )


@REGISTRY.register(SyncType.ACK)
@dataclass(frozen=True, slots=True)
class Ack:
    TYPE: ClassVar[SyncType] = SyncType.ACK
    txid: int
    key_handle: bytes
    result: Result = Result.OK

    def encode_body(self) -> bytes:
        return u32(self.txid) + _h(self.key_handle, "sync.ACK.key_handle") + u8(self.result)

    @classmethod
    def decode_body(cls, r: Reader) -> Ack:
        return cls(r.u32("txid"), r.bytes(HANDLE_LEN, "key_handle"), _result(r))


SyncMessage = Create | CreateResp | Opened | Bind | Alloc | AllocResp | Close | Ack
#: messages that start a transaction (retransmitted until answered)
REQUESTS = (Create, Opened, Bind, Alloc, Close)


class AuthError(DecodeError):
    """The frame's HMAC does not verify: forged or corrupted."""


class ReplayError(DecodeError):
    """The frame's sequence number was seen before or is older than the window."""


class ReplayWindow:
    """Sliding anti-replay window over 64-bit sequence numbers (RFC 4303 §3.4.3)."""

    __slots__ = ("_bits", "highest", "size")

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.highest = 0
        self._bits = 0  # bit i set: highest - i was seen

    def check(self, seq: int) -> bool:
        """True if ``seq`` would be accepted (does not record it)."""
        if seq == 0:
            return False
        if seq > self.highest:
            return True
        d = self.highest - seq
        return d < self.size and not (self._bits >> d) & 1

    def update(self, seq: int) -> None:
        if seq > self.highest:
            shift = seq - self.highest
            # a jump past the whole window (a restarted peer: new epoch in the high
            # 32 bits) starts a fresh window instead of shifting by ~2**32 bits
            self._bits = (
                1 if shift >= self.size else ((self._bits << shift) | 1) & ((1 << self.size) - 1)
            )
            self.highest = seq
        else:
            self._bits |= 1 << (self.highest - seq)


class SyncCodec:
    """Seals and opens frames for one direction pair; counts what it rejects."""

    def __init__(self, secret: bytes, epoch: int) -> None:
        if len(secret) < 16:
            raise ValueError("sync secret must be at least 16 bytes")
        self._secret = secret
        self._seq = (epoch & 0xFFFFFFFF) << 32
        self.window = ReplayWindow()
        self.counters = {"sent": 0, "accepted": 0, "bad_mac": 0, "replayed": 0, "malformed": 0}

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    def seal(self, msg: SyncMessage) -> bytes:
        self._seq += 1
        head = MAGIC + u8(VERSION) + u8(msg.TYPE) + u64(self._seq)
        data = head + msg.encode_body()
        self.counters["sent"] += 1
        return data + self._mac(data)

    def open(self, frame: bytes) -> SyncMessage:
        """Verify and decode; raises AuthError / ReplayError / DecodeError (all counted)."""
        if len(frame) < HEADER_LEN + MAC_LEN:
            self.counters["malformed"] += 1
            raise DecodeError("sync", f"{len(frame)} bytes is too short for a frame")
        data, mac = frame[:-MAC_LEN], frame[-MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(data)):
            self.counters["bad_mac"] += 1
            raise AuthError("sync.hmac", "does not verify")
        r = Reader(data, "sync")
        try:
            if r.bytes(2, "magic") != MAGIC:
                raise r.fail("magic", "not QS")
            if r.u8("version") != VERSION:
                raise r.fail("version", "unsupported")
            mtype = r.u8("type")
            seq = r.u64("sequence")
            cls = REGISTRY.get(mtype)
            if cls is None:
                raise r.fail("type", f"unknown sync message type {mtype}")
            msg: SyncMessage = cls.decode_body(r)
            r.expect_end("end")
        except DecodeError:
            self.counters["malformed"] += 1
            raise
        if not self.window.check(seq):
            self.counters["replayed"] += 1
            raise ReplayError("sync.sequence", f"{seq} replayed or too old")
        self.window.update(seq)
        self.counters["accepted"] += 1
        return msg
