"""The traffic-engineering database (TED) of the PCE, built from OSPF LSAs.

Sources (all area-scope, decoded by :mod:`gmpls.ospf`):

- Router LSAs (RFC 2328 §A.4.2) and Network LSAs (§A.4.3): the control-plane graph. A TE
  node counts as alive only while it is reachable from the PCE's own router over two-way
  links (the SPF rule of RFC 2328 §16.1), so a stopped node disappears from path
  computation as soon as its neighbours' Router LSAs and the DR's Network LSA drop it,
  without waiting an hour for its own LSAs to age out. With no ``root`` (unit tests,
  offline use) every node is alive.
- Router Information LSAs (RFC 7770, opaque type 4): the TE bit and the QE bit of the
  Informational Capabilities TLV (docs/design.md#router-information-capability-bits).
- TE LSAs (RFC 3630, opaque type 1): the Router Address TLV and Link TLVs with the
  RFC 4203 link local/remote identifiers, TE metric, maximum/maximum reservable/unreserved
  bandwidth, switching capability and available wavelengths (RFC 7580-style label set of
  RFC 6205 DWDM channels, docs/ospf-te.md). Several TLVs per LSA are accepted (FRR).
- QKD-link TLVs (:mod:`gmpls.ospf.qkdlink`, in TE LSAs of their own): each site node's
  QKD links with their key rate, stock, buffer and state, merged into the QKD site graph
  of :meth:`Ted.qkd_graph` (:mod:`pce.keyroute`). A malformed one is counted in
  :attr:`Ted.unusable` and left out. Their changes bump :attr:`Ted.qkd_version`, not
  :attr:`Ted.version`, so a stock re-advertisement does not rebuild the TE graph.

Updates are incremental: :meth:`Ted.install` and :meth:`Ted.flush` replace or remove one
LSA's contribution and bump :attr:`Ted.version`; consumers (the path computation's
compiled graph) rebuild lazily when the version changed.

Every TE LSA instance installed (or flushed) also stamps the TE links it describes with a
new number, whether or not their content changed (:meth:`Ted.te_stamp`): the stateful
PCE's lambda ledger frees the lambdas of an LSP its head reported removed only until a TE
LSA newer than the removal describes the link (:mod:`pce.lspdb`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from gmpls.errors import DecodeError
from gmpls.ospf.constants import MAX_AGE, LsType, OpaqueType, RouterLinkType
from gmpls.ospf.lsa import LSA, LSAKey, NetworkLSA, RouterLSA
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_links
from gmpls.ospf.ri import RouterInfoLSA
from gmpls.ospf.te import (
    AdminGroup,
    AvailableLabels,
    LinkId,
    LinkLocalRemoteIds,
    MaxBandwidth,
    MaxReservableBandwidth,
    SwitchingCapability,
    TeLSA,
    TeMetric,
    UnreservedBandwidth,
)
from pce.keyroute import QkdGraph


@dataclass(frozen=True, slots=True)
class TeLink:
    """One direction of a TE link as its advertising router describes it."""

    router: IPv4Address
    local_id: int
    remote_router: IPv4Address
    remote_id: int
    metric: int
    max_bandwidth: float  # bytes/s (RFC 3630 §2.5.6)
    max_reservable: float
    unreserved: tuple[float, ...] = ()
    #: available DWDM channel indices n (RFC 6205); None when the link advertises no labels
    channels: tuple[int, ...] | None = None
    switching_cap: int | None = None
    #: RFC 3630 §2.5.9 administrative group bit mask (0 when not advertised)
    admin_groups: int = 0

    @property
    def key(self) -> tuple[IPv4Address, int]:
        return (self.router, self.local_id)

    @property
    def available_bandwidth(self) -> float:
        """Bandwidth a new LSP may take: unreserved at the lowest priority (7), else the
        maximum reservable bandwidth."""
        return self.unreserved[-1] if self.unreserved else self.max_reservable

    def as_json(self) -> dict[str, Any]:
        return {
            "from": f"{self.router}:{self.local_id}",
            "to": f"{self.remote_router}:{self.remote_id}",
            "te_metric": self.metric,
            "max_bandwidth_bps": self.max_bandwidth * 8,
            "available_bandwidth_bps": self.available_bandwidth * 8,
            "channels": list(self.channels) if self.channels is not None else None,
        }


@dataclass(frozen=True, slots=True)
class TedNode:
    router_id: IPv4Address
    te: bool
    qe: bool
    router_address: IPv4Address | None
    links: tuple[TeLink, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "router_id": str(self.router_id),
            "te_capable": self.te,
            "qe_capable": self.qe,
            "router_address": str(self.router_address) if self.router_address else None,
            "links": [link.as_json() for link in self.links],
        }


@dataclass(slots=True)
class _TeContribution:
    router_address: IPv4Address | None
    links: list[TeLink] = field(default_factory=list)


def _segment_of(
    segments: list[tuple[IPv4Network, set[IPv4Address]]], address: IPv4Address
) -> tuple[IPv4Network, set[IPv4Address]] | None:
    return next((seg for seg in segments if address in seg[0]), None)


def te_links_of(lsa: LSA) -> _TeContribution:
    """The Router Address and TE links one TE LSA carries (RFC 3630 §2.4, RFC 4203 §1)."""
    body = lsa.body
    assert isinstance(body, TeLSA)
    router = lsa.header.adv_router
    out = _TeContribution(body.router_address)
    for link in body.links:
        lid = link.find(LinkId)
        ids = link.find(LinkLocalRemoteIds)
        if lid is None or ids is None:
            continue  # numbered or incomplete links: not part of this unnumbered TE network
        metric = link.find(TeMetric)
        maxbw = link.find(MaxBandwidth)
        maxres = link.find(MaxReservableBandwidth)
        unres = link.find(UnreservedBandwidth)
        labels = link.find(AvailableLabels)
        iscd = link.find(SwitchingCapability)
        groups = link.find(AdminGroup)
        out.links.append(
            TeLink(
                router=router,
                local_id=ids.local_id,
                remote_router=lid.link_id,
                remote_id=ids.remote_id,
                metric=metric.metric if metric is not None else 1,
                max_bandwidth=maxbw.bandwidth if maxbw is not None else 0.0,
                max_reservable=maxres.bandwidth
                if maxres is not None
                else (maxbw.bandwidth if maxbw else 0.0),
                unreserved=tuple(unres.bandwidths) if unres is not None else (),
                channels=labels.channels() if labels is not None else None,
                switching_cap=iscd.switching_cap if iscd is not None else None,
                admin_groups=groups.groups if groups is not None else 0,
            )
        )
    return out


class Ted:
    """The TED: fed LSA installs and flushes, asked for alive TE nodes and links."""

    def __init__(self, root: IPv4Address | None = None) -> None:
        #: the PCE's own OSPF router ID; reachability is computed from it when set
        self.root = root
        self.version = 0
        self._router: dict[IPv4Address, RouterLSA] = {}
        self._network: dict[LSAKey, NetworkLSA] = {}
        self._ri: dict[LSAKey, tuple[bool, bool]] = {}
        self._te: dict[LSAKey, _TeContribution] = {}
        self._qkd: dict[LSAKey, tuple[QkdLinkTlv, ...]] = {}
        self._qkd_graph: tuple[tuple[int, int], QkdGraph] | None = None
        #: bumped by QKD-link changes only, so that a stock re-advertisement does not make
        #: the path computation rebuild its TE graph (:attr:`version` stays)
        self.qkd_version = 0
        self._alive: set[IPv4Address] | None = None
        self._alive_version = -1
        self.installs = 0
        self.flushes = 0
        #: LSAs whose body did not decode (stored and flooded by OSPF, not used here)
        self.unusable = 0
        #: per TE link (router, local interface): the number of the last TE LSA instance
        #: that described or withdrew it (:meth:`te_stamp`), and where it leads
        self._te_instances = 0
        self._stamps: dict[tuple[IPv4Address, int], int] = {}
        self._remote: dict[tuple[IPv4Address, int], tuple[IPv4Address, int]] = {}

    # -- updates -----------------------------------------------------------------------

    def install(self, lsa: LSA) -> bool:
        """Take in a newly installed LSA instance (a MaxAge one is a flush). Returns True
        when the TED changed."""
        h = lsa.header
        if h.age >= MAX_AGE:
            return self.flush(lsa.key)
        body = lsa.body
        changed = False
        if not lsa.usable:
            self.unusable += 1
        if h.ls_type == LsType.ROUTER and isinstance(body, RouterLSA):
            changed = self._router.get(h.adv_router) != body
            self._router[h.adv_router] = body
        elif h.ls_type == LsType.NETWORK and isinstance(body, NetworkLSA):
            changed = self._network.get(lsa.key) != body
            if changed:  # kept in install order (see _segments)
                self._network.pop(lsa.key, None)
                self._network[lsa.key] = body
        elif h.ls_type == LsType.OPAQUE_AREA and isinstance(body, RouterInfoLSA):
            caps = (body.te_capable, body.qe_capable)
            changed = self._ri.get(lsa.key) != caps
            self._ri[lsa.key] = caps
        elif h.ls_type == LsType.OPAQUE_AREA and isinstance(body, TeLSA):
            qkd_changed = self._install_qkd(lsa.key, body)
            if lsa.key in self._qkd:  # a QKD-link LSA describes no TE link
                gone = self._te.pop(lsa.key, None)
                self._stamp(gone.links if gone is not None else ())
                return self._changed(gone is not None) or qkd_changed
            contrib = te_links_of(lsa)
            old = self._te.get(lsa.key)
            self._stamp([*(old.links if old is not None else ()), *contrib.links])
            changed = old is None or (old.router_address, old.links) != (
                contrib.router_address,
                contrib.links,
            )
            self._te[lsa.key] = contrib
            changed = self._changed(changed)
            return changed or qkd_changed
        return self._changed(changed)

    def _stamp(self, links: Iterable[TeLink]) -> None:
        """A TE LSA instance describes (or withdraws) ``links``: they get a new stamp."""
        self._te_instances += 1
        for lk in links:
            self._stamps[lk.key] = self._te_instances
            self._remote[lk.key] = (lk.remote_router, lk.remote_id)

    def _changed(self, changed: bool) -> bool:
        if changed:
            self.installs += 1
            self.version += 1
        return changed

    def _install_qkd(self, key: LSAKey, body: TeLSA) -> bool:
        """Take the QKD-link TLVs of a TE LSA (none: any earlier ones of this LSA go)."""
        try:
            found = qkd_links(body)
        except DecodeError:
            self.unusable += 1
            found = ()
        if not found:
            changed = self._qkd.pop(key, None) is not None
        else:
            changed = self._qkd.get(key) != found
            self._qkd[key] = found
        if changed:
            self.qkd_version += 1
            self.installs += 1
        return changed

    def flush(self, key: LSAKey) -> bool:
        """Remove the contribution of the LSA with ``key`` (flushed or aged out)."""
        removed: Any = None
        if key.ls_type == LsType.ROUTER:
            if key.ls_id == key.adv_router:
                removed = self._router.pop(key.adv_router, None)
        elif key.ls_type == LsType.NETWORK:
            removed = self._network.pop(key, None)
        elif key.ls_type == LsType.OPAQUE_AREA:
            otype = int(key.ls_id) >> 24
            if otype == OpaqueType.RI:
                removed = self._ri.pop(key, None)
            elif otype == OpaqueType.TE:
                removed = self._te.pop(key, None)
                self._stamp(removed.links if removed is not None else ())
                if self._qkd.pop(key, None) is not None:
                    self.qkd_version += 1
                    if removed is None:
                        self.flushes += 1
                        return True
        if removed is None:
            return False
        self.flushes += 1
        self.version += 1
        return True

    def load(self, lsas: Iterable[LSA]) -> None:
        for lsa in lsas:
            self.install(lsa)

    # -- queries -----------------------------------------------------------------------

    def te_stamp(self, link: tuple[IPv4Address, int]) -> int:
        """The stamp of the last TE LSA instance that described or withdrew ``link``
        (router ID, local interface ID): it grows with every such instance installed,
        even one that says the same; 0 when none has."""
        return self._stamps.get(link, 0)

    def reverse_of(self, link: tuple[IPv4Address, int]) -> tuple[IPv4Address, int] | None:
        """The other direction of ``link`` (its remote router and interface), as the last
        TE LSA describing it says; None when none has."""
        return self._remote.get(link)

    def alive(self) -> set[IPv4Address] | None:
        """Routers reachable from :attr:`root` over two-way links; None = no filtering."""
        if self.root is None:
            return None
        if self._alive_version == self.version and self._alive is not None:
            return self._alive
        segments = self._segments()

        def neighbours(r: IPv4Address) -> Iterable[IPv4Address]:
            body = self._router.get(r)
            if body is None:
                return
            for link in body.links:
                if link.type == RouterLinkType.POINT_TO_POINT:
                    other = self._router.get(link.link_id)
                    if other is not None and any(
                        lk.type == RouterLinkType.POINT_TO_POINT and lk.link_id == r
                        for lk in other.links
                    ):
                        yield link.link_id
                elif link.type == RouterLinkType.TRANSIT:
                    seg = _segment_of(segments, link.link_id)
                    if seg is None or r not in seg[1]:
                        continue
                    yield from (m for m in seg[1] if self._attached(m, seg[0]))

        seen = {self.root}
        todo = [self.root]
        while todo:
            r = todo.pop()
            for n in neighbours(r):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        self._alive = seen
        self._alive_version = self.version
        return seen

    def _segments(self) -> list[tuple[IPv4Network, set[IPv4Address]]]:
        """Each transit LAN (the subnet of its Network LSAs) and the routers attached to
        it: those listed by the Network LSA of the DR the root itself names on that LAN
        (its own Router LSA), else by the Network LSA installed last. During a DR change
        the dead DR's Network LSA stays in the database until it ages out, and the others
        re-originate their Router LSAs one by one: the LAN is one vertex throughout."""
        named = set()
        root = self._router.get(self.root) if self.root is not None else None
        for link in root.links if root is not None else ():
            if link.type == RouterLinkType.TRANSIT:
                named.add(link.link_id)
        current: dict[IPv4Network, tuple[bool, set[IPv4Address]]] = {}
        for key, net in self._network.items():  # in install order
            subnet = IPv4Network(f"{key.ls_id}/{net.mask}", strict=False)
            mine = key.ls_id in named
            if mine or not current.get(subnet, (False, set()))[0]:
                current[subnet] = (mine, set(net.routers) | {key.adv_router})
        return [(subnet, members) for subnet, (_, members) in current.items()]

    def _attached(self, router: IPv4Address, subnet: IPv4Network) -> bool:
        """Whether ``router``'s Router LSA has a transit link into ``subnet`` (naming
        whichever DR it last saw)."""
        body = self._router.get(router)
        return body is not None and any(
            lk.type == RouterLinkType.TRANSIT and lk.link_id in subnet for lk in body.links
        )

    def nodes(self) -> dict[IPv4Address, TedNode]:
        """The alive TE nodes: routers that advertise TE (RI TE bit, or TE LSAs)."""
        alive = self.alive()
        caps: dict[IPv4Address, tuple[bool, bool]] = {}
        for key, (te, qe) in self._ri.items():
            old = caps.get(key.adv_router, (False, False))
            caps[key.adv_router] = (old[0] or te, old[1] or qe)
        addr: dict[IPv4Address, IPv4Address | None] = {}
        links: dict[IPv4Address, list[TeLink]] = {}
        for key, contrib in self._te.items():
            r = key.adv_router
            if contrib.router_address is not None or r not in addr:
                addr[r] = contrib.router_address or addr.get(r)
            links.setdefault(r, []).extend(contrib.links)
        out: dict[IPv4Address, TedNode] = {}
        for r in sorted(set(caps) | set(addr)):
            if alive is not None and r not in alive:
                continue
            te, qe = caps.get(r, (False, False))
            if not (te or r in addr):
                continue
            out[r] = TedNode(
                r,
                te or r in addr,
                qe,
                addr.get(r),
                tuple(sorted(links.get(r, []), key=lambda lk: lk.local_id)),
            )
        return out

    def links(self) -> list[TeLink]:
        """Usable TE links: both ends alive TE nodes and the reverse direction advertised
        (the two-way check of RFC 2328 §16.1 (2) applied to TE links)."""
        nodes = self.nodes()
        by_key = {lk.key: lk for n in nodes.values() for lk in n.links}
        out = []
        for lk in by_key.values():
            back = by_key.get((lk.remote_router, lk.remote_id))
            if back is not None and back.remote_router == lk.router and lk.remote_router in nodes:
                out.append(lk)
        return out

    def igp_costs(self) -> dict[tuple[IPv4Address, IPv4Address], int]:
        """The OSPF cost from a router to a point-to-point neighbour (RFC 2328 §A.4.2, the
        lowest of parallel links): the IGP metric of the TE links between the two, when
        the IGP runs over them. TE links over which no adjacency runs have none."""
        out: dict[tuple[IPv4Address, IPv4Address], int] = {}
        for r, body in self._router.items():
            for link in body.links:
                if link.type == RouterLinkType.POINT_TO_POINT:
                    key = (r, link.link_id)
                    out[key] = min(out.get(key, link.metric), link.metric)
        return out

    def resolve(self, address: IPv4Address) -> IPv4Address | None:
        """The router ID of the TE node named by a router ID or TE router address."""
        nodes = self.nodes()
        if address in nodes:
            return address
        for n in nodes.values():
            if n.router_address == address:
                return n.router_id
        return None

    def qkd_graph(self) -> QkdGraph:
        """The QKD site graph from the QKD-link TLVs of alive routers (rebuilt when the
        TED changed)."""
        stamp = (self.version, self.qkd_version)
        if self._qkd_graph is not None and self._qkd_graph[0] == stamp:
            return self._qkd_graph[1]
        alive = self.alive()
        ads = [
            ad
            for key, found in self._qkd.items()
            if alive is None or key.adv_router in alive
            for ad in found
            if ad.local_site == key.adv_router
        ]
        graph = QkdGraph.from_ads(ads)
        self._qkd_graph = (stamp, graph)
        return graph

    def as_json(self) -> dict[str, Any]:
        nodes = self.nodes()
        return {
            "version": self.version,
            "nodes": [n.as_json() for n in nodes.values()],
            "usable_links": len(self.links()),
            "ospf_routers": len(self._router),
        }
