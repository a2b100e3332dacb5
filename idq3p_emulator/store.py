"""Key material of an emulated Clavis2 pair, released at a secret-key rate
(docs/design.md#the-qkd-side, docs/idq3p.md).

Both devices of a pair hold the same material: two byte streams derived from a shared
seed (AES-256-CTR keyed by SHA-256 of the seed and the stream number, so any offset can
be read directly) or read from a shared key file made by ``python -m idq3p_emulator
keygen``. Each device hands out fresh keys (GET_NEXT_KEY) from its *own* stream only,
the pair member whose name sorts first owns stream 0, the other stream 1, so the two
devices never hand out the same bytes as "next"; the other device's keys are fetched by
ID (GET_KEY_BY_ID). A key ID is ``stream << 63 | byte offset``.

The link's secret-key rate and buffer are shared evenly by the two streams. Seed
material follows the pair's clock (:class:`_Timeline`: offsets are positions on it, so
both devices know what the other released); a key file is pre-shared and only paced
(:class:`_Bucket`). A delivered key is deleted (its bytes are never handed out again, by
either request), and :class:`Marks` carry that across a restart. Time is passed in by the
caller: nothing here reads a clock or a file (pure, sans-I/O).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

STREAM_BIT = 1 << 63
OFFSET_MASK = STREAM_BIT - 1
KEYFILE_MAGIC = b"IDQ3PKEY"
KEYFILE_HEADER = 16  # magic + u64 material length


def key_id(stream: int, offset: int) -> int:
    return (stream << 63) | offset


def split_key_id(kid: int) -> tuple[int, int]:
    return kid >> 63, kid & OFFSET_MASK


#: reads of at most this many AES blocks are served block by block (one key by ID)
SHORT_READ = 8


def _material_id(material: bytes) -> str:
    """Names key material in the marks file (a one-way hash: reveals no key)."""
    return hashlib.sha256(b"idq3p-emulator marks|" + material).hexdigest()[:32]


class SeedSource:
    """Unbounded streams from a shared seed: stream s = AES-256-CTR(SHA-256(label|s|seed))."""

    def __init__(self, seed: bytes) -> None:
        if not seed:
            raise ValueError("empty key seed")
        self._keys = [
            hashlib.sha256(b"idq3p-emulator stream " + bytes([s]) + b"|" + seed).digest()
            for s in (0, 1)
        ]
        self.material_id = _material_id(seed)
        # the same keystream block by block, without a new cipher per call (short reads)
        self._blocks = [Cipher(algorithms.AES(k), modes.ECB()).encryptor() for k in self._keys]

    def limit(self, stream: int) -> int | None:
        return None

    def material(self, stream: int, offset: int, n: int) -> bytes:
        block, skip = divmod(offset, 16)
        count = (skip + n + 15) // 16
        if count <= SHORT_READ:  # CTR keystream block i is AES(counter i)
            counters = b"".join((block + i).to_bytes(16, "big") for i in range(count))
            return self._blocks[stream].update(counters)[skip : skip + n]
        enc = Cipher(
            algorithms.AES(self._keys[stream]), modes.CTR(block.to_bytes(16, "big"))
        ).encryptor()
        return enc.update(bytes(skip + n))[skip:]


class FileSource:
    """Finite streams from a key file: stream 0 is its first half, stream 1 the second."""

    def __init__(self, material: bytes) -> None:
        half = len(material) // 2
        if half == 0:
            raise ValueError("key file holds no material")
        self._streams = (material[:half], material[half : 2 * half])
        self.material_id = _material_id(material)

    @classmethod
    def from_file_bytes(cls, data: bytes) -> FileSource:
        return cls(parse_keyfile(data))

    def limit(self, stream: int) -> int | None:
        return len(self._streams[stream])

    def material(self, stream: int, offset: int, n: int) -> bytes:
        return self._streams[stream][offset : offset + n]


KeySource = SeedSource | FileSource


def make_keyfile(material: bytes) -> bytes:
    """The key file format: ``IDQ3PKEY``, u64 length, the material (docs/idq3p.md)."""
    return KEYFILE_MAGIC + len(material).to_bytes(8, "big") + material


def parse_keyfile(data: bytes) -> bytes:
    if len(data) < KEYFILE_HEADER or data[:8] != KEYFILE_MAGIC:
        raise ValueError("not an IDQ3P key file (magic IDQ3PKEY missing)")
    n = int.from_bytes(data[8:16], "big")
    if len(data) != KEYFILE_HEADER + n:
        raise ValueError(f"key file says {n} bytes of material, holds {len(data) - 16}")
    return data[KEYFILE_HEADER:]


class _Node:
    __slots__ = ("end", "left", "prio", "right", "start")

    def __init__(self, start: int, end: int, prio: float) -> None:
        self.start, self.end, self.prio = start, end, prio
        self.left: _Node | None = None
        self.right: _Node | None = None


def _split(t: _Node | None, key: int) -> tuple[_Node | None, _Node | None]:
    """The nodes with start < ``key``, and the others."""
    if t is None:
        return None, None
    if t.start < key:
        t.right, right = _split(t.right, key)
        return t, right
    left, t.left = _split(t.left, key)
    return left, t


def _merge(a: _Node | None, b: _Node | None) -> _Node | None:
    """Join two treaps, every start of ``a`` below every start of ``b``."""
    if a is None:
        return b
    if b is None:
        return a
    if a.prio > b.prio:
        a.right = _merge(a.right, b)
        return a
    b.left = _merge(a, b.left)
    return b


def _depth(t: _Node | None) -> int:
    return 0 if t is None else 1 + max(_depth(t.left), _depth(t.right))


class IntervalSet:
    """Disjoint half-open byte ranges [start, end), merged when they touch.

    A treap keyed by start (random priorities: expected depth O(log n)), so a lookup and an
    insert cost O(log n) however scattered the ranges are. The shape depends on the
    priorities, never the answers.
    """

    __slots__ = ("_count", "_rng", "_root")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._root: _Node | None = None
        self._count = 0
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return self._count

    def depth(self) -> int:
        """Nodes on the longest path from the root (a treap's is O(log n) expected)."""
        return _depth(self._root)

    def _before(self, key: int) -> _Node | None:
        """The range with the largest start below ``key``."""
        t, best = self._root, None
        while t is not None:
            if t.start < key:
                best, t = t, t.right
            else:
                t = t.left
        return best

    def overlaps(self, start: int, end: int) -> bool:
        below = self._before(end)
        return below is not None and below.end > start

    def _after(self, key: int) -> _Node | None:
        """The range with the smallest start above ``key``."""
        t, best = self._root, None
        while t is not None:
            if t.start > key:
                best, t = t, t.left
            else:
                t = t.right
        return best

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        prev = self._before(start + 1)
        keep = prev if prev is not None and prev.end >= start else None  # touches: extend it
        lo = start if keep is None else keep.start
        while (nxt := self._after(lo)) is not None and nxt.start <= end:
            end = max(end, nxt.end)  # absorb it (each range is removed once: amortised)
            self._remove(nxt)
        if keep is not None:
            keep.end = max(keep.end, end)
        else:
            self._insert(_Node(start, end, self._rng.random()))

    def _insert(self, node: _Node) -> None:
        """Descend while the priorities are higher, then split the rest below ``node``."""
        parent, t = None, self._root
        while t is not None and t.prio > node.prio:
            parent, t = t, (t.left if node.start < t.start else t.right)
        node.left, node.right = _split(t, node.start)
        self._attach(parent, node.start, node)
        self._count += 1

    def _remove(self, node: _Node) -> None:
        parent, t = None, self._root
        while t is not node:
            assert t is not None
            parent, t = t, (t.left if node.start < t.start else t.right)
        self._attach(parent, node.start, _merge(node.left, node.right))
        self._count -= 1

    def _attach(self, parent: _Node | None, key: int, child: _Node | None) -> None:
        if parent is None:
            self._root = child
        elif key < parent.start:
            parent.left = child
        else:
            parent.right = child


@dataclass(frozen=True, slots=True)
class Marks:
    """What a device keeps across a restart (docs/idq3p.md#restarts): positions, no key.

    ``own``: no key of the own stream at or beyond this offset was handed out;
    ``other``: no key of the other stream that ends beyond this offset was handed out by
    ID. Both run ahead of what was handed out (a reservation), so they are written only
    now and then. ``material`` names the key material they belong to (a new seed or key
    file starts afresh); ``stream`` is the own stream.
    """

    material: str
    stream: int
    own: int = 0
    other: int = 0

    def encode(self) -> bytes:
        return json.dumps(
            {"material": self.material, "stream": self.stream, "own": self.own, "other": self.other}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Marks:
        """The marks in ``data``; ValueError if it is not a marks file."""
        try:
            d = json.loads(data)
            m = cls(str(d["material"]), int(d["stream"]), int(d["own"]), int(d["other"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"not an emulator marks file: {e}") from None
        if m.stream not in (0, 1) or m.own < 0 or m.other < 0:
            raise ValueError("marks out of range")
        return m

    def for_material(self, material: str, stream: int) -> Marks:
        """These marks if they belong to this material and stream, else fresh ones."""
        if (self.material, self.stream) == (material, stream):
            return self
        return Marks(material, stream)


class Refused(IntEnum):
    """Why GET_KEY_BY_ID does not deliver a key."""

    UNKNOWN = 1  # deleted, one of the own keys, before this device's start, or none such
    NOT_RELEASED = 2  # the pair device cannot have released it yet (a future key)


class _Timeline:
    """Seed material: the pair's key follows the clock both devices share (the wall clock in
    the daemon). By time ``t`` a stream has released ``rate * t / 8`` bytes; its buffer holds
    the newest ``buffer / 8`` bytes of them (older unclaimed key is dropped, as a full device
    buffer overwrites). Both devices compute the same positions, so either can tell whether
    a key of the other stream was released."""

    def __init__(self, rate_bps: float, buffer_bits: int) -> None:
        self.rate, self.buffer = rate_bps, buffer_bits // 8

    def released(self, now: float) -> int:
        return int(self.rate * max(now, 0.0)) // 8

    def window(self, cursor: int, now: float) -> tuple[int, int]:
        hi = self.released(now)
        lo = max(cursor, hi - self.buffer)
        return lo, max(lo, hi)

    def first(self, now: float) -> tuple[int, int]:
        """(own cursor, other floor) at a start: the buffer starts empty; keys of the other
        stream older than one buffer were dropped at both ends."""
        p = self.released(now)
        return p, max(0, p - self.buffer)

    def took(self, n: int) -> None:
        pass


class _Bucket:
    """Key-file material: pre-shared, every byte released at both ends; GET_NEXT_KEY is paced
    by the rate into the buffer, which starts empty and fills while unused."""

    def __init__(self, rate_bps: float, buffer_bits: int, limit: int, start: float) -> None:
        self.rate, self.buffer, self.limit = rate_bps, buffer_bits, limit
        self._avail = 0.0  # bits
        self._t = start

    def released(self, now: float) -> int:
        return self.limit

    def window(self, cursor: int, now: float) -> tuple[int, int]:
        if now > self._t:
            self._avail = min(float(self.buffer), self._avail + self.rate * (now - self._t))
            self._t = now
        return cursor, min(self.limit, cursor + int(self._avail) // 8)

    def first(self, now: float) -> tuple[int, int]:
        return 0, 0

    def took(self, n: int) -> None:
        self._avail -= 8 * n


#: offsets of seed material must fit 63 bits until this time (2096, Unix seconds)
LAST_SECOND = 4e9
#: the most a reservation (see :class:`Marks`) runs ahead, and the least
RESERVE_MAX = 1 << 20
RESERVE_MIN = 4096


@dataclass(frozen=True, slots=True)
class StoreStatus:
    bits_available: int
    rate_bps: int
    buffer_bits: int
    delivered_keys: int

    def keys_available(self, key_bytes: int) -> int:
        return self.bits_available // (8 * key_bytes)


class KeyStore:
    """One device's view of the pair's key material.

    ``rate_bps`` and ``buffer_bits`` are the link's figures; this device's own stream gets
    half of each. ``start`` is the time the device came up; every method takes ``now`` on
    the same clock (for seed material, the clock both devices of the pair share).
    ``marks`` are the positions of an earlier run of this device (or fresh ones for its
    material): with them the store keeps :attr:`marks` ahead of what it hands out and sets
    :attr:`dirty` when they moved, and the caller must save them before it sends the keys.
    Without them (None) nothing is kept across a restart.
    """

    def __init__(
        self,
        source: KeySource,
        own_stream: int,
        rate_bps: float,
        buffer_bits: int,
        start: float,
        marks: Marks | None = None,
    ) -> None:
        if own_stream not in (0, 1):
            raise ValueError("own_stream must be 0 or 1")
        if rate_bps < 0 or buffer_bits < 0:
            raise ValueError("rate and buffer must not be negative")
        self.source = source
        self.own_stream = own_stream
        self.stream_rate = rate_bps / 2
        self.stream_buffer = buffer_bits // 2
        self.start = start
        lim = source.limit(own_stream)
        if lim is None and self.stream_rate * LAST_SECOND / 8 >= OFFSET_MASK:
            raise ValueError("rate too high: offsets of the pair's clock would pass 63 bits")
        self._pace = (
            _Timeline(self.stream_rate, self.stream_buffer)
            if lim is None
            else _Bucket(self.stream_rate, self.stream_buffer, lim, start)
        )
        reserve = min(RESERVE_MAX, max(RESERVE_MIN, int(self.stream_rate) // 32))  # ~1/4 s
        self.reserve = reserve if lim is None else max(1, min(reserve, lim // 64))
        cursor, floor = self._pace.first(start)
        self.marks = marks
        if marks is not None:
            cursor, floor = max(cursor, marks.own), max(floor, marks.other)
        self._cursor = cursor  # next offset of the own stream to hand out as "next"
        self._floor = floor  # keys of the other stream below it are refused by ID
        self._taken = IntervalSet()  # ranges of the other stream delivered by ID
        self.delivered_keys = 0
        self.dirty = False

    def available_bits(self, now: float) -> int:
        lo, hi = self._pace.window(self._cursor, now)
        return 8 * (hi - lo)

    def _keep(self, own: int = 0, other: int = 0) -> None:
        """Move the marks ahead of these positions (then :attr:`dirty` until saved)."""
        m = self.marks
        if m is None:
            return
        if own > m.own:
            m = replace(m, own=own + self.reserve)
        if other > m.other:
            m = replace(m, other=other + self.reserve)
        if m is not self.marks:
            self.marks, self.dirty = m, True

    def next_keys(self, key_bytes: int, count: int, now: float) -> list[tuple[int, bytes]]:
        """Up to ``count`` fresh keys of the own stream; [] if not even one is available."""
        if key_bytes <= 0 or count <= 0:
            return []
        lo, hi = self._pace.window(self._cursor, now)
        n = min(count, (hi - lo) // key_bytes)
        if n <= 0:
            return []
        size = n * key_bytes
        self._keep(own=lo + size)
        block = self.source.material(self.own_stream, lo, size)
        out = [
            (key_id(self.own_stream, lo + i), block[i : i + key_bytes])
            for i in range(0, size, key_bytes)
        ]
        self._cursor = lo + size
        self._pace.took(size)
        self.delivered_keys += n
        return out

    def take_by_id(self, kid: int, key_bytes: int, now: float) -> bytes | Refused:
        """The pair device's key ``kid`` (other stream), once.

        Only a key the pair has released by ``now`` (both ends of a QKD link distil a key at
        the same moment), at or above this device's floor (what it may have delivered
        before a restart lies below), and not delivered before. Not rate-limited again:
        the pair device paid for it with its own rate.
        """
        stream, offset = split_key_id(kid)
        if stream == self.own_stream or key_bytes <= 0 or offset < self._floor:
            return Refused.UNKNOWN  # own keys are only handed out as "next"
        end = offset + key_bytes
        lim = self.source.limit(stream)
        if lim is not None and end > lim:
            return Refused.UNKNOWN  # past the end of a key file
        if end > self._pace.released(now):
            return Refused.NOT_RELEASED
        if self._taken.overlaps(offset, end):
            return Refused.UNKNOWN
        self._keep(other=end)
        self._taken.add(offset, end)
        self.delivered_keys += 1
        return self.source.material(stream, offset, key_bytes)

    def key_by_id(self, kid: int, key_bytes: int, now: float) -> bytes | None:
        """:meth:`take_by_id`, None when refused."""
        got = self.take_by_id(kid, key_bytes, now)
        return got if isinstance(got, bytes) else None

    def status(self, now: float) -> StoreStatus:
        return StoreStatus(
            self.available_bits(now),
            int(self.stream_rate),
            self.stream_buffer,
            self.delivered_keys,
        )
