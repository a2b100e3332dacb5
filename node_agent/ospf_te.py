"""The node agent's OSPF-TE: the :class:`daemonkit.ospf.OspfSpeaker` on the node's control
interface, plus what a GMPLS node advertises about itself (docs/ospf-te.md):

- the Router Information LSA: the TE bit, and the QE bit when the topology says
  ``qe.capable`` (capabilities 0x12000000);
- the TE Router Address LSA and one TE LSA per TE link of the topology (RFC 3630 + RFC
  4203 sub-TLVs + available wavelengths);
- :meth:`OspfTeAgent.set_link_resources` changes a TE link's advertised resources (RSVP
  calls it when it reserves or frees a wavelength) and re-originates its TE LSA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from daemonkit.ospf import OspfSpeaker, find_interface, ospf_interfaces
from gmpls.ospf.constants import LsType
from gmpls.ospf.events import Action, FlushOpaque, InterfaceConfig
from gmpls.ospf.lsa import LSAKey
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import RouterAddress, TeLinkParams, TeLSA, link_tlv, te_lsa_id
from gmpls.topology import Topology
from gmpls.units import bps_text

log = logging.getLogger("node_agent.ospf_te")


@dataclass(frozen=True, slots=True)
class TeLinkState:
    """What we advertise about one TE link (docs/ospf-te.md); bandwidths in bytes per
    second."""

    local_if: int
    remote_router: IPv4Address
    remote_if: int
    metric: int
    max_bandwidth: float
    max_reservable: float
    unreserved: tuple[float, ...]
    lambdas: tuple[int, ...]  # available DWDM channels (RFC 6205 n)

    def params(self) -> TeLinkParams:
        return TeLinkParams(
            local_id=self.local_if,
            remote_id=self.remote_if,
            remote_router=self.remote_router,
            te_metric=self.metric,
            max_bandwidth=self.max_bandwidth,
            max_reservable=self.max_reservable,
            unreserved=self.unreserved,
            channels=self.lambdas,
        )


class OspfTeAgent(OspfSpeaker):
    """OSPF-TE on one node's control interface."""

    def __init__(
        self,
        router: OspfRouter,
        iface: InterfaceConfig | Sequence[InterfaceConfig],
        *,
        qe_capable: bool = False,
        te_links: Sequence[TeLinkState] = (),
        on_action: Callable[[Action], None] | None = None,
    ) -> None:
        super().__init__(router, iface, on_action=on_action)
        self.qe_capable = qe_capable
        self.te_links: dict[int, TeLinkState] = {t.local_if: t for t in te_links}

    @classmethod
    def from_topology(
        cls,
        topo: Topology,
        host: str,
        *,
        interface: tuple[str, IPv4Interface, int] | None = None,
        on_action: Callable[[Action], None] | None = None,
    ) -> OspfTeAgent:
        """The agent of ``host``: router ID, the control interface (looked up by its
        address unless given), the topology's OSPF timers, QE capability, TE links; the
        host's other interfaces are advertised as stub networks (RFC 2328 §12.4.1.4)."""
        h = topo.host(host)
        assert h.router_id is not None, f"{host} has no router ID"
        speaks = topo.ospf_domains(host)
        names = {
            IPv4Network(f"{a}/{topo.domains[d].subnet.prefixlen}", strict=False): _local_name(a, d)
            for d, a in sorted(h.interfaces.items())
            if d not in speaks
        }
        stubs = tuple((net, 10) for net in names)
        router = OspfRouter(
            h.router_id, topo.ospf.area, stub_networks=stubs, name=host, **topo.ospf.router_timers()
        )
        router.stub_names = names
        cfg = ospf_interfaces(topo, host, interface)
        links = []
        for t in topo.te_links_of(host):
            bw = t.bandwidth_mbps * 1e6 / 8
            links.append(
                TeLinkState(
                    t.local_if,
                    t.remote_router_id,
                    t.remote_if,
                    t.metric,
                    bw,
                    bw,
                    (bw,) * 8,
                    tuple(t.lambdas),
                )
            )
        return cls(router, cfg, qe_capable=h.qe.capable, te_links=links, on_action=on_action)

    async def start(self) -> None:
        """Open the socket and bring the interface up, then originate the RI LSA, the TE
        Router Address LSA and a TE LSA per link."""
        await super().start()
        self._originate_ri()
        self.originate_opaque(
            LsType.OPAQUE_AREA, te_lsa_id(0), TeLSA((RouterAddress(self.router.router_id),))
        )
        for local_if in sorted(self.te_links):
            self._originate_te(local_if)

    def set_link_resources(
        self,
        local_if: int,
        *,
        max_reservable: float | None = None,
        unreserved: Sequence[float] | None = None,
        available_lambdas: Sequence[int] | None = None,
        metric: int | None = None,
    ) -> None:
        """Change what the TE LSA of link ``local_if`` says and re-originate it (with the
        next sequence number, no sooner than MinLSInterval after the last one).
        Bandwidths in bytes per second (RFC 3630); ``available_lambdas`` are the free
        DWDM channel indices."""
        t = self.te_links.get(local_if)
        if t is None:
            raise KeyError(f"no TE link with local interface ID {local_if}")
        if unreserved is not None and len(unreserved) != 8:
            raise ValueError("unreserved bandwidth needs 8 priorities")
        t = replace(
            t,
            max_reservable=t.max_reservable if max_reservable is None else float(max_reservable),
            unreserved=t.unreserved if unreserved is None else tuple(float(x) for x in unreserved),
            lambdas=t.lambdas if available_lambdas is None else tuple(sorted(available_lambdas)),
            metric=t.metric if metric is None else metric,
        )
        self.te_links[local_if] = t
        if log.isEnabledFor(logging.DEBUG):  # twice per LSP and hop: the TE LSA says it
            log.debug(
                "te link resources",
                extra={
                    "node": self.router.name,
                    "event": "te_link",
                    "local_if": local_if,
                    "lambdas": list(t.lambdas),
                    "max_reservable": t.max_reservable,
                },
            )
        self._originate_te(local_if)

    def flush_opaque(self, ls_type: int, ls_id: IPv4Address) -> None:
        """Stop originating one of our opaque LSAs and flush it from the area (MaxAge)."""
        self._apply(self.router.handle(FlushOpaque(ls_type, ls_id), self.now()))

    def set_qe_capable(self, capable: bool) -> None:
        self.qe_capable = capable
        self._originate_ri()

    def te_lsa_key(self, local_if: int) -> LSAKey:
        return LSAKey(LsType.OPAQUE_AREA, te_lsa_id(local_if), self.router.router_id)

    def _originate_ri(self) -> None:
        body = RouterInfoLSA((capabilities(te=True, qe_capable=self.qe_capable),))
        self.originate_opaque(LsType.OPAQUE_AREA, ri_lsa_id(0), body)

    def _originate_te(self, local_if: int) -> None:
        t = self.te_links[local_if]
        self.originate_opaque(
            LsType.OPAQUE_AREA, te_lsa_id(local_if), TeLSA((link_tlv(t.params()),))
        )


