"""The virtual clock of the in-memory labs: callbacks at virtual times, run in time order
and, at equal times, in the order they were scheduled.

Nothing here reads a real clock: a lab built on :class:`Sim` runs the same way, in the
same order, whatever the machine's load. A protocol core's one deadline (its
``next_timer()``) is an :class:`Alarm`, moved after every ``handle``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class Timer:
    """A callback due at ``at`` (a handle to cancel it)."""

    at: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Sim:
    """A heap of (time, sequence, callback); ``now`` moves only when a callback runs or a
    run ends."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def call_at(self, at: float, fn: Callable[[], None]) -> Timer:
        """Run ``fn`` at ``at`` (at once, after what is already due, if ``at`` has passed)."""
        t = Timer(max(at, self.now), next(self._seq), fn)
        heapq.heappush(self._heap, t)
        return t

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self.call_at(self.now + delay, fn)

    @staticmethod
    def cancel(timer: Timer | None) -> None:
        if timer is not None:
            timer.cancel()

    def run_until(self, predicate: Callable[[], bool], max_seconds: float) -> bool:
        """Run callbacks until ``predicate()`` holds (True) or ``max_seconds`` of virtual
        time pass (False; the clock then stands at the end)."""
        end = self.now + max_seconds
        while not predicate():
            while self._heap and self._heap[0].cancelled:
                heapq.heappop(self._heap)
            if not self._heap or self._heap[0].at > end:
                self.now = end
                return False
            t = heapq.heappop(self._heap)
            self.now = t.at
            t.fn()
        return True

    def run(self, seconds: float) -> None:
        """Run every callback due within the next ``seconds``; the clock ends there."""
        self.run_until(lambda: False, seconds)


class Alarm:
    """One deadline on the clock that moves: ``set(at)`` (None: no deadline). When it is
    due, ``fire(at)`` runs with the deadline that was set."""

    def __init__(self, sim: Sim, fire: Callable[[float], None]) -> None:
        self.sim = sim
        self.fire = fire
        self.at: float | None = None
        self._timer: Timer | None = None

    def set(self, at: float | None) -> None:
        if at == self.at:  # pending at that time already (or none, as asked)
            return
        Sim.cancel(self._timer)
        self._timer = None
        self.at = at
        if at is not None:
            self._timer = self.sim.call_at(at, self._due)

    def _due(self) -> None:
        at = self.at
        assert at is not None
        self._timer = None
        self.at = None
        self.fire(at)
