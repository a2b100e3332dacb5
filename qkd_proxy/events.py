"""The events a :class:`~qkd_proxy.core.ProxyCore` takes and the actions it returns (the
contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`Datagram` (a datagram on one of the channels),
:class:`gmpls.core.Tick` (the time of ``next_timer()`` has come), and from the key
manager above a link core (qkd_proxy.km) :class:`RelayOut` and :class:`Greet`. Actions: :class:`Send`
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
    #: KM status requests of the site's nodes (gmpls.qkd.kmstatus, UDP 5425)
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Datagram:
    """Event: a datagram arrived on ``channel`` from ``addr``."""

    channel: Channel
    data: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class RelayOut:
    """Event (from the key manager, qkd_proxy.km): send ``msg`` to the peer on the link's
    KM channel. ``request``: it is given a transaction ID (its own ``txid`` is ignored)
    and retransmitted until answered; the answer, or the failure, comes back through the
    core's ``relay_inbox``. Otherwise it is an answer, sent once."""

    msg: Any
    request: bool = True


@dataclass(frozen=True, slots=True)
class Greet:
    """Event (from the key manager): a HELLO to the peer, so a silent link shows."""


Event = Datagram | Tick | RelayOut | Greet


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

__all__ = ["Action", "Addr", "Channel", "Datagram", "Event", "Greet", "Log", "RelayOut", "Send"]
