"""The events a :class:`~qkd_proxy.core.ProxyCore` takes and the actions it returns (the
contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`Datagram` (a datagram on one of the three channels) and
:class:`gmpls.core.Tick` (the time of ``next_timer()`` has come). Actions: :class:`Send`
(a datagram to send on a channel) and :class:`Log` (one log line, never key bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from gmpls.core import Tick

Addr = tuple[str, int]


class Channel(Enum):
    NORTH = "north"
    SYNC = "sync"
    SOUTH = "south"


@dataclass(frozen=True, slots=True)
class Datagram:
    """Event: a datagram arrived on ``channel`` from ``addr``."""

    channel: Channel
    data: bytes
    addr: Addr


Event = Datagram | Tick


@dataclass(frozen=True, slots=True)
class Send:
    channel: Channel
    data: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class Log:
    """Something worth one log line; ``fields`` never hold key bytes. ``limited``: a line
    about input that was dropped or refused, which anyone can cause at will: the shell
    writes these rate-limited per event (:mod:`daemonkit.ratelog`); the core's counters
    count every one."""

    event: str
    fields: Mapping[str, Any]
    limited: bool = False


Action = Send | Log

__all__ = ["Action", "Addr", "Channel", "Datagram", "Event", "Log", "Send"]
