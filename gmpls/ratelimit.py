"""How many log lines input that anyone can send may cost (docs/design.md#logs).

A flood of malformed or forged datagrams must not become a flood of log lines. Each
*reason* (a log event such as ``malformed request``) has a token bucket: ``burst`` lines
at once, refilled at ``rate`` lines a second. A line over the budget is not written but
counted; the count goes with the next line written for that reason (``suppressed``), or,
when none comes, into a summary line at most ``interval`` seconds after the first line
held back. This limits lines, not counting: the daemons' counters count every datagram.

Pure: the time is passed in (:mod:`daemonkit.ratelog` is the logging side).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # when ``tokens`` was last brought up to date
    held: int = 0  # lines held back and not reported yet
    held_since: float = 0.0  # when the first of them was held back


class LogLimiter:
    """Per-reason token buckets of log lines (the reasons are the callers' own event
    names, a fixed set: never put an address or other input into a reason)."""

    def __init__(self, rate: float = 2.0, burst: int = 20, interval: float = 10.0) -> None:
        if rate <= 0 or burst < 1 or interval <= 0:
            raise ValueError("rate and interval must be positive, burst at least 1")
        self.rate = rate
        self.burst = burst
        self.interval = interval
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, reason: str, now: float) -> int | None:
        """None: hold this line back (it is counted). Otherwise write it, saying that
        this many lines of ``reason`` were held back before it (0: none)."""
        b = self._buckets.get(reason)
        if b is None:
            b = self._buckets[reason] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens < 1.0:
            if b.held == 0:
                b.held_since = now
            b.held += 1
            return None
        b.tokens -= 1.0
        held, b.held = b.held, 0
        return held

    def summaries(self, now: float) -> list[tuple[str, int]]:
        """(reason, lines held back) for every reason whose oldest unreported line is
        ``interval`` old; those counts are reported now and start again from 0."""
        out = []
        for reason, b in self._buckets.items():
            if b.held and now >= b.held_since + self.interval:
                out.append((reason, b.held))
                b.held = 0
        return out

    def flush(self) -> list[tuple[str, int]]:
        """(reason, lines held back) for every reason with any, reported now (at stop)."""
        out = [(reason, b.held) for reason, b in self._buckets.items() if b.held]
        for b in self._buckets.values():
            b.held = 0
        return out

    def next_timer(self) -> float | None:
        """When :meth:`summaries` next has something to report (None: nothing held)."""
        due = [b.held_since + self.interval for b in self._buckets.values() if b.held]
        return min(due) if due else None
