"""Larger topologies for scale tests: ``qkdnet topo gen ring|grid|random``.

Every generated topology has GMPLS nodes ``tn1``..``tnN`` on one control LAN (router ID =
control address), a PCE and a client on the same LAN, and TE links between the nodes:

- ``ring``: tn1-tn2-...-tnN-tn1, TE metric 10;
- ``grid``: row-major on a ceil(sqrt(N))-wide grid, links right and down, TE metric 10;
- ``random``: a random spanning tree plus random chords up to 1.5 N links (average
  degree 3), TE metric a random multiple of 10 in 10..100; reproducible with ``--seed``.

The control LAN is 10.1.1.0/24 (nodes .1-.N, PCE .253, client .254) up to 250 nodes and
10.1.0.0/16 above (node i at 10.1.0.0 + i, PCE 10.1.255.253, client 10.1.255.254). Each
node numbers its TE interfaces 1, 2, ... in the order its links are listed; each link gets
``--lambdas`` wavelengths n = 1..L. ``--qe`` adds the paper's QKD side (two ETSI 004
proxies and two IDQ3P emulators on their own domains) at the two ends of the network's
diameter (:func:`qe_ends`: the pair of nodes farthest apart by TE metric, so a QE service
crosses the whole network). The PCE has OSPF priority 0, as in paper.yaml: it listens to
OSPF and is never the DR, so restarting it leaves the LAN alone. Note that a Linux bridge
takes at most 1024 ports, so the namespace backend brings up at most ~1020 nodes.

``--qkd`` adds a QKD network instead (docs/topology.md#generated-topologies): a site (key
manager ``kmI`` serving ``tnI``, on its own north domain ``aI`` 10.2.K.0/24 and key domain
``kI`` 10.11.K.0/24, K the site's rank; all key managers on ``kms`` 10.12.0.0/24) at every
node, or at the nodes ``--qkd-sites`` lists; a QKD link between two sites whenever a TE
path joins them without crossing another site, its fibre the sum of the TE hops' lengths
(each TE link draws one, uniform in 5..40 km to 0.1 km, from a generator seeded by
``--seed`` apart from the TE graph's, so adding ``--qkd`` leaves the graph as it was; the
shortest such path when there are several); a path too long for the decoy-BB84 model to
yield key gets no link. With ``--qe``, the diameter's two ends are sites and the QE
endpoints.

``--ospf p2p`` runs OSPF point-to-point on every link's /30 (implies ``--p2p``) instead
of on the control LAN, which stays for PCEP, RSVP and the CLIs (every node one hop from
every other there) and is advertised as a stub; the PCE gets a /30 of its own to tn1
(domain ``pce1``). A LAN of hundreds of routers floods every Hello to every router; links
scale (docs/scale.md).

``--timers`` sets the OSPF and RSVP timers (:data:`TIMERS`): ``fast`` (Hellos every
second) below :data:`SCALE_FROM` nodes, ``scale`` (OSPF's default 10/40 s, retransmit
30 s, SPF at most every 30 s, RSVP Hellos every 5 s) from there on, unless one is asked
for.

``--kind frr`` (or ``bird``) makes the routers FRR (BIRD) hosts instead of our node agents.
``--p2p`` also makes every link an IP link: a domain ``pK`` of its own (K = 1, 2, ... in
link order) with a /30 from 10.128.0.0/10, both ends on it (``.1`` for ``a``, ``.2`` for
``b``): what bench/ospf_converge.py runs point-to-point OSPF over.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import random
from typing import Any

import yaml

from gmpls.qkd import ratemodel

SHAPES = ("ring", "grid", "random")
#: ``--ospf``: on the control LAN (broadcast), or point-to-point on every link
OSPF_MODES = ("lan", "p2p")
#: the protocol timers ``--timers`` picks: ``fast`` for small labs (OSPF Hellos every
#: second, adjacencies in seconds), ``scale`` for hundreds of nodes (OSPF's defaults of 10
#: and 40 s, a 30 s retransmit interval, SPF throttled up to 30 s and 5 s RSVP Hellos: a
#: packed event loop busy flooding for many routers is late by seconds, docs/scale.md);
#: ``auto``: ``scale`` from :data:`SCALE_FROM` nodes on
TIMERS: dict[str, dict[str, dict[str, int]]] = {
    "fast": {
        "ospf": {"hello_interval": 1, "dead_interval": 4, "retransmit_interval": 2},
        "rsvp": {"refresh_ms": 30000, "keep_multiplier": 3, "hello_ms": 1000},
    },
    "scale": {
        "ospf": {
            "hello_interval": 10,
            "dead_interval": 40,
            "retransmit_interval": 30,
            # route computations at most every 30 s while LSAs keep coming: at 1,000
            # routers they were four fifths of a pack's CPU with FRR's 5 s (docs/scale.md)
            "spf_delay_ms": 500,
            "spf_hold_ms": 2000,
            "spf_max_hold_ms": 30000,
        },
        "rsvp": {"refresh_ms": 30000, "keep_multiplier": 3, "hello_ms": 5000},
    },
}
SCALE_FROM = 200
KINDS = ("node", "frr", "bird")
MAX_NODES = 65000
#: where the point-to-point /30s of ``--p2p`` come from
P2P_SPACE = ipaddress.IPv4Network("10.128.0.0/10")
#: ``--qkd``: at most this many sites (one /24 each on 10.2/16 and 10.11/16)
MAX_SITES = 250
#: ``--qkd``: each TE link's fibre, km (uniform, to 0.1 km)
FIBRE_KM = (5.0, 40.0)


def _edges(shape: str, n: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """(a, b, metric) with 1-based node numbers."""
    if shape == "ring":
        if n == 2:
            return [(1, 2, 10)]
        return [(i, i % n + 1, 10) for i in range(1, n + 1)]
    if shape == "grid":
        cols = math.ceil(math.sqrt(n))
        out = []
        for k in range(n):
            if k % cols < cols - 1 and k + 1 < n:
                out.append((k + 1, k + 2, 10))
            if k + cols < n:
                out.append((k + 1, k + cols + 1, 10))
        return out
    if shape == "random":
        pairs: set[tuple[int, int]] = set()
        for i in range(2, n + 1):
            pairs.add((rng.randint(1, i - 1), i))
        target = min(round(1.5 * n), n * (n - 1) // 2)
        while len(pairs) < target:
            a, b = rng.sample(range(1, n + 1), 2)
            pairs.add((min(a, b), max(a, b)))
        return [(a, b, 10 * rng.randint(1, 10)) for a, b in sorted(pairs)]
    raise ValueError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})")


def generate(
    shape: str,
    nodes: int,
    *,
    seed: int = 1,
    lambdas: int = 8,
    prefix: str = "qk",
    name: str | None = None,
    qe: bool = False,
    kind: str = "node",
    p2p: bool = False,
    qkd: bool = False,
    qkd_sites: tuple[int, ...] = (),
    ospf: str = "lan",
    timers: str = "auto",
) -> dict[str, Any]:
    """The topology document (to be written with :func:`dump`, read by the loader)."""
    _check(nodes, lambdas, kind, qe or qkd)
    if ospf not in OSPF_MODES:
        raise ValueError(f"--ospf {ospf}: one of {', '.join(OSPF_MODES)}")
    if timers == "auto":
        timers = "scale" if nodes >= SCALE_FROM else "fast"
    if timers not in TIMERS:
        raise ValueError(f"--timers {timers}: one of auto, {', '.join(TIMERS)}")
    rng = random.Random(seed)
    domains, hosts = _control_plane(nodes, kind)
    edges = _edges(shape, nodes, rng)
    if p2p or ospf == "p2p":
        _p2p_domains(edges, domains, hosts)
    if ospf == "p2p":
        _ospf_over_links(domains, hosts, len(edges))
    doc: dict[str, Any] = {
        "name": name or f"{shape}{nodes}",
        "prefix": prefix,
        "domains": domains,
        "ospf": {"area": "0.0.0.0", **TIMERS[timers]["ospf"]},
        "rsvp": dict(TIMERS[timers]["rsvp"]),
        "hosts": hosts,
    }
    ends = qe_ends(edges, nodes) if qe else None
    if qkd:
        sites = set(qkd_sites or range(1, nodes + 1)) | set(ends or ())
        _add_qkd_network(doc, edges, nodes, sorted(sites), ends, seed)
    elif ends is not None:
        _add_qkd(doc, f"tn{ends[0]}", f"tn{ends[1]}")
    if ends is not None:
        _add_access(doc, ends)
    doc["te_links"] = _te_links(edges, nodes, lambdas)
    return doc


#: up to this many nodes :func:`qe_ends` is exact (a shortest-path tree from every node);
#: above, a double sweep (from tn1 to the farthest node u, then the farthest from u)
EXACT_DIAMETER = 400


def _distances(adj: dict[int, list[tuple[int, int]]], src: int) -> dict[int, tuple[int, int]]:
    """(TE metric, hops) of the shortest path from ``src`` to every node it reaches."""
    dist = {src: (0, 0)}
    todo = [(0, 0, src)]
    while todo:
        d, hops, u = heapq.heappop(todo)
        if (d, hops) > dist[u]:
            continue
        for v, metric in adj.get(u, ()):
            cand = (d + metric, hops + 1)
            if cand < dist.get(v, (math.inf, 0)):
                dist[v] = cand
                heapq.heappush(todo, (cand[0], cand[1], v))
    return dist


def qe_ends(edges: list[tuple[int, int, int]], nodes: int) -> tuple[int, int]:
    """The QE ends of ``--qe``: the two nodes farthest apart by TE metric (then by hops;
    then the lowest numbers), the network's diameter, exactly up to
    :data:`EXACT_DIAMETER` nodes and by a double sweep above."""
    adj: dict[int, list[tuple[int, int]]] = {}
    for a, b, metric in edges:
        adj.setdefault(a, []).append((b, metric))
        adj.setdefault(b, []).append((a, metric))

    def farthest(src: int) -> int:
        dist = _distances(adj, src)
        return max(dist, key=lambda v: (dist[v], -v))

    if nodes > EXACT_DIAMETER:
        u = farthest(1)
        v = farthest(u)
        return min(u, v), max(u, v)
    best: tuple[tuple[int, int], int, int] | None = None
    for a in range(1, nodes + 1):
        for b, d in _distances(adj, a).items():
            if b > a and (best is None or (d, -a, -b) > (best[0], -best[1], -best[2])):
                best = (d, a, b)
    assert best is not None
    return best[1], best[2]


def _add_access(doc: dict[str, Any], ends: tuple[int, ...]) -> None:
    """A client host ``htnI`` behind each QE end ``tnI``, on its access domain ``etnI``,
    all in 10.3.0.0/24 (the subnet a layer-2 QE service bridges)."""
    for k, i in enumerate(ends, 1):
        doc["domains"][f"etn{i}"] = {
            "subnet": "10.3.0.0/24",
            "access": f"tn{i}",
            "description": f"client host htn{i} behind tn{i}",
        }
        doc["hosts"][f"htn{i}"] = {"kind": "host", "interfaces": {f"etn{i}": f"10.3.0.{k}"}}


def _check(nodes: int, lambdas: int, kind: str, qe: bool) -> None:
    if not 2 <= nodes <= MAX_NODES:
        raise ValueError(f"--nodes must be 2..{MAX_NODES}, not {nodes}")
    if not 0 <= lambdas <= 4096:
        raise ValueError(f"--lambdas must be 0..4096, not {lambdas}")
    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if qe and kind != "node":
        raise ValueError("--qe and --qkd need routers of kind node (QE capability is ours)")


def _control_plane(nodes: int, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The control domain (a /24 up to 250 routers, else a /16) with the routers, the PCE
    and the client on it."""
    if nodes <= 250:
        net = ipaddress.IPv4Network("10.1.1.0/24")
        pce_ip, client_ip = str(net.network_address + 253), str(net.network_address + 254)
    else:
        net = ipaddress.IPv4Network("10.1.0.0/16")
        pce_ip, client_ip = "10.1.255.253", "10.1.255.254"
    domains: dict[str, Any] = {"ctrl": {"subnet": str(net), "description": "GMPLS control plane"}}
    hosts: dict[str, Any] = {}
    for i in range(1, nodes + 1):
        ip = str(net.network_address + i)
        hosts[f"tn{i}"] = {"kind": kind, "router_id": ip, "interfaces": {"ctrl": ip}}
        if kind == "node":
            hosts[f"tn{i}"]["cli_port"] = 23
    hosts["pce"] = {
        "kind": "pce",
        "router_id": pce_ip,
        "interfaces": {"ctrl": pce_ip},
        "cli_port": 23,
        "ospf_priority": 0,  # never the DR, as in paper.yaml
    }
    hosts["client"] = {"kind": "client", "interfaces": {"ctrl": client_ip}}
    return domains, hosts


