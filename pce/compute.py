"""QE-aware path computation with wavelength assignment (docs/design.md#the-testbed,
docs/design.md#the-qe-ero-subobject; issue 4).

Steps for one request (source, destination, bandwidth, QE parameters):

1. Resolve the end points to TE nodes of the TED; check the QE constraint: with QE
   parameters, the source and the QE destination (the END-POINTS destination unless named
   otherwise) must both advertise the QE bit (RFC 7770 Informational Capabilities bit 6),
   and the parameters must be known values (:meth:`gmpls.qe.QeParams.problems`).
2. CSPF: Dijkstra on the TE metric over the usable links (two-way, alive), pruning links
   whose available bandwidth is below the request, excluded nodes and links, and links
   with no free wavelength.
3. Wavelength continuity: the channels free on every link of the path; the lowest one is
   taken (first fit). When the shortest path has none in common, the next shortest paths
   (Yen's algorithm, up to ``k`` = 5) are tried in order.
4. The ERO, exactly Fig. 9: per hop the unnumbered interface (RFC 3477) of the outgoing
   interface followed by the label subobject (RFC 3473, generalized label) of the RFC 6205
   lambda chosen, then the destination as an IPv4 /32; a QE subobject (session ID zero,
   parameters of the request) right after the first subobject naming the source and
   right after the one naming the QE destination.

Failures come back as a :class:`PathResult` with a :class:`NoPathReason` and a detail
string (docs/pce.md lists them); the PCEP layer turns them into NO-PATH objects.

The graph is compiled from the TED into integer-indexed arrays once per TED version, so a
request costs one Dijkstra (plus Yen's spur searches only when wavelengths collide).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from ipaddress import IPv4Address

from gmpls import qe
from gmpls.ero import Ipv4Prefix, Label, QeSubobject, Subobject, Unnumbered, lambda_label
from gmpls.units import bps_text
from pce.ted import Ted, TeLink


class NoPathReason(IntEnum):
    """Why no path was returned (carried in the NO-PATH-REASON TLV, docs/pcep.md)."""

    UNKNOWN_SOURCE = 1
    UNKNOWN_DESTINATION = 2
    SOURCE_NOT_QE_CAPABLE = 3
    QE_DESTINATION_NOT_QE_CAPABLE = 4
    NO_ROUTE = 5
    NO_COMMON_WAVELENGTH = 6
    UNKNOWN_ALGORITHM = 7
    UNKNOWN_LAYER = 8
    BAD_QE_PARAMETERS = 9
    SAME_END_POINTS = 10
    QE_DESTINATION_NOT_ON_PATH = 11
    UNSUPPORTED_REQUEST = 12
    #: no relay path over QKD links has the key rate the service consumes
    #: (pce/keyroute.py, docs/pce.md#key-aware-computation)
    INSUFFICIENT_KEY_RATE = 13


@dataclass(frozen=True, slots=True)
class PathRequest:
    source: IPv4Address
    destination: IPv4Address
    #: bytes per second, as PCEP BANDWIDTH and OSPF-TE carry it
    bandwidth: float = 0.0
    qe: qe.QeParams | None = None
    #: the node that must decrypt; None = the destination
    qe_destination: IPv4Address | None = None
    exclude_nodes: frozenset[IPv4Address] = frozenset()
    #: (router, local interface id) of links not to use
    exclude_links: frozenset[tuple[IPv4Address, int]] = frozenset()
    k: int = 5
    #: resource affinities (RFC 3209 §4.7.4, PCEP LSPA): a link is pruned when it has a
    #: group of ``exclude_any``, none of a non-zero ``include_any``, or lacks one of
    #: ``include_all``; links that advertise no Administrative Group have groups 0
    exclude_any: int = 0
    include_any: int = 0
    include_all: int = 0
    #: setup priority 0..7: the bandwidth is checked against the link's unreserved
    #: bandwidth at this priority (RFC 3630 §2.5.8)
    setup_priority: int = 7
    #: local protection asked (LSPA L flag): no TE link advertises it, so no path has it
    local_protection: bool = False
    #: bidirectional LSP (RP B flag): the reverse of every link must meet the constraints
    #: too, with the same wavelength free in both directions
    bidirectional: bool = False
    #: upper bounds (METRIC objects with the B flag) on the path's TE metric, hop count and
    #: IGP metric; None = no bound
    max_te: float | None = None
    max_hops: float | None = None
    max_igp: float | None = None
    #: IRO subobjects (RFC 5440 §7.12, an ordered list, RFC 7896): IPv4 /32 nodes (router
    #: ID or TE router address) to pass and unnumbered interfaces (RFC 3477) whose link to
    #: take, in this order; the L bit has no meaning in an IRO
    include: tuple[Subobject, ...] = ()

    @property
    def affinities(self) -> bool:
        return bool(self.exclude_any or self.include_any or self.include_all)

    def admits(self, groups: int) -> bool:
        """Whether a link of administrative ``groups`` meets the affinities."""
        return (
            not groups & self.exclude_any
            and (not self.include_any or bool(groups & self.include_any))
            and groups & self.include_all == self.include_all
        )


@dataclass(frozen=True, slots=True)
class Hop:
    router: IPv4Address
    interface: int
    remote_router: IPv4Address
    remote_interface: int


@dataclass(frozen=True, slots=True)
class PathResult:
    hops: tuple[Hop, ...] = ()
    destination: IPv4Address | None = None
    channel: int | None = None
    cost: int = 0
    ero: tuple[Subobject, ...] = ()
    reason: NoPathReason | None = None
    detail: str = ""
    #: candidate paths examined (1 = the shortest had a free wavelength)
    candidates: int = 0
    #: the path's IGP metric: the OSPF costs of its links (None when a link has none)
    igp: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def nodes(self) -> tuple[IPv4Address, ...]:
        if not self.hops:
            return ()
        return (*(h.router for h in self.hops), self.hops[-1].remote_router)


def _fail(reason: NoPathReason, detail: str, candidates: int = 0) -> PathResult:
    return PathResult(reason=reason, detail=detail, candidates=candidates)


WILDCARD = -1  # a link that advertises no labels constrains no wavelength


@dataclass(slots=True)
class Graph:
    """The TED compiled to arrays: node i, link j; ``adj[i]`` = [(j, to, metric)]."""

    version: int
    ids: list[IPv4Address]
    index: dict[IPv4Address, int]
    qe: list[bool]
    adj: list[list[tuple[int, int, int]]]
    #: reverse adjacency: ``radj[i]`` = [(j, from, metric)] of the links into i
    radj: list[list[tuple[int, int, int]]]
    links: list[TeLink]
    link_from: list[int]
    link_to: list[int]
    metric: list[int]
    bandwidth: list[float]
    #: free channels as a bitmask (bit i = channel base + i), WILDCARD when unconstrained
    mask: list[int]
    base: int
    link_index: dict[tuple[IPv4Address, int], int] = field(default_factory=dict)
    #: links with at least one free wavelength (or none advertised)
    usable: list[bool] = field(default_factory=list)
    #: per link: administrative groups, IGP metric (None: no adjacency over it), the index
    #: of the reverse direction (-1: none)
    groups: list[int] = field(default_factory=list)
    igp: list[int | None] = field(default_factory=list)
    reverse: list[int] = field(default_factory=list)

    @classmethod
    def from_ted(cls, ted: Ted) -> Graph:
        nodes = ted.nodes()
        links = sorted(ted.links(), key=lambda lk: (lk.router, lk.local_id))
        ids = list(nodes)
        index = {r: i for i, r in enumerate(ids)}
        chans = [c for lk in links if lk.channels for c in lk.channels]
        base = min(chans) if chans else 0
        g = cls(
            ted.version,
            ids,
            index,
            [nodes[r].qe for r in ids],
            [[] for _ in ids],
            [[] for _ in ids],
            links,
            [],
            [],
            [],
            [],
            [],
            base,
        )
        for j, lk in enumerate(links):
            a, b = index[lk.router], index[lk.remote_router]
            g.link_from.append(a)
            g.link_to.append(b)
            g.metric.append(lk.metric)
            g.bandwidth.append(lk.available_bandwidth)
            if lk.channels is None:
                g.mask.append(WILDCARD)
            else:
                m = 0
                for c in lk.channels:
                    m |= 1 << (c - base)
                g.mask.append(m)
            g.adj[a].append((j, b, lk.metric))
            g.radj[b].append((j, a, lk.metric))
            g.link_index[lk.key] = j
        g.usable = [m != 0 for m in g.mask]
        costs = ted.igp_costs()
        g.groups = [lk.admin_groups for lk in links]
        g.igp = [costs.get((lk.router, lk.remote_router)) for lk in links]
        g.reverse = [g.link_index.get((lk.remote_router, lk.remote_id), -1) for lk in links]
        return g

    def bandwidth_at(self, j: int, priority: int) -> float:
        """Link ``j``'s bandwidth free for a new LSP of setup ``priority``."""
        unreserved = self.links[j].unreserved
        return unreserved[priority] if priority < len(unreserved) else self.bandwidth[j]

    def path_igp(self, path: Iterable[int]) -> int | None:
        total = 0
        for j in path:
            cost = self.igp[j]
            if cost is None:
                return None
            total += cost
        return total

    def without(
        self,
        held: Mapping[tuple[IPv4Address, int], Iterable[int]],
        freed: Mapping[tuple[IPv4Address, int], Iterable[int]] | None = None,
    ) -> Graph:
        """A copy of the graph with the stateful PCE's ledger (:mod:`pce.lspdb`) laid over
        the TED: the ``freed`` lambdas (of LSPs reported removed, which the TED still lists
        used on that direction) offered again, then the ``held`` ones (in use or reserved)
        taken out of both directions of their link, freed or not. Links left with no
        lambda are unusable."""
        g = self._rebased(min((c for cs in (freed or {}).values() for c in cs), default=None))
        mask = list(g.mask)
        for key, channels in (freed or {}).items():
            j = g.link_index.get(key)
            if j is not None and mask[j] != WILDCARD:
                for c in channels:
                    mask[j] |= 1 << (c - g.base)
        for key, channels in held.items():
            j = g.link_index.get(key)
            if j is None:
                continue
            for k in (j, g.reverse[j]):
                if k < 0 or mask[k] == WILDCARD:
                    continue
                for c in channels:
                    if c >= g.base:
                        mask[k] &= ~(1 << (c - g.base))
        return replace(g, mask=mask, usable=[m != 0 for m in mask])

    def _rebased(self, lowest: int | None) -> Graph:
        """The graph with its channel base at ``lowest`` when that is below the base (a
        freed lambda that no link of the TED lists free)."""
        if lowest is None or lowest >= self.base:
            return self
        shift = self.base - lowest
        mask = [m if m == WILDCARD else m << shift for m in self.mask]
        return replace(self, mask=mask, base=lowest)

    def channel_of(self, mask: int) -> int | None:
        if mask == 0:
            return None
        if mask == WILDCARD:
            return None
        return self.base + ((mask & -mask).bit_length() - 1)


