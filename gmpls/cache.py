"""A bounded response cache keyed by (client address, request ID).

Servers on UDP answer a retransmitted request with the bytes they sent the first time,
so a lost answer never makes them act twice (docs/design.md#the-qkd-side). Bounded in
entries and, when ``max_bytes`` is given, in the bytes of the answers it holds (an answer
can be 64 KiB); oldest entries go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ResponseCache:
    __slots__ = ("_d", "capacity", "max_bytes", "nbytes")

    def __init__(self, capacity: int = 65536, max_bytes: int | None = None) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.nbytes = 0  # the answers' bytes held now
        self._d: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._d

    def get(self, key: Hashable) -> bytes | None:
        return self._d.get(key)

    def put(self, key: Hashable, value: bytes) -> None:
        """Keep ``value``; an answer larger than ``max_bytes`` alone is not kept."""
        d = self._d
        old = d.pop(key, None)
        if old is not None:
            self.nbytes -= len(old)
        if self.max_bytes is not None and len(value) > self.max_bytes:
            return
        d[key] = value
        self.nbytes += len(value)
        while len(d) > self.capacity or (
            self.max_bytes is not None and self.nbytes > self.max_bytes
        ):
            _, gone = d.popitem(last=False)
            self.nbytes -= len(gone)

    def clear(self) -> None:
        self._d.clear()
        self.nbytes = 0