def _te_links(edges: list[tuple[int, int, int]], nodes: int, lambdas: int) -> list[Any]:
    """One TE link per edge, interface IDs numbered from 1 at each router."""
    next_if = dict.fromkeys(range(1, nodes + 1), 1)
    links = []
    for a, b, metric in edges:
        links.append(
            {
                "a": f"tn{a}",
                "a_if": next_if[a],
                "b": f"tn{b}",
                "b_if": next_if[b],
                "metric": metric,
                "bandwidth_mbps": 100000,
                "lambdas": list(range(1, lambdas + 1)),
            }
        )
        next_if[a] += 1
        next_if[b] += 1
    return links


def _add_qkd(doc: dict[str, Any], first: str, last: str) -> None:
    """The paper's QKD side between ``first`` and ``last``: two proxies, two emulators."""
    domains, hosts = doc["domains"], doc["hosts"]
    domains.update(
        {
            "qa": {"subnet": "10.2.1.0/24", "description": f"{first} to ETSI 004 proxy A"},
            "qb": {"subnet": "10.2.2.0/24", "description": f"{last} to ETSI 004 proxy B"},
            "ka": {"subnet": "10.11.2.0/24", "description": "proxy A to IDQ3P emulator A"},
            "kb": {"subnet": "10.11.3.0/24", "description": "proxy B to IDQ3P emulator B"},
            "sync": {"subnet": "10.11.1.0/24", "description": "proxy synchronisation"},
        }
    )
    hosts[first]["interfaces"]["qa"] = "10.2.1.1"
    hosts[first]["qe"] = {"capable": True, "proxy": "etsiA"}
    hosts[last]["interfaces"]["qb"] = "10.2.2.5"
    hosts[last]["qe"] = {"capable": True, "proxy": "etsiB"}
    hosts["etsiA"] = {
        "kind": "qkd-proxy",
        "interfaces": {"qa": "10.2.1.11", "ka": "10.11.2.1", "sync": "10.11.1.11"},
        "serves": first,
        "idq": "idqA",
        "peer": "etsiB",
    }
    hosts["etsiB"] = {
        "kind": "qkd-proxy",
        "interfaces": {"qb": "10.2.2.11", "kb": "10.11.3.1", "sync": "10.11.1.15"},
        "serves": last,
        "idq": "idqB",
        "peer": "etsiA",
    }
    hosts["idqA"] = {"kind": "idq3p", "interfaces": {"ka": "10.11.2.2"}, "pair": "idqB"}
    hosts["idqB"] = {"kind": "idq3p", "interfaces": {"kb": "10.11.3.2"}, "pair": "idqA"}
    # no key material: `qkdnet up` makes it fresh for every bring-up (compose.keyfiles)
    doc["qkd"] = {
        "secret_key_rate_bps": 13700000,
        "buffer_bits": 67108864,
    }