INF = 1 << 62


def dijkstra(
    g: Graph,
    src: int,
    dst: int,
    usable: list[bool],
    banned_nodes: set[int] | frozenset[int] = frozenset(),
    banned_links: set[int] | frozenset[int] = frozenset(),
    h: list[int] | None = None,
) -> tuple[int, list[int]] | None:
    """Shortest path by TE metric from ``src`` to ``dst`` as (cost, link indices).

    With ``h`` (each node's exact distance to ``dst`` on the unrestricted graph, from
    :func:`distances_to`) it is A*: the heuristic is consistent, so the first time ``dst``
    is popped its distance is final, and nodes that cannot reach ``dst`` are never pushed.
    """
    n = len(g.ids)
    dist = [INF] * n
    dist[src] = 0
    prev = [-1] * n
    done = bytearray(n)
    for b in banned_nodes:
        done[b] = 1  # never entered
    heap = [(h[src] if h else 0, 0, src)]
    adj = g.adj
    push, pop = heapq.heappush, heapq.heappop
    while heap:
        _, d, u = pop(heap)
        if done[u]:
            continue
        if u == dst:
            path: list[int] = []
            link_from = g.link_from
            while u != src:
                j = prev[u]
                path.append(j)
                u = link_from[j]
            path.reverse()
            return d, path
        done[u] = 1
        for j, v, w in adj[u]:
            if done[v] or not usable[j] or (banned_links and j in banned_links):
                continue
            nd = d + w
            if nd < dist[v]:
                if h is None:
                    f = nd
                else:
                    hv = h[v]
                    if hv >= INF:
                        continue
                    f = nd + hv
                dist[v] = nd
                prev[v] = j
                push(heap, (f, nd, v))
    return None


