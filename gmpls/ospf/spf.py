"""Shortest-path-first routing table calculation for one area (RFC 2328 §16.1).

Pure function of the LSDB contents and the calculating router's own interfaces. Stage 1
builds the shortest-path tree over router and transit-network vertices (Dijkstra with
the two-way check of §16.1 (2b), equal-cost paths merged); next hops are computed as
§16.1.1 says (directly attached networks, routers on them, point-to-point neighbours,
then inherited). Stage 2 adds the stub networks of each router-LSA. Inter-area and
AS-external routes (§16.2-§16.4) are not computed: a single-area speaker with no ASBRs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from gmpls.ospf.constants import MAX_AGE, LsType, RouterLinkType
from gmpls.ospf.lsa import LSA, NetworkLSA, RouterLSA


@dataclass(frozen=True, slots=True, order=True)
class NextHop:
    """Outgoing interface and the next router's address (None: directly attached)."""

    ifname: str
    address: IPv4Address | None = None


@dataclass(frozen=True, slots=True)
class Route:
    prefix: IPv4Network
    cost: int
    next_hops: frozenset[NextHop]
    area: IPv4Address
    path_type: str = "intra-area"

    @property
    def directly_attached(self) -> bool:
        return any(nh.address is None for nh in self.next_hops)


_AREA0 = IPv4Address(0)
Vertex = tuple[str, IPv4Address]  # ("R", router id) or ("N", DR interface address)


def compute(
    lsas: Iterable[LSA],
    root: IPv4Address,
    interfaces: Iterable[tuple[str, IPv4Interface]],
    neighbor_address: Callable[[str, IPv4Address], IPv4Address | None],
    area: IPv4Address = _AREA0,
) -> dict[IPv4Network, Route]:
    """The routing table: prefix -> :class:`Route`.

    ``interfaces`` are the root's OSPF interfaces (name, address/prefix);
    ``neighbor_address(ifname, router_id)`` gives a point-to-point neighbour's address.
    """
    routers: dict[IPv4Address, RouterLSA] = {}
    networks: dict[IPv4Address, NetworkLSA] = {}
    for a in lsas:
        if a.header.age >= MAX_AGE:
            continue
        if a.header.ls_type == LsType.ROUTER and isinstance(a.body, RouterLSA):
            if a.header.ls_id == a.header.adv_router:
                routers[a.header.adv_router] = a.body
        elif a.header.ls_type == LsType.NETWORK and isinstance(a.body, NetworkLSA):
            networks[a.header.ls_id] = a.body
    ifaces = list(interfaces)

    def iface_for(addr: IPv4Address) -> str | None:
        for name, ifa in ifaces:
            if ifa.ip == addr:
                return name
        for name, ifa in ifaces:
            if addr in ifa.network:
                return name
        return None

    def links_back(w: Vertex, v: Vertex) -> bool:
        if w[0] == "R":
            r = routers.get(w[1])
            if r is None:
                return False
            if v[0] == "R":
                return any(
                    lk.type == RouterLinkType.POINT_TO_POINT and lk.link_id == v[1]
                    for lk in r.links
                )
            return any(lk.type == RouterLinkType.TRANSIT and lk.link_id == v[1] for lk in r.links)
        n = networks.get(w[1])
        return n is not None and v[0] == "R" and v[1] in n.routers

    dist: dict[Vertex, int] = {}
    hops: dict[Vertex, set[NextHop]] = {}
    parent_root: dict[Vertex, bool] = {}  # vertex is a network directly attached to the root
    rootv: Vertex = ("R", root)
    if root not in routers:
        return {}
    best: dict[Vertex, int] = {rootv: 0}
    cand_hops: dict[Vertex, set[NextHop]] = {rootv: set()}
    heap: list[tuple[int, int, Vertex]] = [(0, 0, rootv)]
    while heap:
        d, _, v = heapq.heappop(heap)
        if v in dist:
            continue
        dist[v] = d
        hops[v] = cand_hops.get(v, set())
        edges: list[tuple[Vertex, int, IPv4Address | None]] = []
        if v[0] == "R":
            for lk in routers[v[1]].links:
                if lk.type == RouterLinkType.POINT_TO_POINT:
                    edges.append((("R", lk.link_id), lk.metric, lk.link_data))
                elif lk.type == RouterLinkType.TRANSIT:
                    edges.append((("N", lk.link_id), lk.metric, lk.link_data))
        else:
            for rid in networks[v[1]].routers:
                edges.append((("R", rid), 0, None))
        for w, cost, link_data in edges:
            if w in dist:
                continue
            if w[0] == "R" and w[1] not in routers:
                continue
            if w[0] == "N" and w[1] not in networks:
                continue
            if not links_back(w, v):
                continue
            nd = d + cost
            # next hops, §16.1.1
            nh: set[NextHop]
            if v == rootv:
                ifname = iface_for(link_data) if link_data is not None else None
                if ifname is None:
                    continue
                if w[0] == "N":
                    nh = {NextHop(ifname)}
                    parent_root[w] = True
                else:
                    nh = {NextHop(ifname, neighbor_address(ifname, w[1]))}
            elif v[0] == "N" and parent_root.get(v):
                # a router on a network directly attached to the root: its address there
                ifname = next(iter(hops[v])).ifname
                addr = None
                for lk in routers[w[1]].links:
                    if lk.type == RouterLinkType.TRANSIT and lk.link_id == v[1]:
                        addr = lk.link_data
                        break
                nh = {NextHop(ifname, addr)}
            else:
                nh = set(hops[v])
            old = best.get(w)
            if old is None or nd < old:
                best[w] = nd
                cand_hops[w] = nh
                # networks before routers at equal distance (§16.1 (3))
                heapq.heappush(heap, (nd, 0 if w[0] == "N" else 1, w))
            elif nd == old:
                cand_hops[w] = cand_hops[w] | nh
    routes: dict[IPv4Network, Route] = {}

    def add(prefix: IPv4Network, cost: int, nh: Iterable[NextHop]) -> None:
        cur = routes.get(prefix)
        nhs = frozenset(nh)
        if cur is None or cost < cur.cost:
            routes[prefix] = Route(prefix, cost, nhs, area)
        elif cost == cur.cost:
            routes[prefix] = Route(prefix, cost, cur.next_hops | nhs, area)

    for v, d in dist.items():
        if v[0] == "N":
            n = networks[v[1]]
            prefix = IPv4Network((int(v[1]) & int(n.mask), str(n.mask)), strict=False)
            add(prefix, d, hops[v])
    # stage 2: stub networks (§16.1 (2) second stage)
    for v, d in dist.items():
        if v[0] != "R":
            continue
        for lk in routers[v[1]].links:
            if lk.type != RouterLinkType.STUB:
                continue
            try:
                prefix = IPv4Network(
                    (int(lk.link_id) & int(lk.link_data), str(lk.link_data)), strict=False
                )
            except ValueError:
                continue  # a mask that is not a prefix length: ignore the link
            if v == rootv:
                ifname = iface_for(prefix.network_address) or ""
                add(prefix, d + lk.metric, {NextHop(ifname)})
            else:
                add(prefix, d + lk.metric, hops[v])
    return routes
