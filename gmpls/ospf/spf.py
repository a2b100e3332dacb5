"""Shortest-path-first routing table calculation for one area (RFC 2328 §16.1).

Pure function of the LSDB contents and the calculating router's own interfaces. Stage 1
builds the shortest-path tree over router and transit-network vertices (Dijkstra with
the two-way check of §16.1 (2b), equal-cost paths merged); next hops are computed as
§16.1.1 says (directly attached networks, routers on them, point-to-point neighbours,
then inherited). Stage 2 adds the stub networks of each router-LSA. Inter-area and
AS-external routes (§16.2-§16.4) are not computed: a single-area speaker with no ASBRs.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from gmpls.ospf.constants import MAX_AGE, LsType, RouterLinkType
from gmpls.ospf.lsa import LSA, NetworkLSA, RouterLSA


@functools.lru_cache(maxsize=1 << 16)
def _prefix(address: int, mask: int) -> IPv4Network | None:
    """The network of ``address`` under ``mask`` (None: a mask that is not a prefix
    length). Every route computation of every router asks for the same few thousand: one
    IPv4Network each, made once per process (a pack's routers share them)."""
    try:
        return IPv4Network((address & mask, str(IPv4Address(mask))), strict=False)
    except ValueError:
        return None


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
    stub_names: Mapping[IPv4Network, str] | None = None,
) -> dict[IPv4Network, Route]:
    """The routing table: prefix -> :class:`Route`.

    ``interfaces`` are the root's OSPF interfaces (name, address/prefix);
    ``neighbor_address(ifname, router_id)`` gives a point-to-point neighbour's address;
    ``stub_names`` names the root's interfaces on its stub networks that run no OSPF.
    """
    routers, networks = _usable_lsas(lsas)
    ifaces = list(interfaces)
    if root not in routers:
        return {}
    spf = _Spf(routers, networks, ("R", root), ifaces, neighbor_address)
    spf.shortest_path_tree()
    table = _Table(area)
    spf.add_transit_networks(table)
    spf.add_stub_networks(table, stub_names or {})
    return table.routes


def _usable_lsas(
    lsas: Iterable[LSA],
) -> tuple[dict[IPv4Address, RouterLSA], dict[IPv4Address, NetworkLSA]]:
    """The router-LSAs (by router ID) and network-LSAs (by DR address) the calculation
    looks at: MaxAge LSAs are left out (§16.1), and so is a router-LSA whose Link State ID
    is not its Advertising Router."""
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
    return routers, networks


class _Table:
    """The routing table being built: the cheapest route per prefix, equal-cost next
    hops merged."""

    __slots__ = ("area", "routes")

    def __init__(self, area: IPv4Address) -> None:
        self.area = area
        self.routes: dict[IPv4Network, Route] = {}

    def add(self, prefix: IPv4Network, cost: int, nh: Iterable[NextHop]) -> None:
        cur = self.routes.get(prefix)
        nhs = frozenset(nh)
        if cur is None or cost < cur.cost:
            self.routes[prefix] = Route(prefix, cost, nhs, self.area)
        elif cost == cur.cost:
            self.routes[prefix] = Route(prefix, cost, cur.next_hops | nhs, self.area)


