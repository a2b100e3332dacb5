"""What goes into a data-plane end (:class:`gmpls.dataplane.core.DataplaneEnd`) through
``handle`` and what comes out. The frames themselves do not travel as events: the shell
calls :meth:`~gmpls.dataplane.core.DataplaneEnd.seal` and
:meth:`~gmpls.dataplane.core.DataplaneEnd.open` per frame (the hot path), which count
what they do; ``handle`` takes the control events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gmpls.core import Tick


@dataclass(frozen=True, slots=True)
class InstallKey:
    """The QE service took key ``index`` (the QE core's ``DataplaneKey``)."""

    index: int
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Stop:
    """The service ends here: forget every key."""


Event = InstallKey | Stop | Tick


@dataclass(frozen=True, slots=True)
class Send:
    """Send this QE PDU (header + ciphertext + tag) on the outgoing channel: an
    announcement of the newest key this end can receive."""

    pdu: bytes


@dataclass(frozen=True, slots=True)
class Traffic:
    """Bytes encrypted + decrypted since the last report (the QE core's
    ``DataplaneTraffic``, which drives volume refresh)."""

    nbytes: int


@dataclass(frozen=True, slots=True)
class Log:
    """One log line (never a key byte)."""

    message: str
    fields: Mapping[str, Any]
    warning: bool = False


Action = Send | Traffic | Log

__all__ = ["Action", "Event", "InstallKey", "Log", "Send", "Stop", "Tick", "Traffic"]
