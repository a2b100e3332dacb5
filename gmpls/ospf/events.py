"""The events an :class:`~gmpls.ospf.router.OspfRouter` takes and the actions it returns
(the contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`Received` (an OSPF packet as received), :class:`InterfaceUp` (with its
:class:`InterfaceConfig`), :class:`InterfaceDown`, :class:`OriginateOpaque`,
:class:`FlushOpaque`, :class:`ProcessUpdates` (work off LSAs a router that defers its
updates holds) and :class:`gmpls.core.Tick` (the time of ``next_timer()`` has come).

Actions: :class:`Send` asks the shell to transmit bytes on an interface to an address
(unicast or 224.0.0.5/6, TTL 1); :class:`LsdbChanged`, :class:`NeighborChanged`,
:class:`InterfaceChanged` and :class:`RoutesChanged` report state changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from gmpls.core import Tick
from gmpls.ospf import spf
from gmpls.ospf.constants import ALL_SPF_ROUTERS, AuType, Options
from gmpls.ospf.fsm import IfState, NbrState
from gmpls.ospf.lsa import LSAKey

# ---------------------------------------------------------------- interface configuration


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Interface authentication (RFC 2328 Appendix D): null, simple password or keyed MD5."""

    autype: int = AuType.NULL
    key: bytes = b""
    key_id: int = 1


@dataclass(frozen=True, slots=True)
class InterfaceConfig:
    """One OSPF interface. ``network_type`` is "broadcast" or "point-to-point"."""

    name: str
    address: IPv4Interface
    network_type: str = "broadcast"
    cost: int = 10
    priority: int = 1
    hello_interval: int = 10
    dead_interval: int = 40
    rxmt_interval: int = 5
    transmit_delay: int = 1
    mtu: int = 1500
    auth: AuthConfig = AuthConfig()
    passive: bool = False  # advertised as a stub network, no Hellos


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Received:
    """An OSPF packet (the IP payload) received on ``ifname`` from ``src`` to ``dst``.
    Bad input never raises: the packet is dropped and counted (RFC 2328 §8.2)."""

    ifname: str
    data: bytes
    src: IPv4Address
    dst: IPv4Address = ALL_SPF_ROUTERS


@dataclass(frozen=True, slots=True)
class InterfaceUp:
    config: InterfaceConfig


@dataclass(frozen=True, slots=True)
class InterfaceDown:
    name: str


@dataclass(frozen=True, slots=True)
class OriginateOpaque:
    """Originate (or change) one of our opaque LSAs; the core keeps its sequence number,
    refreshes it every LSRefreshTime and honours MinLSInterval."""

    ls_type: int
    ls_id: IPv4Address
    body: Any
    options: int = Options.E | Options.O


@dataclass(frozen=True, slots=True)
class FlushOpaque:
    ls_type: int
    ls_id: IPv4Address


@dataclass(frozen=True, slots=True)
class ProcessUpdates:
    """Process the LSAs of up to ``packets`` received LS Updates that a router with
    ``defer_updates`` set holds (:meth:`~gmpls.ospf.router.OspfRouter.updates_waiting`):
    install and flood those still newer than the database's, acknowledge them (RFC 2328
    §13 (5)). The shell says when: a busy one between its other work."""

    packets: int = 1


Event = (
    Received | InterfaceUp | InterfaceDown | OriginateOpaque | FlushOpaque | ProcessUpdates | Tick
)

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    """Transmit ``data`` (an OSPF packet, the IP payload) on ``ifname`` to ``dst``."""

    ifname: str
    dst: IPv4Address
    data: bytes


@dataclass(frozen=True, slots=True)
class LsdbChanged:
    """LSAs installed, replaced or removed (removed: the key is no longer in the LSDB)."""

    keys: tuple[LSAKey, ...]


@dataclass(frozen=True, slots=True)
class NeighborChanged:
    ifname: str
    router_id: IPv4Address
    address: IPv4Address
    old: NbrState
    new: NbrState


@dataclass(frozen=True, slots=True)
class InterfaceChanged:
    ifname: str
    old: IfState
    new: IfState
    dr: IPv4Address
    bdr: IPv4Address


@dataclass(frozen=True, slots=True)
class RoutesChanged:
    routes: dict[IPv4Network, spf.Route]


Action = Send | LsdbChanged | NeighborChanged | InterfaceChanged | RoutesChanged

__all__ = [
    "Action",
    "AuthConfig",
    "Event",
    "FlushOpaque",
    "InterfaceChanged",
    "InterfaceConfig",
    "InterfaceDown",
    "InterfaceUp",
    "LsdbChanged",
    "NeighborChanged",
    "OriginateOpaque",
    "ProcessUpdates",
    "Received",
    "RoutesChanged",
    "Send",
]
