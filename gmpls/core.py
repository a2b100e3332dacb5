"""The one contract every sans-I/O protocol core keeps (OSPF, PCEP, RSVP-TE, the QE
service, the ETSI 004 proxy, the IDQ3P emulator).

A core never touches a socket, a clock or the event loop. Its shell (in :mod:`daemonkit`
or a daemon package) does three things and nothing else:

1. feeds it one event at a time with the current time: ``actions = core.handle(event, now)``;
2. carries out the actions in order (send bytes, call another service, log a line);
3. re-arms one timer at ``core.next_timer()`` and, when it fires, feeds :class:`Tick`.

Time is always passed in (seconds, any monotonic origin), so tests drive the same core on
a virtual clock. Each protocol keeps its events and actions in a module of their own
(``gmpls/ospf/events.py``, ``gmpls/rsvp/events.py``, ...), in the style of aioquic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

EventT_contra = TypeVar("EventT_contra", contravariant=True)
ActionT = TypeVar("ActionT")


@dataclass(frozen=True, slots=True)
class Tick:
    """Event: time has passed; run whatever is due at ``now``."""


class Core(Protocol[EventT_contra, ActionT]):
    """What a shell may rely on: one entry point for events and one timer to pull."""

    def handle(self, event: EventT_contra, now: float) -> list[ActionT]:
        """Process ``event`` at time ``now``; return the actions to carry out, in order."""
        ...

    def next_timer(self) -> float | None:
        """When :class:`Tick` is next due (absolute, same clock as ``now``); None: never."""
        ...