def _local_name(address: IPv4Address, domain: str) -> str:
    """The local interface holding ``address``; the domain's name where none does (a
    test that runs the agent outside its namespace)."""
    try:
        return find_interface(address)[0]
    except LookupError:
        return domain


def register_te_commands(table: Any, agent: OspfTeAgent) -> None:
    """Register ``show ip ospf te-link`` (with its ``json`` form) into a
    :class:`daemonkit.cli.CommandTable`."""
    table.register(
        "show ip ospf te-link",
        lambda args: {
            str(t.local_if): {
                "remoteRouter": str(t.remote_router),
                "remoteInterfaceId": t.remote_if,
                "teMetric": t.metric,
                "maxBandwidth": t.max_bandwidth,
                "maxReservableBandwidth": t.max_reservable,
                "unreservedBandwidth": list(t.unreserved),
                "availableLambdas": list(t.lambdas),
            }
            for t in agent.te_links.values()
        },
        "this node's TE links as advertised",
        text=te_links_text,
    )


def te_links_text(data: dict[str, Any]) -> str:
    """``show ip ospf te-link``: one line per link, bandwidths in bit/s."""
    if not data:
        return "no TE links"
    lines = [
        f"{'link':<5} {'remote router':<15} {'rif':>4} {'metric':>6} {'max bw':>10} "
        f"{'reservable':>10} {'unreserved':>10}  lambdas"
    ]
    for lid, t in data.items():
        un = t["unreservedBandwidth"][0] if t["unreservedBandwidth"] else 0.0
        lam = ",".join(map(str, t["availableLambdas"])) or "none"
        lines.append(
            f"{lid:<5} {t['remoteRouter']:<15} {t['remoteInterfaceId']:>4} {t['teMetric']:>6} "
            f"{bps_text(t['maxBandwidth'] * 8):>10} {bps_text(t['maxReservableBandwidth'] * 8):>10} "
            f"{bps_text(un * 8):>10}  {lam}"
        )
    return "\n".join(lines)
