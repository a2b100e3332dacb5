"""What goes into the QKD link advertiser (:mod:`.core`) and what comes out of it.

Events in: a datagram from the key manager's status port (:class:`KmDatagram`, the raw
bytes: the core decodes and counts what is malformed) and :class:`gmpls.core.Tick`.

Actions out: a KM status request to send (:class:`SendKm`), a QKD link TE LSA to
originate or change (:class:`Originate`) or to flush (:class:`Flush`), and what the
shell logs (:class:`Note`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from gmpls.core import Tick
from gmpls.ospf.qkdlink import QkdLinkTlv


@dataclass(frozen=True, slots=True)
class KmDatagram:
    """A datagram from the KM's status port (a :class:`gmpls.qkd.kmstatus.LinksReply`,
    if all is well)."""

    data: bytes


Event = KmDatagram | Tick


@dataclass(frozen=True, slots=True)
class SendKm:
    """Send this :class:`~gmpls.qkd.kmstatus.LinksRequest` to the KM's status port."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Originate:
    """Originate (or change) the TE LSA ``ls_id`` carrying ``tlv``; ``why`` says what
    changed (``new``, ``state``, ``rate``, ``buffer``, ``stock``, ``km lost``)."""

    ls_id: IPv4Address
    tlv: QkdLinkTlv
    why: str


@dataclass(frozen=True, slots=True)
class Flush:
    """Flush the TE LSA ``ls_id``: the KM no longer reports the link to ``far_site``."""

    ls_id: IPv4Address
    far_site: IPv4Address


@dataclass(frozen=True, slots=True)
class Note:
    """Something for the log (``km_lost``, ``km_back``)."""

    event: str
    detail: str = ""


Action = SendKm | Originate | Flush | Note
