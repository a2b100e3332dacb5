"""The one timer of a sans-I/O core's asyncio shell.

Every core tells when it next needs the time (``next_timer()``, :mod:`gmpls.core`); its
shell keeps one ``loop.call_at`` armed there, re-armed after every call into the core,
and feeds the core a ``Tick`` when it fires. :class:`CoreTimer` is that timer, for the
OSPF speaker, the RSVP and QE service shells and the key proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CoreTimer:
    """Calls ``fire(at)`` at the time it was last armed for (``at``: asyncio may run a timer
    a clock-resolution early, so a shell tells its core ``max(now, at)``).

    :meth:`arm` does nothing until :meth:`start` gives it the loop, and nothing when the
    timer is already set for that time."""

    __slots__ = ("_at", "_fire", "_handle", "_loop")

    def __init__(self, fire: Callable[[float], None]) -> None:
        self._fire = fire
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def at(self) -> float | None:
        """When it fires; None when it is not armed."""
        return self._at

    def arm(self, at: float | None) -> None:
        """Fire at ``at`` (a loop time) instead of when it was set for; None: not at all."""
        if self._loop is None or (self._handle is not None and at == self._at):
            return
        self.cancel()
        if at is not None:
            self._at = at
            self._handle = self._loop.call_at(at, self._run)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._at = None

    def _run(self) -> None:
        at = self._at
        assert at is not None
        self._handle = None
        self._at = None
        self._fire(at)
