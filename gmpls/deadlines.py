"""The timers of many keys in one heap, for the sans-I/O cores (the RSVP core's LSPs, the
QE core's services): ``next_timer`` and a tick cost O(log n), not a scan of every key.

Each key has one *real* deadline, which the owner computes (``deadline(key)``, None when
the key has no timer or is gone). The heap holds ``(when, seq, key)`` entries; an entry is
live while it is the one :meth:`Deadlines.enter` made last for its key. The owner enters
a key again wherever a deadline is set or moves *earlier*; a deadline that moved later,
or a key that is gone, needs nothing: its entry is checked against the real deadline when
it comes to the top, and dropped or entered again then. Pure: no clock, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """The heap (module doc) over keys of type ``K`` whose deadlines ``deadline`` says."""

    def __init__(self, deadline: Callable[[K], float | None]) -> None:
        self._deadline = deadline
        self._heap: list[tuple[float, int, K]] = []
        #: key -> the deadline of its live entry
        self._live: dict[K, float] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def enter(self, key: K) -> None:
        """(Re)enter ``key`` at its real deadline (or forget it when it has none)."""
        t = self._deadline(key)
        if t is None:
            self._live.pop(key, None)
        elif self._live.get(key) != t:
            self._live[key] = t
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, key))

    def forget(self, key: K) -> None:
        """``key`` is gone: its entries are dropped when they come to the top."""
        self._live.pop(key, None)

    def top(self) -> float | None:
        """The earliest deadline of any key (None: no key has one); the stale entries in
        front of it are dropped or entered again at their key's real deadline."""
        heap = self._heap
        while heap:
            t, _, key = heap[0]
            if self._live.get(key) != t:
                heapq.heappop(heap)
                continue
            real = self._deadline(key)
            if real == t:
                return t
            heapq.heappop(heap)
            del self._live[key]
            if real is not None:
                self.enter(key)
        return None

    def pop_due(self, now: float) -> list[K]:
        """The keys whose deadline is at or before ``now``, earliest first, each taken
        out (the owner runs their timers, then enters them again)."""
        out: list[K] = []
        while (t := self.top()) is not None and t <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            out.append(key)
        return out