def _qkd_paths(
    edges: list[tuple[int, int, int]], sites: list[int], seed: int
) -> dict[tuple[int, int], float]:
    """``{(site a, site b): fibre km}`` for each two sites a TE path joins without crossing
    a third site, the shortest such path in fibre."""
    rng = random.Random(f"qkd-fibre:{seed}")
    adj: dict[int, list[tuple[int, float]]] = {}
    for a, b, _ in edges:
        km = round(rng.uniform(*FIBRE_KM), 1)
        adj.setdefault(a, []).append((b, km))
        adj.setdefault(b, []).append((a, km))
    is_site = set(sites)
    out: dict[tuple[int, int], float] = {}
    for s in sites:
        dist = {s: 0.0}
        todo = [(0.0, s)]
        while todo:
            d, u = heapq.heappop(todo)
            if d > dist[u]:
                continue
            if u != s and u in is_site:
                if s < u:
                    out[(s, u)] = round(d, 1)
                continue  # a path ends at the first site it meets
            for v, km in adj.get(u, ()):
                if d + km < dist.get(v, math.inf):
                    dist[v] = d + km
                    heapq.heappush(todo, (d + km, v))
    return dict(sorted(out.items()))


def _add_qkd_network(
    doc: dict[str, Any],
    edges: list[tuple[int, int, int]],
    nodes: int,
    sites: list[int],
    qe: tuple[int, int] | None,
    seed: int,
) -> None:
    """A key manager per site, QKD links between neighbouring sites (module docstring)."""
    if len(sites) < 2 or len(sites) > MAX_SITES or not 1 <= sites[0] <= sites[-1] <= nodes:
        raise ValueError(f"--qkd-sites: 2..{MAX_SITES} sites among nodes 1..{nodes}")
    paths = {
        ab: km for ab, km in _qkd_paths(edges, sites, seed).items() if ratemodel.rate_for(km) > 0
    }
    domains, hosts = doc["domains"], doc["hosts"]
    domains["kms"] = {"subnet": "10.12.0.0/24", "description": "the key managers' LAN"}
    idqs: dict[int, int] = {}
    for rank, i in enumerate(sites, 1):
        if not any(i in ab for ab in paths):
            raise ValueError(f"--qkd: site tn{i} has no QKD link (no other site in reach)")
        domains[f"a{i}"] = {"subnet": f"10.2.{rank}.0/24", "description": f"tn{i} to km{i}"}
        domains[f"k{i}"] = {"subnet": f"10.11.{rank}.0/24", "description": f"km{i}'s emulators"}
        hosts[f"tn{i}"]["interfaces"][f"a{i}"] = f"10.2.{rank}.1"
        hosts[f"km{i}"] = {
            "kind": "qkd-proxy",
            "interfaces": {
                f"a{i}": f"10.2.{rank}.11",
                f"k{i}": f"10.11.{rank}.1",
                "kms": f"10.12.0.{rank}",
            },
            "serves": f"tn{i}",
            "cli_port": 23,
        }
        idqs[i] = 0
    links = []
    for k, ((a, b), km) in enumerate(paths.items(), 1):
        for end, suffix in ((a, "a"), (b, "b")):
            idqs[end] += 1
            if idqs[end] > 240:
                raise ValueError(f"--qkd: site tn{end} has more than 240 QKD links")
            rank = sites.index(end) + 1
            hosts[f"q{k}{suffix}"] = {
                "kind": "idq3p",
                "interfaces": {f"k{end}": f"10.11.{rank}.{10 + idqs[end]}"},
            }
        links.append(
            {"a": f"km{a}", "b": f"km{b}", "a_idq": f"q{k}a", "b_idq": f"q{k}b", "fibre_km": km}
        )
    if qe is not None:
        for i in qe:
            hosts[f"tn{i}"]["qe"] = {"capable": True, "proxy": f"km{i}"}
    # no key material: `qkdnet up` makes it fresh for every bring-up (compose.keyfiles)
    doc["qkd"] = {"secret_key_rate_bps": 13700000, "buffer_bits": 16777216}
    doc["qkd_links"] = links


