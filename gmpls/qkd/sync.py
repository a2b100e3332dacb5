"""The proxy-to-proxy synchronisation channel on UDP 5626 (docs/etsi004.md §Sync channel).

The two ETSI 004 proxies of a QKD link agree here on sessions (key_handle, endpoints,
key length) and on which key ID goes with which (key_handle, index). Key IDs cross this
channel; key bytes never do (docs/design.md#the-qkd-side).

Every frame is authenticated with HMAC-SHA256 under the pair's shared sync key (a fresh
random file per bring-up, or ``qkd.deterministic.sync_key`` in a test topology) and carries
a 64-bit sequence number: ``epoch << 32 | counter``, where the epoch (wall-clock seconds
at start, passed in) keeps a restarted proxy's numbers above its old ones. The receiver
keeps a sliding replay window (RFC 4303 §3.4.3 style): a frame older than the window or
already seen is rejected and counted::

    0      2       3      4                              12
    +------+-------+------+------------------------------+---- body ----+--- 32 ---+
    | "QS" | ver=1 | type |       sequence number        |     ...      |  HMAC    |
    +------+-------+------+------------------------------+--------------+----------+

Pure: frames in, frames out; no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, ClassVar

from gmpls.errors import DecodeError
from gmpls.layout import Counted, layout
from gmpls.qkd.message import QkdMessage, decode_body
from gmpls.registry import Registry
from gmpls.wire import Reader

MAGIC = b"QS"
VERSION = 1
PORT = 5626
HEADER_LEN = 12
MAC_LEN = 32
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


REGISTRY: Registry[Any] = Registry("sync.message", attrs=("TYPE",))
_HEADER = struct.Struct("!2sBBQ")  # magic, version, type, sequence number
#: a list of key IDs: a 16-bit count, then the 64-bit IDs
KEY_IDS = Counted("u64", range(MAX_IDS + 1), names=("count", "key_id"))


class _Message(QkdMessage):
    """Every message starts with the transaction ID and the session's key_handle."""

    __slots__ = ()
    TYPE: ClassVar[SyncType]


@REGISTRY.register(SyncType.CREATE)
@layout("txid:u32 key_handle:b64 opener:ipv4 destination:ipv4 key_length:u16")
class Create(_Message):
    """A session: the node that opened it at the sender, the destination node, key length."""

    txid: int
    key_handle: bytes
    opener: IPv4Address
    destination: IPv4Address
    key_length: int


@REGISTRY.register(SyncType.CREATE_RESP)
@layout("txid:u32 key_handle:b64 result:u8", result=Result)
class CreateResp(_Message):
    txid: int
    key_handle: bytes
    result: Result


@layout("txid:u32 key_handle:b64")
class _TxHandle(_Message):
    txid: int
    key_handle: bytes


@REGISTRY.register(SyncType.OPENED)
class Opened(_TxHandle):
    """The sender's application (the named destination) opened the session."""

    __slots__ = ()


@REGISTRY.register(SyncType.CLOSE)
class Close(_TxHandle):
    """The sender's application closed the session."""

    __slots__ = ()


@REGISTRY.register(SyncType.BIND)
@layout("txid:u32 key_handle:b64 start_index:u32 key_length:u16", key_ids=KEY_IDS)
class Bind(_Message):
    """Indexes start, start+1, ... of the session go with these key IDs (of key_length)."""

    txid: int
    key_handle: bytes
    start_index: int
    key_length: int
    key_ids: tuple[int, ...]


@REGISTRY.register(SyncType.ALLOC)
@layout("txid:u32 key_handle:b64 index:u32")
class Alloc(_Message):
    """Ask the allocating proxy for the key IDs of ``index`` and after."""

    txid: int
    key_handle: bytes
    index: int


@REGISTRY.register(SyncType.ALLOC_RESP)
@layout(
    "txid:u32 key_handle:b64 result:u8 start_index:u32 key_length:u16",
    result=Result,
    key_ids=KEY_IDS,
)
class AllocResp(_Message):
    txid: int
    key_handle: bytes
    result: Result
    start_index: int = 0
    key_length: int = 0
    key_ids: tuple[int, ...] = ()


@REGISTRY.register(SyncType.ACK)
@layout("txid:u32 key_handle:b64 result:u8", result=Result)
class Ack(_Message):
    txid: int
    key_handle: bytes
    result: Result = Result.OK


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
        data = _HEADER.pack(MAGIC, VERSION, msg.TYPE, self._seq) + msg.encode_body()
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
            msg: SyncMessage = decode_body(REGISTRY, mtype, r)
        except DecodeError:
            self.counters["malformed"] += 1
            raise
        if not self.window.check(seq):
            self.counters["replayed"] += 1
            raise ReplayError("sync.sequence", f"{seq} replayed or too old")
        self.window.update(seq)
        self.counters["accepted"] += 1
        return msg
