"""Key-aware routing benchmark: blocking probability and key utilisation of QE services
whose keys are relayed over a QKD network, key-aware relay paths against fewest-hop ones.

Run: ``.venv/bin/python bench/qkd_routing.py [--quick] [--seed 1] [--requests 4000]``.

Networks:

- mesh6: six sites, a QKD ring with a chord (1-2 12 km, 2-3 25, 3-4 8, 4-5 30, 5-6 18,
  6-1 40, chord 2-5 5 km), as topologies/mesh6.yaml describes it (read from there when the
  file exists, else from the same description inline);
- gen50: 50 sites, a ring plus 25 random chords, fibre lengths drawn from 5-60 km.

Each link's secret-key rate comes from the decoy-BB84 model (idq3p_emulator/model.py:
3.4 Mb/s at 40 km, 17 Mb/s at 5 km), its buffer is 8 MiB (the default of the topology
file's ``qkd.buffer_bits``), or mesh6.yaml's when read from there.

The PCE is the real one: a :class:`pce.service.PceService` over a TED fed the LSAs the
site nodes would flood (RI with the QE bit, TE links along the QKD links, QKD-link TLVs),
asked with real PCReqs (QE METRICs of 32-byte keys). A Poisson stream of requests
(random QE ends, exponential holding times of mean 100 s, refresh rates drawn uniformly
from 10-1000 refreshes/s, i.e. 2.56-256 kb/s) is played once per policy with the same
random draws (the first 10 % of the requests warm the network up and are not counted):

- key-aware: the PCE's algorithm (pce/keyroute.py): feasible links only, weight
  1 + need/free + (1 - stock/buffer);
- fewest-feasible: fewest hops over the same feasible links, every weight 1 (how much
  of the gain is the weight, how much the rerouting around full links);
- fewest-hop: the fewest-hop relay path over links that are up, admitted only when the
  consumption fits every link of it (what a PCE that routes keys like IP would do);
- no PCE: the key managers' own fewest-hop choice with no admission at all: every
  service is set up, and the stock model says how much of the key it asked for it got.

Stock model, as the emulators and key managers work (docs/idq3p.md#rate-and-buffer,
docs/qkd-network.md): a link is two key streams, one per end, each filling at half the
link's rate up to half its buffer; a relay hop draws from its upstream end's stream (that
key manager opens the hop's session), so a stream drains by the consumption of the
services whose relay crosses the link in its direction (the first key of a service is
drawn at set-up). Each site node advertises its end's stream (rate, stock, buffer) and
re-advertises it (the TED gets a new QKD-link LSA) when its stock moved by 10 % of the
buffer. Key utilisation = key bits consumed / key bits generated, over all streams. The
optical layer is no bottleneck here (no lambda is held between requests), so every
refusal is a key refusal. "peak stream load / rate" is the highest consumption any
stream had to feed over its rate, and "admitted over a stream" counts the admitted
services that took a stream past its rate: the PCE commits per direction, so both stay at
most 1 and 0 with it. Nothing is asserted: figures are printed.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from gmpls import qe
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType, Options
from gmpls.ospf.lsa import LSA
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_lsa_id
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.te import RouterAddress, TeLinkParams, TeLSA, link_tlv, te_lsa_id
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep.qemetrics import qe_metrics
from idq3p_emulator.model import rate_for
from pce.compute import PathComputer
from pce.keyroute import Commitment, Hop, KeyLedger, Policy, relay_path
from pce.service import PceService
from pce.ted import Ted

OPTS = Options.E | Options.O
BW = 100e9 / 8
BUFFER = 67_108_864
KEY_BYTES = 32
HOLD_MEAN = 100.0
#: re-advertise a link when its stock moved by this share of its buffer
HYSTERESIS = 0.10
MESH6 = [(1, 2, 12), (2, 3, 25), (3, 4, 8), (4, 5, 30), (5, 6, 18), (1, 6, 40), (2, 5, 5)]
MESH6_YAML = Path(__file__).resolve().parents[1] / "topologies" / "mesh6.yaml"


def rid(i: int) -> IPv4Address:
    return IPv4Address(0x0A000000 + i)  # site i's node: 10.0.0.i


@dataclass(frozen=True, slots=True)
class Net:
    name: str
    sites: int
    #: (site a, site b, rate b/s), sites numbered from 1
    links: tuple[tuple[int, int, int], ...]
    #: every link's buffer, bits
    buffer: int = BUFFER


def mesh6() -> Net:
    """mesh6's QKD graph: from topologies/mesh6.yaml when present, else inline."""
    try:
        from gmpls.topology import load

        topo: Any = load(MESH6_YAML)
        ids = {str(topo.site_id(km)): n for n, km in enumerate(sorted(_kms(topo)), 1)}
        links = tuple(
            (ids[str(topo.site_id(x.a))], ids[str(topo.site_id(x.b))], int(x.rate_bps))
            for x in topo.qkd_links
        )
        if len(links) == len(MESH6):
            buffer = min(x.buffer_bits for x in topo.qkd_links)
            return Net("mesh6 (topologies/mesh6.yaml)", 6, links, buffer)
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    return Net("mesh6 (inline)", 6, tuple((a, b, round(rate_for(km))) for a, b, km in MESH6))


