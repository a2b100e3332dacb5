"""Key material of an emulated Clavis2 pair, released at a secret-key rate
(docs/design.md#the-qkd-side).

Both devices of a pair hold the same material: two byte streams derived from a shared
seed (AES-256-CTR keyed by SHA-256 of the seed and the stream number, so any offset can
be read directly) or read from a shared key file made by ``python -m idq3p_emulator
keygen``. Each device hands out fresh keys (GET_NEXT_KEY) from its *own* stream only,
the pair member whose name sorts first owns stream 0, the other stream 1, so the two
devices never hand out the same bytes as "next"; the other device's keys are fetched by
ID (GET_KEY_BY_ID). A key ID is ``stream << 63 | byte offset``.

The link's secret-key rate and buffer are shared evenly by the two streams. Key grows at
``rate / 2`` bits per second into a buffer of ``buffer / 2`` bits; a delivered key is
deleted (its bytes are never handed out again, by either request). Time is passed in by
the caller: nothing here reads a clock (pure, sans-I/O).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

STREAM_BIT = 1 << 63
OFFSET_MASK = STREAM_BIT - 1
KEYFILE_MAGIC = b"IDQ3PKEY"
KEYFILE_HEADER = 16  # magic + u64 material length


def key_id(stream: int, offset: int) -> int:
    return (stream << 63) | offset


def split_key_id(kid: int) -> tuple[int, int]:
    return kid >> 63, kid & OFFSET_MASK


class SeedSource:
    """Unbounded streams from a shared seed: stream s = AES-256-CTR(SHA-256(label|s|seed))."""

    def __init__(self, seed: bytes) -> None:
        if not seed:
            raise ValueError("empty key seed")
        self._keys = [
            hashlib.sha256(b"idq3p-emulator stream " + bytes([s]) + b"|" + seed).digest()
            for s in (0, 1)
        ]

    def limit(self, stream: int) -> int | None:
        return None

    def material(self, stream: int, offset: int, n: int) -> bytes:
        block, skip = divmod(offset, 16)
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


class IntervalSet:
    """Disjoint half-open byte ranges [start, end), merged when they touch."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def __len__(self) -> int:
        return len(self._starts)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and self._ends[i] > start:
            return True
        j = i + 1
        return j < len(self._starts) and self._starts[j] < end

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_left(self._starts, start)
        # merge with the range before if it touches
        if i > 0 and self._ends[i - 1] >= start:
            i -= 1
            start = self._starts[i]
            end = max(end, self._ends[i])
            del self._starts[i], self._ends[i]
        while i < len(self._starts) and self._starts[i] <= end:
            end = max(end, self._ends[i])
            del self._starts[i], self._ends[i]
        self._starts.insert(i, start)
        self._ends.insert(i, end)


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
    half of each. ``start`` is the time (any monotonic clock, seconds) the device came up
    with an empty buffer; every method takes ``now`` on that clock.
    """

    def __init__(
        self,
        source: KeySource,
        own_stream: int,
        rate_bps: float,
        buffer_bits: int,
        start: float,
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
        self._avail = 0.0  # bits released in the own stream and not yet delivered
        self._t = start
        self._cursor = 0  # next offset of the own stream to hand out as "next"
        self._taken = IntervalSet()  # ranges of the other stream delivered by ID
        self.delivered_keys = 0

    def _refill(self, now: float) -> None:
        if now > self._t:
            self._avail = min(
                float(self.stream_buffer), self._avail + self.stream_rate * (now - self._t)
            )
            self._t = now

    def _own_left(self) -> int | None:
        lim = self.source.limit(self.own_stream)
        return None if lim is None else lim - self._cursor

    def available_bits(self, now: float) -> int:
        self._refill(now)
        bits = int(self._avail)
        left = self._own_left()
        return bits if left is None else min(bits, 8 * left)

    def next_keys(self, key_bytes: int, count: int, now: float) -> list[tuple[int, bytes]]:
        """Up to ``count`` fresh keys of the own stream; [] if not even one is available."""
        if key_bytes <= 0 or count <= 0:
            return []
        n = min(count, self.available_bits(now) // (8 * key_bytes))
        if n <= 0:
            return []
        out = []
        block = self.source.material(self.own_stream, self._cursor, n * key_bytes)
        for i in range(n):
            out.append(
                (
                    key_id(self.own_stream, self._cursor + i * key_bytes),
                    block[i * key_bytes : (i + 1) * key_bytes],
                )
            )
        self._cursor += n * key_bytes
        self._avail -= 8 * n * key_bytes
        self.delivered_keys += n
        return out

    def key_by_id(self, kid: int, key_bytes: int, now: float) -> bytes | None:
        """The pair device's key ``kid`` (other stream), once; None if unknown or deleted.

        The pair device released it (rate-limited there), so it exists here too: the two
        ends of a QKD link distil the same key at the same moment. Not rate-limited again.
        """
        stream, offset = split_key_id(kid)
        if stream == self.own_stream or key_bytes <= 0:
            return None  # own keys are only handed out as "next", and then deleted
        end = offset + key_bytes
        lim = self.source.limit(stream)
        if lim is not None and end > lim:
            return None
        if self._taken.overlaps(offset, end):
            return None
        self._taken.add(offset, end)
        self.delivered_keys += 1
        return self.source.material(stream, offset, key_bytes)

    def status(self, now: float) -> StoreStatus:
        return StoreStatus(
            self.available_bits(now),
            int(self.stream_rate),
            self.stream_buffer,
            self.delivered_keys,
        )