def bidirectional(g: Graph, src: int, dst: int, usable: list[bool]) -> tuple[int, list[int]] | None:
    """Shortest path ``src`` -> ``dst`` by bidirectional Dijkstra: a forward search from
    the source and a backward one (over :attr:`Graph.radj`) from the destination, the
    smaller frontier advancing, stopped when the two frontiers' tops add up to no less
    than the best meeting found (the classic stopping rule). Same answer as
    :func:`dijkstra`, far fewer nodes settled on large graphs."""
    if src == dst:
        return 0, []
    n = len(g.ids)
    dist = ([INF] * n, [INF] * n)
    prev = ([-1] * n, [-1] * n)
    done = (bytearray(n), bytearray(n))
    dist[0][src] = dist[1][dst] = 0
    heaps: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([(0, src)], [(0, dst)])
    adjs = (g.adj, g.radj)
    best, meet = INF, -1
    push, pop = heapq.heappush, heapq.heappop
    while heaps[0] and heaps[1]:
        if heaps[0][0][0] + heaps[1][0][0] >= best:
            break
        side = 0 if len(heaps[0]) <= len(heaps[1]) else 1
        heap, d_side, p_side, dn = heaps[side], dist[side], prev[side], done[side]
        d, u = pop(heap)
        if dn[u]:
            continue
        dn[u] = 1
        other = dist[1 - side]
        for j, v, w in adjs[side][u]:
            if not usable[j]:
                continue
            nd = d + w
            if nd < d_side[v]:
                d_side[v] = nd
                p_side[v] = j
                push(heap, (nd, v))
            if other[v] < INF and d_side[v] + other[v] < best:
                best, meet = d_side[v] + other[v], v
    if meet < 0:
        return None
    # forward part: src .. meet; backward part: meet .. dst
    path: list[int] = []
    u = meet
    while u != src:
        j = prev[0][u]
        path.append(j)
        u = g.link_from[j]
    path.reverse()
    u = meet
    while u != dst:
        j = prev[1][u]
        path.append(j)
        u = g.link_to[j]
    return best, path


