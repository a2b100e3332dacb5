"""Key-aware relay paths over the QKD site graph, pure (docs/pce.md#key-aware-computation).

The graph: one vertex per key-management *site* (its ID is the router ID of its site node),
one edge per QKD link, merged from the QKD-link TLVs both ends' site nodes advertise in
OSPF-TE (:mod:`gmpls.ospf.qkdlink`). A link is usable when both ends advertise it up
(the two-way check the TED applies to TE links). Each end's advertisement gives what that
end can draw: the rate, stock and buffer of the key stream its key manager draws from when
it opens a session over the link, which it does as the upstream end of a relay hop (or the
head of a direct session). So a link is two *directions*, one per end, and a relay path's
hop from site x to site y draws on direction (x, y): x's figures.

A service's key consumption (:func:`consumption_bps`) is committed on every directed hop of
its relay path in the :class:`KeyLedger` when the PCE answers, and released when the head
reports the service gone (stateful PCEP) or, without reports, when the hold time passes.

:func:`relay_path` is the algorithm: Dijkstra over the directed hops whose free rate (the
upstream end's rate minus the consumption committed on that direction) is at least the
service's consumption and whose upstream stock holds at least one key, with the weight of
:func:`link_weight`. Two baselines for the benchmark:
``policy="fewest-feasible"`` (the same feasible links, every weight 1) and
``policy="fewest-hop"`` (fewest hops over links that are up, then admitted only if the
consumption fits every link).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Literal, Protocol

from gmpls import qe
from gmpls.units import bps_text

Site = IPv4Address
#: a QKD link as the graph keys it: its two site IDs, the smaller first
LinkKey = tuple[IPv4Address, IPv4Address]
#: one direction of a QKD link, as a relay path crosses it and the ledger commits on it:
#: (upstream site, downstream site); the upstream end draws the hop's keys
Hop = tuple[IPv4Address, IPv4Address]
Policy = Literal["key-aware", "fewest-feasible", "fewest-hop"]

#: consumption assumed for a volume-refreshed service that asks for no bandwidth:
#: one refresh per second (the paper's default time refresh of 1000 ms)
VOLUME_DEFAULT_REFRESH_HZ = 1.0


def link_key(a: IPv4Address, b: IPv4Address) -> LinkKey:
    return (a, b) if a <= b else (b, a)


def consumption_bps(params: qe.QeParams, bandwidth: float = 0.0) -> float:
    """Key bits per second a QE service draws, from its QE METRICs and BANDWIDTH (bytes/s):

    - time refresh every ``v`` ms: ``8 x key_length x 1000 / v``;
    - volume refresh every ``v`` MiB: ``8 x key_length x bandwidth / (v x 2^20)``; without
      a bandwidth, one refresh per second (:data:`VOLUME_DEFAULT_REFRESH_HZ`);
    - no refresh (type 0 or value 0): 0 (the first key only, drawn from the stock);
    - one-time pad: the traffic itself, ``8 x bandwidth``, when that is more.
    """
    bits = 8.0 * params.key_length
    if params.refresh_type == qe.RefreshType.TIME_MS and params.refresh_value > 0:
        rate = bits * 1000.0 / params.refresh_value
    elif params.refresh_type == qe.RefreshType.VOLUME_MIB and params.refresh_value > 0:
        hz = bandwidth / (params.refresh_value * 2**20) if bandwidth > 0 else None
        rate = bits * (hz if hz is not None else VOLUME_DEFAULT_REFRESH_HZ)
    else:
        rate = 0.0
    if params.algorithm == qe.Algorithm.ONE_TIME_PAD:
        rate = max(rate, 8.0 * bandwidth)
    return rate


class LinkAd(Protocol):
    """What one site node says of one QKD link (``gmpls.ospf.qkdlink.QkdLinkTlv``)."""

    @property
    def local_site(self) -> IPv4Address: ...
    @property
    def far_site(self) -> IPv4Address: ...
    @property
    def rate_bps(self) -> int: ...
    @property
    def stock_bits(self) -> int: ...
    @property
    def buffer_bits(self) -> int: ...
    @property
    def up(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Draw:
    """What one end of a QKD link can draw for the sessions it opens, as it advertises:
    its stream's rate (b/s), the key it holds now and its stream's buffer (bits)."""

    rate_bps: int
    stock_bits: int
    buffer_bits: int


_NONE = Draw(0, 0, 0)


@dataclass(frozen=True, slots=True)
class QkdLink:
    """One QKD link of the graph, merged from its ends' advertisements."""

    a: Site
    b: Site
    #: each end's figures by its site; an end that does not advertise the link has none
    ends: Mapping[Site, Draw]
    up: bool
    #: both ends advertise it (a one-sided link is shown, never used)
    two_way: bool

    @property
    def key(self) -> LinkKey:
        return (self.a, self.b)

    @property
    def usable(self) -> bool:
        return self.up and self.two_way

    def other(self, site: Site) -> Site:
        return self.b if site == self.a else self.a

    def draw(self, upstream: Site) -> Draw:
        """The figures of the direction from ``upstream`` (zero when it advertises none)."""
        return self.ends.get(upstream, _NONE)


