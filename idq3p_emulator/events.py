"""The events an :class:`~idq3p_emulator.core.Idq3pServer` takes and the actions it returns
(the contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`Datagram` (a request from a client) and :class:`gmpls.core.Tick` (the
server has no timer of its own: ``next_timer()`` is always None). Actions: :class:`Persist`
(save the key store's marks, durably, before anything after it is sent) and :class:`Send`
(the answer, to the client's address).
"""

from __future__ import annotations

from dataclasses import dataclass

from gmpls.core import Tick

#: a client's (address, port): the key of the response cache, with the request ID
Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Datagram:
    """A datagram from ``addr``."""

    data: bytes
    addr: Addr


Event = Datagram | Tick


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` to ``addr``."""

    data: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class Persist:
    """Save ``marks`` (an encoded :class:`~idq3p_emulator.store.Marks`: positions, never
    key bytes) durably; the :class:`Send` after it carries keys they cover, so it must not
    go out if saving fails (docs/idq3p.md#restarts)."""

    marks: bytes


Action = Persist | Send

__all__ = ["Action", "Addr", "Datagram", "Event", "Persist", "Send"]
