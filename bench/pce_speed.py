"""PCE benchmark: path computation time and PCEP throughput on generated topologies.

Run: ``.venv/bin/python bench/pce_speed.py [--quick] [--sizes 100,1000] [--lambdas 8,80]``.

For each topology (N nodes on a ring plus N/2 random chords, so about 3 TE links per
node, TE metrics 1..100, 100 Gb/s, each of the W DWDM channels free on a link with
probability 0.7 so that wavelength continuity matters), built as the RI and TE LSAs the
nodes would flood and fed to the TED:

- compute: p50/p99 of :meth:`pce.compute.PathComputer.compute` for random QE requests
  (all nodes QE capable), with the share that needed Yen's next paths and the no-paths;
- baseline: the same requests solved by a straightforward networkx CSPF (drop links
  without the bandwidth, ``nx.shortest_simple_paths`` by TE metric, first of the k = 5
  shortest with a common free channel, first fit), and the speed ratio;
- PCEP: requests per second over a real PCEP session on loopback (the PcepServer and a
  PcepClient in this process, 32 PCReqs in flight), and the sequential round trip.

The issue's goals (p50 <= 2 ms at 1,000 nodes / 80 wavelengths, >= 500 requests/s, faster
than networkx) are printed next to the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import time
from ipaddress import IPv4Address

import networkx as nx

from gmpls import qe
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType, Options
from gmpls.ospf.lsa import LSA
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.te import RouterAddress, TeLinkParams, TeLSA, link_tlv, te_lsa_id
from pce.compute import PathComputer, PathRequest
from pce.ted import Ted

OPTS = Options.E | Options.O
BW = 100e9 / 8
QE = qe.QeParams()


def rid(i: int) -> IPv4Address:
    return IPv4Address(0x0A000000 + i + 1)  # 10.0.0.1 ...


def generate(
    n: int, lambdas: int, seed: int = 1
) -> tuple[Ted, list[tuple[int, int, int, int, int, tuple[int, ...]]]]:
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = {(i, (i + 1) % n) for i in range(n)}
    while len(edges) < n + n // 2:
        a, b = rng.sample(range(n), 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    nif = [0] * n
    links = []
    for a, b in sorted(edges):
        nif[a] += 1
        nif[b] += 1
        chans = tuple(c for c in range(1, lambdas + 1) if rng.random() < 0.7)
        links.append((a, nif[a], b, nif[b], rng.randint(1, 100), chans))
    ted = Ted()
    for i in range(n):
        ted.install(
            LSA.build(
                LsType.OPAQUE_AREA,
                ri_lsa_id(0),
                rid(i),
                INITIAL_SEQUENCE,
                RouterInfoLSA((capabilities(te=True, qe_capable=True),)),
                options=OPTS,
            )
        )
    for a, a_if, b, b_if, metric, chans in links:
        for x, x_if, y, y_if in ((a, a_if, b, b_if), (b, b_if, a, a_if)):
            p = TeLinkParams(x_if, y_if, rid(y), metric, BW, BW, (BW,) * 8, chans)
            body = TeLSA((RouterAddress(rid(x)), link_tlv(p)))
            ted.install(
                LSA.build(
                    LsType.OPAQUE_AREA,
                    te_lsa_id(x_if),
                    rid(x),
                    INITIAL_SEQUENCE,
                    body,
                    options=OPTS,
                )
            )
    return ted, links


def networkx_cspf(
    G: nx.Graph, src: int, dst: int, bandwidth: float, k: int = 5
) -> tuple[list[int], int] | None:
    """The straightforward CSPF: prune by bandwidth, Yen via networkx, first fit."""
    H = nx.subgraph_view(G, filter_edge=lambda a, b: G[a][b]["bw"] >= bandwidth)
    try:
        for i, path in enumerate(nx.shortest_simple_paths(H, src, dst, weight="metric")):
            if i >= k:
                return None
            common = set(H[path[0]][path[1]]["chans"])
            for a, b in itertools.pairwise(path[1:]):
                common &= H[a][b]["chans"]
            if common:
                return path, min(common)
    except nx.NetworkXNoPath:
        return None
    return None


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


async def pcep_rate(
    pc: PathComputer, pairs: list[tuple[IPv4Address, IPv4Address]], seconds: float
) -> tuple[float, float, int]:
    from daemonkit.pcep import PcepClient
    from gmpls.pcep.session import SessionConfig
    from pce.server import PcepServer
    from pce.service import PceService

    server = PcepServer(
        PceService(pc, clock=time.perf_counter), SessionConfig(), host="127.0.0.1", port=0
    )
    await server.start()
    client = PcepClient("127.0.0.1", server.port)
    await client.start()
    try:
        await client.wait_up()
        # sequential round trips
        rtts = []
        for s, d in pairs[:200]:
            t0 = time.perf_counter()
            await client.request(s, d, QE)
            rtts.append(time.perf_counter() - t0)
        # 32 requests in flight for ``seconds``
        done = 0
        stop = time.perf_counter() + seconds
        it = iter(pairs * 1000)

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                s, d = next(it)
                await client.request(s, d, QE)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(32)))
        rate = done / (time.perf_counter() - t0)
        return rate, statistics.median(rtts), done
    finally:
        await client.close()
        await server.stop()


def run(n: int, lambdas: int, nreq: int, pcep_seconds: float, seed: int) -> None:
    t0 = time.perf_counter()
    ted, links = generate(n, lambdas, seed)
    pc = PathComputer(ted)
    g = pc.graph
    build = time.perf_counter() - t0
    rng = random.Random(seed + 1)
    reqs = [tuple(rng.sample(range(n), 2)) for _ in range(nreq)]
    times = []
    yen_used = nopath = 0
    ours = []
    for a, b in reqs:
        t = time.perf_counter()
        r = pc.compute(PathRequest(rid(a), rid(b), qe=QE))
        times.append(time.perf_counter() - t)
        ours.append(r)
        yen_used += r.candidates > 1
        nopath += not r.ok
    G = nx.Graph()
    for a, _, b, _, metric, chans in links:
        G.add_edge(a, b, metric=metric, bw=BW, chans=set(chans))
    nx_times = []
    agree = 0
    for (a, b), r in zip(reqs, ours, strict=True):
        t = time.perf_counter()
        res = networkx_cspf(G, a, b, 0.0)
        nx_times.append(time.perf_counter() - t)
        agree += (res is None) == (not r.ok) and (res is None or res[1] == r.channel)
    p50, p99 = pct(times, 0.5) * 1e3, pct(times, 0.99) * 1e3
    nx50 = pct(nx_times, 0.5) * 1e3
    print(
        f"{n:>6} nodes {len(links):>6} links {lambdas:>3} lambdas | TED+graph {build:6.2f} s | "
        f"compute p50 {p50:7.3f} ms p99 {p99:7.3f} ms (Yen {yen_used}/{nreq}, no-path {nopath}) | "
        f"networkx p50 {nx50:8.3f} ms -> {nx50 / p50 if p50 else float('inf'):5.1f}x "
        f"(mean {statistics.fmean(nx_times) / statistics.fmean(times):5.1f}x, same answer {agree}/{nreq})"
    )
    if pcep_seconds > 0:
        pairs = [(rid(a), rid(b)) for a, b in reqs]
        rate, rtt, done = asyncio.run(pcep_rate(pc, pairs, pcep_seconds))
        print(
            f"{'':>6} PCEP on loopback: {rate:8.0f} requests/s ({done} with 32 in flight), "
            f"sequential round trip p50 {rtt * 1e3:.3f} ms"
        )
    _ = g


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests, shorter PCEP runs")
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--lambdas", default="8,80")
    ap.add_argument("--requests", type=int)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    nreq = a.requests or (100 if a.quick else 1000)
    secs = 1.0 if a.quick else 3.0
    print(
        "goals (issue 4): p50 <= 2 ms at 1,000 nodes / 80 lambdas; >= 500 requests/s; faster than networkx"
    )
    for n in (int(x) for x in a.sizes.split(",")):
        for w in (int(x) for x in a.lambdas.split(",")):
            run(
                n, w, nreq if n < 10_000 else max(nreq // 5, 50), secs if n <= 1000 else 0.0, a.seed
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