@dataclass(frozen=True, slots=True)
class QkdGraph:
    """The QKD site graph: the links by key and the sites that advertise links."""

    links: Mapping[LinkKey, QkdLink] = field(default_factory=dict)
    sites: frozenset[Site] = frozenset()

    @classmethod
    def from_ads(cls, ads: Iterable[LinkAd]) -> QkdGraph:
        by_end: dict[tuple[Site, Site], LinkAd] = {}
        for ad in ads:
            if ad.local_site != ad.far_site:
                by_end[(ad.local_site, ad.far_site)] = ad
        links: dict[LinkKey, QkdLink] = {}
        for (near, far), ad in by_end.items():
            key = link_key(near, far)
            if key in links:
                continue
            back = by_end.get((far, near))
            ends = {near: ad} if back is None else {near: ad, far: back}
            links[key] = QkdLink(
                key[0],
                key[1],
                {s: Draw(e.rate_bps, e.stock_bits, e.buffer_bits) for s, e in ends.items()},
                all(e.up for e in ends.values()),
                back is not None,
            )
        return cls(links, frozenset(near for near, _ in by_end))

    def hops(self) -> Iterable[tuple[Hop, QkdLink]]:
        """Both directions of every link: ``((upstream, downstream), link)``."""
        for lk in self.links.values():
            yield (lk.a, lk.b), lk
            yield (lk.b, lk.a), lk

    def neighbours(self, site: Site) -> Iterable[QkdLink]:
        # small graphs (tens of sites): a scan is cheaper than keeping an index in step
        for link in self.links.values():
            if site in (link.a, link.b):
                yield link


def site_of(
    graph: QkdGraph, node: IPv4Address, configured: Mapping[IPv4Address, Site] | None = None
) -> Site | None:
    """The site of a GMPLS node (a QE end): the node itself when it advertises QKD links
    (it is its site's site node, whose router ID is the site ID); else the site
    ``configured`` for it (a node that shares a site with another, ``--qkd-site``); else
    None (the PCE computes no relay path and the key managers choose)."""
    if node in graph.sites:
        return node
    return (configured or {}).get(node)


@dataclass(frozen=True, slots=True)
class RelayResult:
    """A relay path (site IDs, head site first) or why there is none."""

    sites: tuple[Site, ...] = ()
    #: "" when ``sites`` is a path; else a sentence for the NO-PATH reason and logs
    reason: str = ""
    #: the least free rate (b/s) along the path found, or along the widest path when none
    #: fits (None when the two sites are not connected by links that are up)
    bottleneck_bps: float | None = None

    @property
    def ok(self) -> bool:
        return not self.reason

    @property
    def hops(self) -> tuple[Hop, ...]:
        return tuple(zip(self.sites, self.sites[1:], strict=False))


def link_weight(draw: Draw, need_bps: float, committed_bps: float) -> float:
    """Weight of a feasible hop (``draw``: its upstream end's figures) for a service
    drawing ``need_bps``::

        1 + need / (rate - committed) + (1 - stock / buffer)

    The 1 counts hops (fewer trusted sites is better, each one sees the key); the second
    term, in (0, 1], grows as the service would use up the direction's free rate (rate
    headroom); the third, in [0, 1], prefers a direction whose store is full (stock)."""
    free = draw.rate_bps - committed_bps
    share = need_bps / free if free > 0 else 1.0
    fill = min(1.0, draw.stock_bits / draw.buffer_bits) if draw.buffer_bits > 0 else 0.0
    return 1.0 + share + (1.0 - fill)


def _fits(link: QkdLink, hop: Hop, need_bps: float, committed_bps: float, key_bits: int) -> bool:
    d = link.draw(hop[0])
    return link.usable and d.rate_bps - committed_bps >= need_bps and d.stock_bits >= key_bits


