"""Log lines about input anyone can send, rate-limited (the logging side of
:class:`gmpls.ratelimit.LogLimiter`).

A daemon writes a line about a dropped, malformed or refused datagram through
:meth:`RateLimitedLog.log`, keyed by its event: the first ``burst`` lines of an event are
written, then ``rate`` a second; a line held back is counted and the count is written with
the next line of that event (``"suppressed": N``) or, when none comes, in a line
``log lines suppressed`` (``reason``, ``suppressed``) at most ``interval`` seconds later,
and at :meth:`close`. The daemons' counters are not touched: they count every datagram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gmpls.ratelimit import LogLimiter

#: the line that reports lines held back when no line of their event came after them
SUPPRESSED = "log lines suppressed"


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        context: Mapping[str, Any] | None = None,
        limiter: LogLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.context = dict(context or {})  # fields of every line (the host)
        self.limiter = limiter or LogLimiter()
        self.clock = clock
        self._timer: asyncio.TimerHandle | None = None

    def log(
        self, level: int, event: str, fields: Mapping[str, Any], exc_info: bool = False
    ) -> None:
        """Write ``event`` with ``fields`` unless its budget is spent (then count it)."""
        held = self.limiter.admit(event, self.clock())
        if held is None:
            self._arm()
            return
        extra = {**self.context, **fields}
        if held:
            extra["suppressed"] = held
        self.logger.log(level, event, extra=extra, exc_info=exc_info)

    def _arm(self) -> None:
        """Have the summaries written when due (needs a running loop; else at close)."""
        at = self.limiter.next_timer()
        if self._timer is not None or at is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, at - self.clock()), self._due)

    def _due(self) -> None:
        self._timer = None
        self._write(self.limiter.summaries(self.clock()))
        self._arm()

    def _write(self, held: list[tuple[str, int]]) -> None:
        for reason, n in held:
            self.logger.warning(
                SUPPRESSED, extra={**self.context, "reason": reason, "suppressed": n}
            )

    def close(self) -> None:
        """Write what is still held back (when the daemon stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._write(self.limiter.flush())
