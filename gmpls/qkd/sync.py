"""The proxy-to-proxy synchronisation channel on UDP 5626 (docs/etsi004.md §Sync channel).

The two ETSI 004 proxies of a QKD link agree here on sessions (key_handle, endpoints,
key length) and on which key ID goes with which (key_handle, index). Key IDs cross this
channel; key bytes never do (docs/design.md#the-qkd-side).

Every frame is authenticated with HMAC-SHA256 under a key of its direction: HKDF-SHA256
(RFC 5869) of the pair's shared sync secret (a fresh random file per bring-up, or
``qkd.deterministic.sync_key`` in a test topology) with the sender's and the receiver's
names, so a frame sent back to its sender does not verify there. Each proxy draws a
random 64-bit **epoch** when it starts; a frame names its sender's epoch, the epoch of the
receiver as the sender last heard it, and a counter. The receiver accepts a frame only
if it names the receiver's current epoch (it was made after the receiver started: no
frame captured before a restart is accepted again) and if its counter passes the sliding
replay window (RFC 4303 §3.4.3 style) kept for the sender's epoch. A genuine frame that
names another epoch of the receiver (a peer that has not heard of the restart yet, or a
replay) is **stale**: the proxy answers it with a HELLO naming both current epochs, which
tells the peer where to address its next frames. Every rejection is counted::

    0      2       3      4               12              20              28
    +------+-------+------+---------------+---------------+---------------+-- body --+- 32 -+
    | "QS" | ver=2 | type | sender epoch  | receiver epoch|    counter    |   ...    | HMAC |
    +------+-------+------+---------------+---------------+---------------+----------+------+

Pure: frames in, frames out; no I/O, no clock, no randomness (the epoch is passed in).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gmpls.errors import DecodeError
from gmpls.layout import Counted, Repeat, layout
from gmpls.qkd.message import QkdMessage, decode_body
from gmpls.registry import Registry
from gmpls.wire import Reader

MAGIC = b"QS"
VERSION = 2
PORT = 5626
HEADER_LEN = 28
MAC_LEN = 32
MAX_IDS = 4096
#: replay windows kept, one per epoch of the peer seen since this proxy started (a peer
#: restart adds one; only a genuine, fresh frame can): the oldest is forgotten first
MAX_PEER_EPOCHS = 8
#: HKDF salt of the direction keys (RFC 5869 §3.1: a fixed, non-secret value)
KDF_SALT = b"qkdnet sync v2"


class SyncType(IntEnum):
    CREATE = 1
    CREATE_RESP = 2
    OPENED = 3
    BIND = 4
    ALLOC = 5
    ALLOC_RESP = 6
    CLOSE = 7
    ACK = 8
    HELLO = 9
    RELAY_OPEN = 10
    RELAY_RESP = 11
    RELAY_KEY = 12
    RELAY_ACK = 13
    RELAY_CLOSE = 14
    RELAY_OPENED = 15


class Result(IntEnum):
    """Outcome codes in CREATE_RESP / ALLOC_RESP / ACK."""

    OK = 0  # CREATE: the receiver made the session and follows the sender's key IDs
    JOINED = 1  # CREATE: the receiver already had it and allocates; the sender follows
    IN_USE = 2  # the handle is in use with other endpoints
    NO_ROUTE = 3  # the destination is not served by the receiver
    UNKNOWN_HANDLE = 4
    INSUFFICIENT_KEY = 5
    NOT_AUTHORIZED = 6
    NO_QKD_CONNECTION = 7  # relay: a link of the path is down or its peer silent


REGISTRY: Registry[Any] = Registry("sync.message", attrs=("TYPE",))
_HEADER = struct.Struct("!2sBBQQQ")  # magic, version, type, sender/receiver epoch, counter
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


@REGISTRY.register(SyncType.HELLO)
@layout()
class Hello(QkdMessage):
    """No body: the header says "my epoch is this, yours is that" (the answer to a stale
    frame, docs/etsi004.md §Epochs)."""

    TYPE: ClassVar[SyncType]


# --- trusted-node key relay (docs/qkd-network.md §Relay messages) --------------------------
#: key bytes in one RELAY_KEY payload, at most (the ETSI 004 maximum)
MAX_RELAY_KEY = 1024
MAX_RELAY_SITES = 16


@REGISTRY.register(SyncType.RELAY_OPEN)
@layout(
    "txid:u32 relay_handle:b64 hop_handle:b64 opener:ipv4 destination:ipv4 key_length:u16",
    path=Repeat("ipv4"),
)
class RelayOpen(_Message):
    """Open the relay ``relay_handle`` (the end-to-end key_handle) along ``path`` (site
    IDs, head first): the hop over this link is the sender's session ``hop_handle``; the
    receiver is the site after the sender in the path."""

    txid: int
    relay_handle: bytes
    hop_handle: bytes
    opener: IPv4Address
    destination: IPv4Address
    key_length: int
    path: tuple[IPv4Address, ...]


@layout("txid:u32 relay_handle:b64 result:u8", result=Result)
class _RelayResult(_Message):
    txid: int
    relay_handle: bytes
    result: Result = Result.OK


@REGISTRY.register(SyncType.RELAY_RESP)
class RelayResp(_RelayResult):
    """The answer to RELAY_OPEN, from the whole rest of the path (OK: open to the tail)."""

    __slots__ = ()


@REGISTRY.register(SyncType.RELAY_ACK)
class RelayAck(_RelayResult):
    """The answer to RELAY_KEY, RELAY_CLOSE and RELAY_OPENED (this hop only)."""

    __slots__ = ()


@REGISTRY.register(SyncType.RELAY_KEY)
@layout(
    "txid:u32 relay_handle:b64 index:u32",
    payload=Counted("bytes", range(MAX_RELAY_KEY + 1), names=("length", "payload")),
)
class RelayKey(_Message):
    """Key ``index`` of the relay: empty from the head (the key is the first hop's key of
    that index), else the end-to-end key XOR the key of that index on this hop (a
    one-time pad: never key material in the clear)."""

    txid: int
    relay_handle: bytes
    index: int
    payload: bytes = b""

    def __repr__(self) -> str:  # never print the payload
        return (
            f"RelayKey(txid={self.txid}, index={self.index}, payload=<{len(self.payload)} bytes>)"
        )


@REGISTRY.register(SyncType.RELAY_CLOSE)
@layout("txid:u32 relay_handle:b64 result:u8", result=Result)
class RelayClose(_Message):
    """The relay is over (``result`` OK: closed by an SAE; else why it failed); passed on
    away from where it came."""

    txid: int
    relay_handle: bytes
    result: Result = Result.OK


@REGISTRY.register(SyncType.RELAY_OPENED)
@layout("txid:u32 relay_handle:b64")
class RelayOpened(_Message):
    """The tail's SAE opened the relay (passed on toward the head)."""

    txid: int
    relay_handle: bytes