def _dijkstra(
    graph: QkdGraph, src: Site, dst: Site, weight: Mapping[Hop, float]
) -> tuple[Site, ...] | None:
    """Least-weight path over the directed hops of ``weight``; equal weights go to the
    path whose site IDs sort first, so the answer is deterministic."""
    best: dict[Site, tuple[float, tuple[Site, ...]]] = {src: (0.0, (src,))}
    heap: list[tuple[float, tuple[Site, ...]]] = [(0.0, (src,))]
    done: set[Site] = set()
    while heap:
        d, path = heapq.heappop(heap)
        here = path[-1]
        if here in done:
            continue
        if here == dst:
            return path
        done.add(here)
        for link in graph.neighbours(here):
            nxt = link.other(here)
            w = weight.get((here, nxt))
            if w is None or nxt in done:
                continue
            cand = (d + w, (*path, nxt))
            if nxt not in best or cand < best[nxt]:
                best[nxt] = cand
                heapq.heappush(heap, cand)
    return None


def _widest(graph: QkdGraph, src: Site, dst: Site, committed: Mapping[Hop, float]) -> float | None:
    """The largest free rate any path of up links offers from ``src`` to ``dst``."""
    width: dict[Site, float] = {src: float("inf")}
    heap: list[tuple[float, Site]] = [(-float("inf"), src)]
    done: set[Site] = set()
    while heap:
        neg, here = heapq.heappop(heap)
        if here in done:
            continue
        if here == dst:
            return -neg
        done.add(here)
        for link in graph.neighbours(here):
            if not link.usable:
                continue
            nxt = link.other(here)
            w = min(-neg, link.draw(here).rate_bps - committed.get((here, nxt), 0.0))
            if w > width.get(nxt, -float("inf")):
                width[nxt] = w
                heapq.heappush(heap, (-w, nxt))
    return None


def relay_path(
    graph: QkdGraph,
    src: Site,
    dst: Site,
    need_bps: float,
    committed: Mapping[Hop, float],
    key_bits: int = 0,
    policy: Policy = "key-aware",
) -> RelayResult:
    """The relay path from site ``src`` to site ``dst`` for a service drawing
    ``need_bps`` (its first key is ``key_bits``), given the rate ``committed`` per
    direction. Same site: ``(src,)``, no link used."""
    if src == dst:
        return RelayResult((src,))
    if policy != "fewest-hop":
        weight = {
            h: link_weight(lk.draw(h[0]), need_bps, committed.get(h, 0.0))
            if policy == "key-aware"
            else 1.0
            for h, lk in graph.hops()
            if _fits(lk, h, need_bps, committed.get(h, 0.0), key_bits)
        }
    else:
        weight = {h: 1.0 for h, lk in graph.hops() if lk.usable}
    path = _dijkstra(graph, src, dst, weight)
    if path is not None:
        found = RelayResult(path)
        on = [(h, graph.links[link_key(*h)]) for h in found.hops]
        free = min(lk.draw(h[0]).rate_bps - committed.get(h, 0.0) for h, lk in on)
        fits = all(_fits(lk, h, need_bps, committed.get(h, 0.0), key_bits) for h, lk in on)
        if fits:
            return RelayResult(path, bottleneck_bps=free)
        return RelayResult(
            path,
            f"insufficient key rate: the fewest-hop relay path {_text(path)} has "
            f"{bps_text(free)} free, the service needs {bps_text(need_bps)}",
            free,
        )
    widest = _widest(graph, src, dst, committed)
    if widest is None:
        why = f"no QKD link path that is up between sites {src} and {dst}"
    else:
        why = f"the best relay path has {bps_text(widest)} free"
    return RelayResult(
        (),
        f"insufficient key rate: {need_bps:.0f} b/s needed from site {src} to {dst}, {why}",
        widest,
    )


def _text(path: Iterable[Site]) -> str:
    return " -> ".join(str(s) for s in path)


# -- the ledger of committed consumption ------------------------------------------------


@dataclass(slots=True)
class Commitment:
    """A service's consumption committed on the links of its relay path."""

    head: IPv4Address
    tail: IPv4Address
    sites: tuple[Site, ...]
    bps: float
    since: float
    until: float

    @property
    def hops(self) -> tuple[Hop, ...]:
        return tuple(zip(self.sites, self.sites[1:], strict=False))

    def as_json(self) -> dict[str, Any]:
        return {
            "head": str(self.head),
            "tail": str(self.tail),
            "relay": [str(s) for s in self.sites],
            "bps": round(self.bps, 3),
        }


def _since(c: Commitment) -> float:
    return c.since