def distances_to(g: Graph, dst: int, usable: list[bool]) -> list[int]:
    """Every node's shortest TE-metric distance to ``dst`` over usable links (INF if
    none): one reverse Dijkstra, the A* heuristic of Yen's spur searches."""
    dist = [INF] * len(g.ids)
    dist[dst] = 0
    heap = [(0, dst)]
    radj = g.radj
    while heap:
        d, v = heapq.heappop(heap)
        if d > dist[v]:
            continue
        for j, u, w in radj[v]:
            if usable[j] and d + w < dist[u]:
                dist[u] = d + w
                heapq.heappush(heap, (d + w, u))
    return dist


def common_mask(g: Graph, path: Iterable[int]) -> int:
    m = WILDCARD
    for j in path:
        m &= g.mask[j]
    return m


def yen(
    g: Graph, src: int, dst: int, usable: list[bool], k: int, first: tuple[int, list[int]]
) -> Iterable[tuple[int, list[int]]]:
    """Yen's k shortest loopless paths (1971), lazily, starting with ``first``; the spur
    searches are A* guided by the exact distances to ``dst``."""
    found = [first]
    yield first
    h: list[int] | None = None
    candidates: list[tuple[int, list[int]]] = []
    seen = {tuple(first[1])}
    while len(found) < k:
        _, last = found[-1]
        nodes = [src] + [g.link_to[j] for j in last]
        for i in range(len(last)):
            spur = nodes[i]
            root = last[:i]
            root_cost = sum(g.metric[j] for j in root)
            banned_links = {p[i] for c, p in found if p[:i] == root and len(p) > i}
            banned_nodes = set(nodes[:i])
            if h is None:
                h = distances_to(g, dst, usable)
            r = dijkstra(g, spur, dst, usable, banned_nodes, banned_links, h)
            if r is None:
                continue
            total = root + r[1]
            t = tuple(total)
            if t in seen:
                continue
            seen.add(t)
            heapq.heappush(candidates, (root_cost + r[0], total))
        if not candidates:
            return
        nxt = heapq.heappop(candidates)
        found.append(nxt)
        yield nxt