def _kms(topo: Any) -> set[str]:
    return {x.a for x in topo.qkd_links} | {x.b for x in topo.qkd_links}


def generated(n: int = 50, seed: int = 1) -> Net:
    rng = random.Random(seed)
    edges = {(i, i % n + 1) for i in range(1, n + 1)}
    while len(edges) < n + n // 2:
        a, b = sorted(rng.sample(range(1, n + 1), 2))
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    links = tuple((a, b, round(rate_for(rng.uniform(5, 60)))) for a, b in sorted(edges))
    return Net(f"gen{n} (ring + {n // 2} chords, 5-60 km)", n, links)


# -- the TED the site nodes would build ----------------------------------------------------


def _lsa(ls_id: IPv4Address, router: int, body: Any, seq: int = INITIAL_SEQUENCE) -> LSA:
    return LSA.build(LsType.OPAQUE_AREA, ls_id, rid(router), seq, body, options=OPTS)


class Network:
    """The TED and the QKD-link advertisements of one network, re-advertised with
    hysteresis as the stock model moves."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.ted = Ted()
        nif = [0] * (net.sites + 1)
        for i in range(1, net.sites + 1):
            caps = RouterInfoLSA((capabilities(te=True, qe_capable=True),))
            self.ted.install(_lsa(ri_lsa_id(0), i, caps))
        #: (site, far site) -> [instance, seq, advertised stock]
        self.ads: dict[tuple[int, int], list[int]] = {}
        self.buffer = net.buffer // 2  # each end's stream holds half the link's buffer
        for a, b, _ in net.links:
            nif[a] += 1
            nif[b] += 1
            for x, y, xi, yi in ((a, b, nif[a], nif[b]), (b, a, nif[b], nif[a])):
                p = TeLinkParams(xi, yi, rid(y), 10, BW, BW, (BW,) * 8, tuple(range(1, 9)))
                self.ted.install(
                    _lsa(te_lsa_id(xi), x, TeLSA((RouterAddress(rid(x)), link_tlv(p))))
                )
                self.ads[(x, y)] = [xi - 1, INITIAL_SEQUENCE, -1]
        #: each direction's stream: half the link's rate
        self.rate: dict[Hop, int] = {}
        for a, b, r in net.links:
            self.rate[(rid(a), rid(b))] = self.rate[(rid(b), rid(a))] = r // 2

    def advertise(self, stock: dict[Hop, float], force: bool = False) -> None:
        for a, b, _ in self.net.links:
            for x, y in ((a, b), (b, a)):
                ad = self.ads[(x, y)]
                hop = (rid(x), rid(y))
                s = int(stock[hop])
                if force or abs(s - ad[2]) > HYSTERESIS * self.buffer:
                    ad[1] += 1
                    ad[2] = s
                    tlv = QkdLinkTlv(rid(x), rid(y), self.rate[hop], s, self.buffer, True)
                    self.ted.install(_lsa(qkd_lsa_id(ad[0]), x, TeLSA((tlv,)), ad[1]))


# -- the simulation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    at: float
    hold: float
    src: int
    dst: int
    refresh_ms: int


def requests(
    net: Net, n: int, erlangs: float, seed: int, rmin: float, rmax: float
) -> Iterator[Request]:
    rng = random.Random(seed)
    t = 0.0
    rate = erlangs / HOLD_MEAN
    for _ in range(n):
        t += rng.expovariate(rate)
        src, dst = rng.sample(range(1, net.sites + 1), 2)
        per_s = rng.uniform(rmin, rmax)
        yield Request(t, rng.expovariate(1 / HOLD_MEAN), src, dst, max(1, round(1000 / per_s)))


@dataclass(slots=True)
class Result:
    offered: int = 0
    blocked: int = 0
    generated_bits: float = 0.0
    consumed_bits: float = 0.0
    demanded_bits: float = 0.0
    hops: list[int] = field(default_factory=list)
    min_stock_share: float = 1.0
    #: the highest load on a stream (the consumption of the services whose relay crosses
    #: its link in its direction) over the stream's rate; above 1 that stream runs dry
    max_oneway_share: float = 0.0
    #: admitted services that took some stream's load above its rate
    oneway_over: int = 0
    seconds: float = 0.0

    @property
    def blocking(self) -> float:
        return self.blocked / self.offered if self.offered else 0.0

    @property
    def utilisation(self) -> float:
        return self.consumed_bits / self.generated_bits if self.generated_bits else 0.0

    @property
    def served(self) -> float:
        return self.consumed_bits / self.demanded_bits if self.demanded_bits else 1.0


class Stocks:
    """Per-stream stock (one stream per direction of a link): refill at the stream's
    rate up to its buffer, drain by the services whose relay crosses it that way."""

    def __init__(self, rate: dict[Hop, int], buffer: int, warm: float) -> None:
        self.rate = rate
        self.buffer = float(buffer)
        self.stock = dict.fromkeys(rate, self.buffer)
        self.load: dict[Hop, float] = dict.fromkeys(rate, 0.0)
        self.t = 0.0
        #: figures count from this time on (the network starts empty)
        self.warm = warm

    def advance(self, t: float, res: Result) -> None:
        dt = t - self.t
        counted = max(0.0, t - max(self.t, self.warm)) / dt if dt > 0 else 0.0
        self.t = t
        for k, r in self.rate.items():
            demand = self.load[k] * dt
            have = self.stock[k] + r * dt
            got = min(demand, have)
            self.stock[k] = min(self.buffer, have - got)
            res.generated_bits += r * dt * counted
            res.consumed_bits += got * counted
            res.demanded_bits += demand * counted
            if counted:
                res.min_stock_share = min(res.min_stock_share, self.stock[k] / self.buffer)

    def draw(self, hops: tuple[Hop, ...], bits: float) -> None:
        for h in hops:
            self.stock[h] = max(0.0, self.stock[h] - bits)


def run(net: Net, reqs: list[Request], policy: Policy | None) -> Result:
    """Play ``reqs`` against the PCE with ``policy`` (None: no PCE, no admission)."""
    network = Network(net)
    service = PceService(PathComputer(network.ted), keys=KeyLedger(hold=float("inf")))
    service.relay_policy = policy or "fewest-hop"
    warm = reqs[len(reqs) // 10].at
    stocks = Stocks(network.rate, network.buffer, warm)
    network.advertise(stocks.stock, force=True)
    res = Result()
    active: list[tuple[float, int, tuple[Hop, ...], float, Commitment | None]] = []
    t0 = time.perf_counter()
    for n, rq in enumerate(reqs):
        while active and active[0][0] <= rq.at:
            until, _, gone, bps, commitment = heapq.heappop(active)
            stocks.advance(until, res)
            for hop in gone:
                stocks.load[hop] -= bps
            if commitment is not None:
                service.keys.release(commitment)
        stocks.advance(rq.at, res)
        network.advertise(stocks.stock)
        counted = rq.at >= warm
        res.offered += counted
        params = qe.QeParams(key_length=KEY_BYTES, refresh_value=rq.refresh_ms)
        bps = 8.0 * KEY_BYTES * 1000 / rq.refresh_ms
        if policy is None:
            found = relay_path(
                network.ted.qkd_graph(), rid(rq.src), rid(rq.dst), 0.0, {}, 0, "fewest-hop"
            )
            sites, commitment = found.sites, None
        else:
            before = len(service.keys.commitments)
            msg = M.PCReq(
                (
                    M.Request(
                        O.RP(n + 1),
                        O.EndPointsIpv4(rid(rq.src), rid(rq.dst)),
                        metrics=qe_metrics(params),
                    ),
                )
            )
            rep, _, _ = service.handle(msg, rq.at)
            assert rep is not None
            (resp,) = rep.responses
            if resp.no_path is not None:
                res.blocked += counted
                continue
            sites = resp.relay
            commitment = (
                service.keys.commitments[-1] if len(service.keys.commitments) > before else None
            )
        hops = tuple(itertools.pairwise(sites))
        if counted:
            res.hops.append(len(hops))
        stocks.draw(hops, 8 * KEY_BYTES)
        over = False
        for hop in hops:
            stocks.load[hop] += bps
            share = stocks.load[hop] / network.rate[hop]
            res.max_oneway_share = max(res.max_oneway_share, share)
            over |= share > 1 + 1e-9
        res.oneway_over += counted and over
        heapq.heappush(active, (rq.at + rq.hold, n, hops, bps, commitment))
    res.seconds = time.perf_counter() - t0
    return res


def report(net: Net, erlangs: float, results: dict[str, Result]) -> None:
    cols = list(results.values())
    head = "".join(f"{name:>16}" for name in results)
    print(f"\n{net.name}, offered load {erlangs:g} Erlang\n  {'':<24}{head}")

    def row(label: str, values: list[str]) -> None:
        print(f"  {label:<24}" + "".join(f"{v:>16}" for v in values))

    row("blocking probability", [f"{r.blocking:.4f}" if r.offered and n != "no PCE" else "(admits all)"
                                 for n, r in results.items()])  # fmt: skip
    row("key utilisation", [f"{r.utilisation:.4f}" for r in cols])
    row("key demand served", [f"{r.served:.4f}" for r in cols])
    row("mean relay links", [f"{sum(r.hops) / len(r.hops) if r.hops else 0:.2f}" for r in cols])
    row("lowest stock / buffer", [f"{r.min_stock_share:.3f}" for r in cols])
    row("peak stream load / rate", [f"{r.max_oneway_share:.2f}" for r in cols])
    row("admitted over a stream", [f"{r.oneway_over}" for r in cols])
    row("wall time, s", [f"{r.seconds:.1f}" for r in cols])
    ka = results["key-aware"]
    for base in ("fewest-feasible", "fewest-hop"):
        b = results[base].blocking
        cut = f"{(1 - ka.blocking / b) * 100:.1f} %" if b else "n/a (none refused)"
        print(f"  key-aware refuses {cut} fewer requests than {base}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests, one load per network")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--refresh", default="10,1000", help="refreshes per second, min,max")
    ap.add_argument("--mesh6-loads", default="150,250,350", help="offered Erlangs")
    ap.add_argument("--gen50-loads", default="150,250,350", help="offered Erlangs")
    a = ap.parse_args()
    rmin, rmax = (float(x) for x in a.refresh.split(","))
    n = 600 if a.quick else a.requests
    for net, loads in ((mesh6(), a.mesh6_loads), (generated(50, a.seed), a.gen50_loads)):
        rates = sorted(r for _, _, r in net.links)
        print(
            f"\n== {net.name}: {net.sites} sites, {len(net.links)} QKD links, rates "
            f"{rates[0] / 1e6:.2f}-{rates[-1] / 1e6:.2f} Mb/s; {n} requests per run, "
            f"refresh {rmin:g}-{rmax:g}/s of {KEY_BYTES}-byte keys, hold mean {HOLD_MEAN:g} s, "
            f"buffers {net.buffer / 2**20:g} Mib"
        )
        for erl in [float(x) for x in loads.split(",")][: 1 if a.quick else None]:
            reqs = list(requests(net, n, erl, a.seed, rmin, rmax))
            results = {
                "key-aware": run(net, reqs, "key-aware"),
                "fewest-feasible": run(net, reqs, "fewest-feasible"),
                "fewest-hop": run(net, reqs, "fewest-hop"),
                "no PCE": run(net, reqs, None),
            }
            report(net, erl, results)


if __name__ == "__main__":
    main()