class KeyLedger:
    """Committed consumption per direction of a QKD link (docs/pce.md#commit-and-release).

    :meth:`commit` on each answer; :meth:`expire` drops commitments whose hold time has
    passed, except as many (the newest first) per head and tail as the head reports live
    QE LSPs between them (``live``, from the stateful PCE's LSP database), so a service
    the head reported keeps its rate until the head reports it removed.

    A burst of requests asks for :meth:`committed` and :meth:`expire` at every one: the
    totals are kept as commitments come (summed again, in the same order, only after one
    went), and nothing is looked at, ``live`` included, before the first hold has passed."""

    def __init__(self, hold: float = 30.0) -> None:
        self.hold = hold
        #: oldest first (``since``)
        self.commitments: list[Commitment] = []
        self.committed_total = 0
        self.released_total = 0
        self._totals: dict[Hop, float] | None = {}
        #: no commitment's hold ends before this
        self._first_until = float("inf")

    def commit(
        self, head: IPv4Address, tail: IPv4Address, sites: tuple[Site, ...], bps: float, now: float
    ) -> None:
        if len(sites) < 2:
            return  # same site: no QKD link carries it
        self.committed_total += 1
        c = Commitment(head, tail, tuple(sites), bps, now, now + self.hold)
        bisect.insort(self.commitments, c, key=_since)  # at the end, but for a clock step
        self._first_until = min(self._first_until, c.until)
        if self._totals is not None:
            for h in c.hops:
                self._totals[h] = self._totals.get(h, 0.0) + c.bps

    def expire(
        self,
        now: float,
        live: Mapping[tuple[IPv4Address, IPv4Address], int]
        | Callable[[], Mapping[tuple[IPv4Address, IPv4Address], int]]
        | None = None,
    ) -> None:
        """Drop what is past its hold and not reported live; ``live`` (or the function
        that makes it) is only looked at when some hold has passed."""
        if self._first_until > now:
            return
        live = (live() if callable(live) else live) or {}
        keep: list[Commitment] = []
        reported: dict[tuple[IPv4Address, IPv4Address], int] = {}
        for c in reversed(self.commitments):  # the newest first
            pair = (c.head, c.tail)
            if c.until > now or reported.get(pair, 0) < live.get(pair, 0):
                keep.append(c)
                reported[pair] = reported.get(pair, 0) + 1
        keep.reverse()
        self._replace(keep)

    def release(self, commitment: Commitment) -> None:
        """Drop one commitment now (the service is known to be gone)."""
        self._replace([c for c in self.commitments if c is not commitment])

    def _replace(self, keep: list[Commitment]) -> None:
        gone = len(self.commitments) - len(keep)
        self.released_total += gone
        self.commitments = keep
        # the kept ones past their hold (reported live) are looked at again each time
        self._first_until = min((c.until for c in keep), default=float("inf"))
        if gone:
            self._totals = None

    def committed(self) -> dict[Hop, float]:
        if self._totals is None:
            totals: dict[Hop, float] = {}
            for c in self.commitments:
                for h in c.hops:
                    totals[h] = totals.get(h, 0.0) + c.bps
            self._totals = totals
        return dict(self._totals)

    def services(self) -> dict[Hop, list[Commitment]]:
        out: dict[Hop, list[Commitment]] = {}
        for c in self.commitments:
            for h in c.hops:
                out.setdefault(h, []).append(c)
        return out


def links_json(graph: QkdGraph, ledger: KeyLedger) -> dict[str, Any]:
    """``show qkd links json`` on the PCE: both directions of every link, each with its
    upstream end's rate, stock and buffer, the link's state, the consumption committed on
    that direction and the services committed on it."""
    committed = ledger.committed()
    services = ledger.services()
    rows = []
    for hop, lk in sorted(graph.hops(), key=lambda x: x[0]):
        d = lk.draw(hop[0])
        used = committed.get(hop, 0.0)
        rows.append(
            {
                "from": str(hop[0]),
                "to": str(hop[1]),
                "up": lk.up,
                "two_way": lk.two_way,
                "advertised": hop[0] in lk.ends,
                "rate_bps": d.rate_bps,
                "stock_bits": d.stock_bits,
                "buffer_bits": d.buffer_bits,
                "committed_bps": round(used, 3),
                "free_bps": round(d.rate_bps - used, 3),
                "services": [f"{c.head}->{c.tail}" for c in services.get(hop, [])],
            }
        )
    return {
        "sites": sorted(str(s) for s in graph.sites),
        "links": rows,
        "committed": ledger.committed_total,
        "released": ledger.released_total,
        "hold_s": ledger.hold,
    }