class PathComputer:
    """Computes paths over a TED, recompiling its graph when the TED changes."""

    def __init__(self, ted: Ted) -> None:
        self.ted = ted
        self._graph: Graph | None = None

    @property
    def graph(self) -> Graph:
        if self._graph is None or self._graph.version != self.ted.version:
            self._graph = Graph.from_ted(self.ted)
        return self._graph

    def compute(
        self,
        req: PathRequest,
        held: dict[tuple[IPv4Address, int], set[int]] | None = None,
        freed: dict[tuple[IPv4Address, int], set[int]] | None = None,
    ) -> PathResult:
        """One request, steps 1-4 of the module docstring: the end points and the QE
        constraint, CSPF, wavelength assignment (first fit, Yen's next paths when the
        shortest has no free wavelength in common) and the ERO. ``held`` lambdas (per
        link: in use or reserved, :meth:`pce.lspdb.LspDb.held`) are not free; ``freed``
        ones (per link direction, :meth:`pce.lspdb.LspDb.freed`) are, unless held."""
        g = self.graph.without(held or {}, freed) if held or freed else self.graph
        ends = self._end_points(g, req)
        if isinstance(ends, PathResult):
            return ends
        src_id, dst_id = ends
        s, d = g.index[src_id], g.index[dst_id]
        qe_dst = self._qe_destination(g, req, s, dst_id)
        if isinstance(qe_dst, PathResult):
            return qe_dst
        banned_nodes = {g.index[n] for n in req.exclude_nodes if n in g.index}
        if s in banned_nodes or d in banned_nodes:
            return _fail(NoPathReason.NO_ROUTE, "an end point is excluded")
        if req.local_protection:
            return _fail(NoPathReason.NO_ROUTE, "local protection asked: no TE link advertises it")
        usable = _usable_links(g, req, banned_nodes)
        if req.include:
            return self._through_iro(g, req, usable, s, d, qe_dst)
        first = bidirectional(g, s, d, usable)
        if first is None:
            return _fail(
                NoPathReason.NO_ROUTE,
                f"no route {src_id} -> {dst_id} with {bps_text(req.bandwidth * 8)} free"
                + _constraints_text(req),
            )
        return _assign_wavelength(g, req, usable, first, s, d, qe_dst)

    def _through_iro(
        self, g: Graph, req: PathRequest, usable: list[bool], s: int, d: int, qe_dst: int | None
    ) -> PathResult:
        """Steps 2-3 with an IRO: the shortest path through the IRO's nodes and links in
        order (each segment the shortest that avoids the nodes already on the path, so the
        path stays loopless), then its wavelength: one candidate, no k-shortest search."""
        waypoints = self._waypoints(g, req)
        if isinstance(waypoints, PathResult):
            return waypoints
        found = _through(g, usable, s, d, waypoints)
        if found is None:
            names = ", ".join(str(x) for x in req.include)
            return _fail(
                NoPathReason.NO_ROUTE,
                f"no route {g.ids[s]} -> {g.ids[d]} through the IRO {names}"
                + _constraints_text(req),
            )
        return _assign_wavelength(g, replace(req, k=1), usable, found, s, d, qe_dst)

    def _waypoints(self, g: Graph, req: PathRequest) -> list[tuple[int, int]] | PathResult:
        """The IRO as (node, link) steps: a node to pass (link -1), or a link to take (its
        head node and index); the failure for a subobject naming nothing of this TED."""
        out: list[tuple[int, int]] = []
        for sub in req.include:
            if isinstance(sub, Ipv4Prefix) and sub.prefix_len == 32:
                rid = self._resolve(g, sub.address)
                if rid is None:
                    return _fail(NoPathReason.NO_ROUTE, f"IRO node {sub.address} is not in the TED")
                out.append((g.index[rid], -1))
            elif isinstance(sub, Unnumbered):
                j = g.link_index.get((sub.router_id, sub.interface_id))
                if j is None:
                    return _fail(NoPathReason.NO_ROUTE, f"IRO link {sub} is not in the TED")
                out.append((g.link_from[j], j))
            else:
                return _fail(
                    NoPathReason.UNSUPPORTED_REQUEST,
                    f"IRO subobject {sub} names no node or link of this TED (IPv4 /32 and "
                    "unnumbered interfaces only)",
                )
        return out

    def _end_points(
        self, g: Graph, req: PathRequest
    ) -> tuple[IPv4Address, IPv4Address] | PathResult:
        """Step 1: the source and destination as TE nodes (router IDs), or the failure."""
        src_id = self._resolve(g, req.source)
        dst_id = self._resolve(g, req.destination)
        if src_id is None:
            return _fail(NoPathReason.UNKNOWN_SOURCE, f"{req.source} is not a TE node in the TED")
        if dst_id is None:
            return _fail(
                NoPathReason.UNKNOWN_DESTINATION, f"{req.destination} is not a TE node in the TED"
            )
        if src_id == dst_id:
            return _fail(NoPathReason.SAME_END_POINTS, f"source and destination are {src_id}")
        return src_id, dst_id

    def _resolve(self, g: Graph, address: IPv4Address) -> IPv4Address | None:
        """The router ID of the TE node of the graph that ``address`` names (its router ID
        or its TE router address), None if none."""
        rid = self.ted.resolve(address) if address not in g.index else address
        return rid if rid is not None and rid in g.index else None

    def _qe_destination(
        self, g: Graph, req: PathRequest, s: int, dst_id: IPv4Address
    ) -> int | PathResult | None:
        """Step 1, the QE constraint: the node index of the QE destination (None without
        QE parameters), or the failure: parameters of unknown values, a source or QE
        destination that does not advertise the QE capability."""
        if req.qe is None:
            return None
        problems = req.qe.problems()
        if problems:
            reason = NoPathReason.BAD_QE_PARAMETERS
            if req.qe.algorithm not in qe.Algorithm._value2member_map_:
                reason = NoPathReason.UNKNOWN_ALGORITHM
            elif req.qe.enc_layer not in qe.EncLayer._value2member_map_:
                reason = NoPathReason.UNKNOWN_LAYER
            return _fail(reason, "; ".join(problems))
        if not g.qe[s]:
            return _fail(
                NoPathReason.SOURCE_NOT_QE_CAPABLE,
                f"source {g.ids[s]} does not advertise the QE capability",
            )
        qd = req.qe_destination or dst_id
        qd_id = self._resolve(g, qd)
        if qd_id is None:
            return _fail(
                NoPathReason.QE_DESTINATION_NOT_QE_CAPABLE, f"QE destination {qd} is unknown"
            )
        qe_dst = g.index[qd_id]
        if not g.qe[qe_dst]:
            return _fail(
                NoPathReason.QE_DESTINATION_NOT_QE_CAPABLE,
                f"QE destination {qd_id} does not advertise the QE capability",
            )
        return qe_dst


