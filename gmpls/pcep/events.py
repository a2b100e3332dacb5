"""The events a PCEP :class:`~gmpls.pcep.session.Session` takes and the actions it
returns (the contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`ConnectionMade` and :class:`ConnectionLost` (TCP), :class:`Received`
(bytes from TCP, any split), :class:`SendMessage` and :class:`CloseSession` (the
application's calls), :class:`gmpls.core.Tick` (the time of ``next_timer()`` has come).

Actions: :class:`Send` (write the bytes), :class:`Deliver` (a message for the
application), :class:`SessionUp`, :class:`Disconnect` (close the TCP connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from gmpls.core import Tick
from gmpls.pcep.constants import CloseReason
from gmpls.pcep.messages import AnyMessage
from gmpls.pcep.objects import OpenObject

# events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionMade:
    """TCP is established (RFC 5440 §6.2): the session sends Open."""


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """TCP is gone: the session goes to Idle."""


@dataclass(frozen=True, slots=True)
class Received:
    """Bytes from TCP, any split."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendMessage:
    """The application sends ``msg`` (PCReq, PCRep, PCNtf, PCErr) on an Up session;
    :meth:`~gmpls.pcep.session.Session.handle` raises RuntimeError when it is not Up."""

    msg: AnyMessage


@dataclass(frozen=True, slots=True)
class CloseSession:
    """The application closes the session (RFC 5440 §6.8) with Close reason ``reason``."""

    reason: int = CloseReason.NO_EXPLANATION


Event = ConnectionMade | ConnectionLost | Received | SendMessage | CloseSession | Tick

# actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes
    msg: AnyMessage


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message for the application (PCReq at a PCE, PCRep/PCNtf/PCErr at a PCC...)."""

    msg: AnyMessage


@dataclass(frozen=True, slots=True)
class SessionUp:
    local: OpenObject
    peer: OpenObject


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the TCP connection; ``reason`` says why, for logs and statistics."""

    reason: str


Action = Send | Deliver | SessionUp | Disconnect

__all__ = [
    "Action",
    "CloseSession",
    "ConnectionLost",
    "ConnectionMade",
    "Deliver",
    "Disconnect",
    "Event",
    "Received",
    "Send",
    "SendMessage",
    "SessionUp",
]