def _p2p_domains(
    edges: list[tuple[int, int, int]], domains: dict[str, Any], hosts: dict[str, Any]
) -> None:
    """One /30 domain per link, ``a`` at .1 and ``b`` at .2."""
    if len(edges) > P2P_SPACE.num_addresses // 4:
        raise ValueError(f"--p2p: {len(edges)} links do not fit in {P2P_SPACE}")
    base = P2P_SPACE.network_address
    for k, (a, b, _) in enumerate(edges):
        name = f"p{k + 1}"
        net = ipaddress.IPv4Network((base + 4 * k, 30))
        domains[name] = {"subnet": str(net), "description": f"tn{a} - tn{b}"}
        hosts[f"tn{a}"]["interfaces"][name] = str(net.network_address + 1)
        hosts[f"tn{b}"]["interfaces"][name] = str(net.network_address + 2)


def _ospf_over_links(domains: dict[str, Any], hosts: dict[str, Any], links: int) -> None:
    """``--ospf p2p``: OSPF point-to-point on every link's /30, the control LAN passive
    (it still carries PCEP, RSVP and the CLIs, all one hop away), and the PCE on a /30 of
    its own to tn1, where it learns the TED as a router on that link."""
    for name, d in domains.items():
        if name != "ctrl":
            d["ospf"] = "point-to-point"
    domains["ctrl"]["ospf"] = "passive"
    net = ipaddress.IPv4Network((P2P_SPACE.network_address + 4 * links, 30))
    domains["pce1"] = {"subnet": str(net), "description": "pce - tn1", "ospf": "point-to-point"}
    hosts["pce"]["interfaces"]["pce1"] = str(net.network_address + 1)
    hosts["tn1"]["interfaces"]["pce1"] = str(net.network_address + 2)


def dump(doc: dict[str, Any]) -> str:
    head = (
        f"# {doc['name']}: generated by `qkdnet topo gen` "
        f"({len(doc['te_links'])} TE links); schema in docs/topology.md\n"
    )
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    return head + body