def _constraints_text(req: PathRequest) -> str:
    parts = []
    if req.affinities:
        parts.append(
            f"affinities exclude-any 0x{req.exclude_any:x} include-any 0x{req.include_any:x}"
            f" include-all 0x{req.include_all:x}"
        )
    if req.bidirectional:
        parts.append("both directions")
    return "".join(f", {p}" for p in parts)


def _usable_links(g: Graph, req: PathRequest, banned_nodes: set[int]) -> list[bool]:
    """Step 2's pruning: the links CSPF may use — those with a free wavelength (or none
    advertised), the bandwidth asked for at the setup priority, the affinities, neither
    excluded nor touching an excluded node; for a bidirectional request, only links whose
    reverse is usable too. The graph's own list when nothing is pruned beyond it (shared:
    never modify)."""
    plain = not (req.exclude_links or banned_nodes or req.affinities or req.bidirectional)
    if req.bandwidth <= 0 and plain:
        return g.usable
    prio = req.setup_priority
    usable = [
        u and g.bandwidth_at(j, prio) >= req.bandwidth and req.admits(g.groups[j])
        for j, u in enumerate(g.usable)
    ]
    for key in req.exclude_links:
        j = g.link_index.get(key)
        if j is not None:
            usable[j] = False
    for j in range(len(g.links)) if banned_nodes else ():
        if g.link_to[j] in banned_nodes or g.link_from[j] in banned_nodes:
            usable[j] = False
    if req.bidirectional:
        usable = [u and g.reverse[j] >= 0 and usable[g.reverse[j]] for j, u in enumerate(usable)]
    return usable


