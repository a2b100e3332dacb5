"""A bounded response cache keyed by (client address, request ID).

Servers on UDP answer a retransmitted request with the bytes they sent the first time,
so a lost answer never makes them act twice (docs/design.md#the-qkd-side). Oldest entries go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ResponseCache:
    __slots__ = ("_d", "capacity")

    def __init__(self, capacity: int = 65536) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._d: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._d

    def get(self, key: Hashable) -> bytes | None:
        return self._d.get(key)

    def put(self, key: Hashable, value: bytes) -> None:
        d = self._d
        if key in d:
            d.move_to_end(key)
        elif len(d) >= self.capacity:
            d.popitem(last=False)
        d[key] = value

    def clear(self) -> None:
        self._d.clear()