SyncMessage = (
    Create
    | CreateResp
    | Opened
    | Bind
    | Alloc
    | AllocResp
    | Close
    | Ack
    | Hello
    | RelayOpen
    | RelayResp
    | RelayKey
    | RelayAck
    | RelayClose
    | RelayOpened
)
RelayRequest = RelayOpen | RelayKey | RelayClose | RelayOpened
RelayMessage = RelayRequest | RelayResp | RelayAck
RELAY_REQUESTS = (RelayOpen, RelayKey, RelayClose, RelayOpened)
#: messages that start a transaction (retransmitted until answered)
SyncRequest = Create | Opened | Bind | Alloc | Close | RelayRequest
REQUESTS = (Create, Opened, Bind, Alloc, Close, *RELAY_REQUESTS)


class AuthError(DecodeError):
    """The frame's HMAC does not verify under the key of its direction: forged, corrupted,
    or sent back to its sender."""


class ReplayError(DecodeError):
    """The frame's counter was seen before or is older than the window."""


class StaleError(DecodeError):
    """A genuine frame that names another epoch of the receiver than its current one: made
    before the receiver started, or by a peer that has not heard of the restart yet."""

    def __init__(self, sender_epoch: int, receiver_epoch: int) -> None:
        super().__init__("sync.epoch", f"names epoch {receiver_epoch:#x}, not ours")
        self.sender_epoch = sender_epoch


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
            # a jump past the whole window starts a fresh one instead of a huge shift
            self._bits = (
                1 if shift >= self.size else ((self._bits << shift) | 1) & ((1 << self.size) - 1)
            )
            self.highest = seq
        else:
            self._bits |= 1 << (self.highest - seq)