def _through(
    g: Graph, usable: list[bool], s: int, d: int, waypoints: list[tuple[int, int]]
) -> tuple[int, list[int]] | None:
    """The path ``s`` -> ``d`` through ``waypoints`` (see :meth:`PathComputer._waypoints`)
    as (TE cost, links), each segment the shortest avoiding the nodes already on the path;
    None when some segment has no route."""
    cost, path, at, visited = 0, [], s, {s}
    for node, link in [*waypoints, (d, -1)]:
        if node != at:
            seg = dijkstra(g, at, node, usable, visited - {at})
            if seg is None:
                return None
            cost += seg[0]
            path += seg[1]
            visited.update(g.link_to[j] for j in seg[1])
            at = node
        if link >= 0:
            if not usable[link] or g.link_to[link] in visited:
                return None
            cost += g.metric[link]
            path.append(link)
            at = g.link_to[link]
            visited.add(at)
    return cost, path


def _bound_missed(g: Graph, req: PathRequest, cost: int, path: list[int]) -> str:
    """Which METRIC bound ``path`` (of TE metric ``cost``) exceeds; "" when none."""
    if req.max_te is not None and cost > req.max_te:
        return f"TE metric {cost} exceeds the bound {req.max_te:g}"
    if req.max_hops is not None and len(path) > req.max_hops:
        return f"hop count {len(path)} exceeds the bound {req.max_hops:g}"
    if req.max_igp is not None:
        igp = g.path_igp(path)
        if igp is None:
            return f"IGP metric bound {req.max_igp:g}: a link of the path has no IGP metric"
        if igp > req.max_igp:
            return f"IGP metric {igp} exceeds the bound {req.max_igp:g}"
    return ""