class _Spf:
    """One run of §16.1 over an area's router- and network-LSAs, rooted at the
    calculating router (``root``, a router vertex present in ``routers``)."""

    __slots__ = (
        "dist",
        "hops",
        "ifaces",
        "neighbor_address",
        "networks",
        "parent_root",
        "root",
        "routers",
    )

    def __init__(
        self,
        routers: dict[IPv4Address, RouterLSA],
        networks: dict[IPv4Address, NetworkLSA],
        root: Vertex,
        ifaces: list[tuple[str, IPv4Interface]],
        neighbor_address: Callable[[str, IPv4Address], IPv4Address | None],
    ) -> None:
        self.routers = routers
        self.networks = networks
        self.root = root
        self.ifaces = ifaces
        self.neighbor_address = neighbor_address
        #: the shortest-path tree: each vertex's distance from the root and next hops
        self.dist: dict[Vertex, int] = {}
        self.hops: dict[Vertex, set[NextHop]] = {}
        #: the transit networks directly attached to the root
        self.parent_root: dict[Vertex, bool] = {}

    def iface_for(self, addr: IPv4Address) -> str | None:
        """The root's interface with address ``addr``, else the first one on its subnet."""
        for name, ifa in self.ifaces:
            if ifa.ip == addr:
                return name
        for name, ifa in self.ifaces:
            if addr in ifa.network:
                return name
        return None

    def links_back(self, w: Vertex, v: Vertex) -> bool:
        """§16.1 (2b): the LSA of ``w`` has a link back to ``v``."""
        if w[0] == "R":
            r = self.routers.get(w[1])
            if r is None:
                return False
            if v[0] == "R":
                return any(
                    lk.type == RouterLinkType.POINT_TO_POINT and lk.link_id == v[1]
                    for lk in r.links
                )
            return any(lk.type == RouterLinkType.TRANSIT and lk.link_id == v[1] for lk in r.links)
        n = self.networks.get(w[1])
        return n is not None and v[0] == "R" and v[1] in n.routers

    def edges(self, v: Vertex) -> list[tuple[Vertex, int, IPv4Address | None]]:
        """§16.1 (2): the vertices the LSA of ``v`` links to, with the link's cost and its
        Link Data (a router's interface address; None from a network)."""
        edges: list[tuple[Vertex, int, IPv4Address | None]] = []
        if v[0] == "R":
            for lk in self.routers[v[1]].links:
                if lk.type == RouterLinkType.POINT_TO_POINT:
                    edges.append((("R", lk.link_id), lk.metric, lk.link_data))
                elif lk.type == RouterLinkType.TRANSIT:
                    edges.append((("N", lk.link_id), lk.metric, lk.link_data))
        else:
            for rid in self.networks[v[1]].routers:
                edges.append((("R", rid), 0, None))
        return edges

    def next_hops(self, v: Vertex, w: Vertex, link_data: IPv4Address | None) -> set[NextHop] | None:
        """§16.1.1: the next hops of ``w`` reached through its parent ``v``; None when the
        root has no interface for the link (``w`` is not reached this way)."""
        if v == self.root:
            ifname = self.iface_for(link_data) if link_data is not None else None
            if ifname is None:
                return None
            if w[0] == "N":
                self.parent_root[w] = True
                return {NextHop(ifname)}
            return {NextHop(ifname, self.neighbor_address(ifname, w[1]))}
        if v[0] == "N" and self.parent_root.get(v):
            # a router on a network directly attached to the root: its address there
            ifname = next(iter(self.hops[v])).ifname
            addr = None
            for lk in self.routers[w[1]].links:
                if lk.type == RouterLinkType.TRANSIT and lk.link_id == v[1]:
                    addr = lk.link_data
                    break
            return {NextHop(ifname, addr)}
        return set(self.hops[v])

    def shortest_path_tree(self) -> None:
        """Stage 1 (§16.1 (1)-(3)): Dijkstra over router and transit-network vertices,
        a link used only when the far end links back (2b), equal-cost paths merged (2d),
        networks taken before routers at equal distance (3)."""
        dist, hops = self.dist, self.hops
        best: dict[Vertex, int] = {self.root: 0}
        cand_hops: dict[Vertex, set[NextHop]] = {self.root: set()}
        heap: list[tuple[int, int, Vertex]] = [(0, 0, self.root)]
        while heap:
            d, _, v = heapq.heappop(heap)
            if v in dist:
                continue
            dist[v] = d
            hops[v] = cand_hops.get(v, set())
            for w, cost, link_data in self.edges(v):
                if w in dist:
                    continue
                if w[0] == "R" and w[1] not in self.routers:
                    continue
                if w[0] == "N" and w[1] not in self.networks:
                    continue
                if not self.links_back(w, v):
                    continue
                nd = d + cost
                nh = self.next_hops(v, w, link_data)
                if nh is None:
                    continue
                old = best.get(w)
                if old is None or nd < old:
                    best[w] = nd
                    cand_hops[w] = nh
                    heapq.heappush(heap, (nd, 0 if w[0] == "N" else 1, w))
                elif nd == old:
                    cand_hops[w] = cand_hops[w] | nh

    def add_transit_networks(self, table: _Table) -> None:
        """§16.1 (4): a route to each transit network of the tree (its DR's address under
        the network-LSA's mask)."""
        for v, d in self.dist.items():
            if v[0] == "N":
                n = self.networks[v[1]]
                prefix = _prefix(int(v[1]), int(n.mask))
                if prefix is not None:
                    table.add(prefix, d, self.hops[v])

    def add_stub_networks(self, table: _Table, names: Mapping[IPv4Network, str]) -> None:
        """Stage 2 (§16.1, second stage): the stub networks of each router of the tree, at
        the router's distance plus the link's cost, through the router's next hops."""
        for v, d in self.dist.items():
            if v[0] != "R":
                continue
            for lk in self.routers[v[1]].links:
                if lk.type != RouterLinkType.STUB:
                    continue
                prefix = _prefix(int(lk.link_id), int(lk.link_data))
                if prefix is None:
                    continue  # a mask that is not a prefix length: ignore the link
                if v == self.root:
                    ifname = self.iface_for(prefix.network_address) or names.get(prefix, "")
                    table.add(prefix, d + lk.metric, {NextHop(ifname)})
                else:
                    table.add(prefix, d + lk.metric, self.hops[v])
