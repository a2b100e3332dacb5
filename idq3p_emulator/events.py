"""The events an :class:`~idq3p_emulator.core.Idq3pServer` takes and the actions it returns
(the contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`Datagram` (a request from a client) and :class:`gmpls.core.Tick` (the
server has no timer of its own: ``next_timer()`` is always None). Action: :class:`Send`
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


Action = Send

__all__ = ["Action", "Addr", "Datagram", "Event", "Send"]