def _assign_wavelength(
    g: Graph,
    req: PathRequest,
    usable: list[bool],
    first: tuple[int, list[int]],
    s: int,
    d: int,
    qe_dst: int | None,
) -> PathResult:
    """Step 3: the shortest path (``first``), then the next shortest (Yen, up to
    ``req.k``), until one within the METRIC bounds has a wavelength free on every link (and
    on every reverse link when bidirectional): the lowest is taken (first fit) and the
    result built (step 4)."""
    tried = 0
    missed = ""
    for cost, path in yen(g, s, d, usable, req.k, first):
        tried += 1
        missed_here = _bound_missed(g, req, cost, path)
        if missed_here:
            missed = missed or missed_here
            if req.max_te is not None and cost > req.max_te:
                break  # the next paths cost more still
            continue
        m = common_mask(g, path)
        if req.bidirectional:
            m &= common_mask(g, (g.reverse[j] for j in path))
        if m == 0:
            continue
        return _path_result(g, req, path, cost, g.channel_of(m), g.ids[d], qe_dst, tried)
    if missed:
        return _fail(NoPathReason.NO_ROUTE, f"{missed} (best of {tried} paths)", tried)
    return _fail(
        NoPathReason.NO_COMMON_WAVELENGTH,
        f"none of the {tried} shortest paths {g.ids[s]} -> {g.ids[d]} has a wavelength free "
        "on every link",
        tried,
    )


def _path_result(
    g: Graph,
    req: PathRequest,
    path: list[int],
    cost: int,
    channel: int | None,
    dst_id: IPv4Address,
    qe_dst: int | None,
    tried: int,
) -> PathResult:
    """Step 4: the hops of ``path`` and their ERO, or the failure when the QE destination
    is not on the path."""
    hops = tuple(
        Hop(g.links[j].router, g.links[j].local_id, g.links[j].remote_router, g.links[j].remote_id)
        for j in path
    )
    qe_router = g.ids[qe_dst] if qe_dst is not None else None
    if qe_router is not None and qe_router not in {h.remote_router for h in hops}:
        return _fail(
            NoPathReason.QE_DESTINATION_NOT_ON_PATH,
            f"QE destination {qe_router} is not on the path",
            tried,
        )
    return PathResult(
        hops=hops,
        destination=dst_id,
        channel=channel,
        cost=cost,
        ero=build_ero(hops, dst_id, channel, req.qe, qe_router),
        candidates=tried,
        igp=g.path_igp(path),
    )


def build_ero(
    hops: tuple[Hop, ...],
    destination: IPv4Address,
    channel: int | None,
    params: qe.QeParams | None,
    qe_destination: IPv4Address | None = None,
) -> tuple[Subobject, ...]:
    """The ERO of docs/design.md#the-qe-ero-subobject / the paper's Fig. 9 for ``hops``.

    Per hop: Unnumbered(router, outgoing interface), then Label(RFC 6205 lambda of
    ``channel``) when a wavelength was assigned; finally the destination as an IPv4 /32.
    With QE parameters, a QE subobject (zero session ID) follows the first subobject that
    names the source and the one that names the QE destination (its Unnumbered hop when
    it is an intermediate node, the /32 when it is the destination).
    """
    sub = QeSubobject.from_params(params) if params is not None else None
    label = Label(lambda_label(channel)) if channel is not None else None
    qd = qe_destination if qe_destination is not None else destination
    out: list[Subobject] = []
    for i, h in enumerate(hops):
        out.append(Unnumbered(h.router, h.interface))
        if sub is not None and (i == 0 or h.router == qd):
            out.append(sub)
        if label is not None:
            out.append(label)
    out.append(Ipv4Prefix(destination, 32))
    if sub is not None and qd == destination:
        out.append(sub)
    return tuple(out)