def direction_key(secret: bytes, sender: str, receiver: str) -> bytes:
    """The HMAC key of frames from ``sender`` to ``receiver``: HKDF-SHA256 (RFC 5869) of the
    pair's secret, the two names (length-prefixed) in the info, so each direction has its
    own key."""
    info = b"".join(len(n).to_bytes(1, "big") + n for n in (sender.encode(), receiver.encode()))
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=KDF_SALT, info=b"sync" + info)
    return kdf.derive(secret)


class SyncCodec:
    """Seals the frames ``me`` sends to ``peer`` and opens the ones it gets from ``peer``;
    counts what it rejects. ``epoch`` is this proxy's random epoch (non-zero);
    ``peer_epoch`` is the peer's as last heard (0: not yet)."""

    def __init__(self, secret: bytes, me: str, peer: str, epoch: int) -> None:
        if len(secret) < 16:
            raise ValueError("sync secret must be at least 16 bytes")
        if me == peer:
            raise ValueError("the two ends of a sync channel need different names")
        if not 0 < epoch < 1 << 64:
            raise ValueError("the epoch is a non-zero 64-bit number")
        self._send_key = direction_key(secret, me, peer)
        self._recv_key = direction_key(secret, peer, me)
        self.epoch = epoch
        self.peer_epoch = 0
        self._counter = 0
        #: peer epoch -> its replay window, in the order first seen (at most MAX_PEER_EPOCHS)
        self.windows: OrderedDict[int, ReplayWindow] = OrderedDict()
        self.counters = {
            "sent": 0,
            "accepted": 0,
            "bad_mac": 0,
            "replayed": 0,
            "stale": 0,
            "malformed": 0,
        }

    def seal(self, msg: SyncMessage, to_epoch: int | None = None) -> bytes:
        """The frame of ``msg`` for the peer's epoch ``to_epoch`` (default: as last heard)."""
        self._counter += 1
        to = self.peer_epoch if to_epoch is None else to_epoch
        head = _HEADER.pack(MAGIC, VERSION, msg.TYPE, self.epoch, to, self._counter)
        data = head + msg.encode_body()
        self.counters["sent"] += 1
        return data + hmac.new(self._send_key, data, hashlib.sha256).digest()

    def open(self, frame: bytes) -> SyncMessage:
        """Verify and decode; raises AuthError / StaleError / ReplayError / DecodeError
        (all counted). A fresh HELLO, or a frame from an epoch of the peer not seen before,
        makes that epoch the one :meth:`seal` addresses."""
        if len(frame) < HEADER_LEN + MAC_LEN:
            self.counters["malformed"] += 1
            raise DecodeError("sync", f"{len(frame)} bytes is too short for a frame")
        data, mac = frame[:-MAC_LEN], frame[-MAC_LEN:]
        if not hmac.compare_digest(mac, hmac.new(self._recv_key, data, hashlib.sha256).digest()):
            self.counters["bad_mac"] += 1
            raise AuthError("sync.hmac", "does not verify")
        r = Reader(data, "sync")
        try:
            if r.bytes(2, "magic") != MAGIC:
                raise r.fail("magic", "not QS")
            if r.u8("version") != VERSION:
                raise r.fail("version", "unsupported")
            mtype = r.u8("type")
            sender, receiver, counter = (
                r.u64("sender_epoch"),
                r.u64("receiver_epoch"),
                r.u64("counter"),
            )
            msg: SyncMessage = decode_body(REGISTRY, mtype, r)
        except DecodeError:
            self.counters["malformed"] += 1
            raise
        if receiver != self.epoch:
            self.counters["stale"] += 1
            raise StaleError(sender, receiver)
        self._accept(sender, counter)
        if isinstance(msg, Hello):
            self.peer_epoch = sender
        return msg

    def _accept(self, sender: int, counter: int) -> None:
        w = self.windows.get(sender)
        if not (w.check(counter) if w is not None else counter > 0):
            self.counters["replayed"] += 1
            raise ReplayError("sync.counter", f"{counter} replayed or too old")
        if w is None:
            w = self.windows[sender] = ReplayWindow()
            self.peer_epoch = sender  # the peer's newest life (a restart, or first contact)
            while len(self.windows) > MAX_PEER_EPOCHS:
                self.windows.popitem(last=False)
        w.update(counter)
        self.counters["accepted"] += 1
