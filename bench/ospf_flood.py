"""Per-packet CPU of the OSPF core synchronising a grid of routers in one process.

Run: ``PYTHONPATH=$PWD .venv/bin/python bench/ospf_flood.py [--quick] [--side N]
[--profile] [--digest] [--busy SECONDS [--defer] [--rxmt SECONDS]]``.

A side x side grid of :class:`~gmpls.ospf.router.OspfRouter` cores (default 10 x 10 = 100
routers, ``--quick`` 5 x 5) is wired in memory on a virtual clock
(:mod:`tests.support.ospf_lab`: no sockets, no real time): point-to-point links, Hello 1 s,
dead 4 s. Each router originates its Router LSA and four opaque LSAs (a Router Information
LSA and three TE LSAs: its router address and two links), so every LSDB ends with
5 x N LSAs. The run goes until every adjacency is Full and every LSDB is the same (as
``Lab.run_until_converged`` says), which is what a pack of N routers in one event loop
has to do at start.

Printed, for the best of ``--repeat`` runs (default 3): CPU seconds of this process
(``time.process_time``, so others' work on a shared machine does not count), of which in
the cores' ``handle`` (the rest is the lab: delivery, the virtual clock, its checks that
LSDBs agree), the packets received by the cores, microseconds of the cores' CPU per packet
received (Ticks included), and the virtual time of convergence. ``--profile`` adds cProfile's top functions (cProfile roughly doubles the
time). ``--digest`` prints a SHA-256 of every packet sent (time, router, interface,
destination, bytes): two trees that print the same digest sent the same bytes at the same
virtual times, so a change meant to save CPU can be checked not to change the wire.

``--busy S`` models routers too busy to keep up (:mod:`tests.support.ospf_lab`'s
``service``: each works off one LS Request or Update every S virtual seconds from a
backlog, Hellos, DDs and acks at once, as a pack's shell does), with ``--rxmt`` (default
2 s) the retransmission interval. Without ``--defer`` the LS Updates wait whole in the
backlog, as they did before the cores deferred them; with it the cores answer duplicates
as they arrive and defer the rest (``defer_updates``). Printed besides: the LSAs
retransmitted, the backlog turns that had work, the copies not processed because the same
instance from the same neighbour was waiting.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # PYTHONPATH first

from gmpls.ospf.constants import LsType
from gmpls.ospf.events import OriginateOpaque, Received, Send
from gmpls.ospf.examples import te_link_params
from gmpls.ospf.lsa import LSAKey
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import RouterAddress, TeLSA, link_tlv, te_lsa_id
from tests.support.ospf_lab import Lab


class CountingLab(Lab):
    """The lab, counting the packets the cores receive and hashing what they send."""

    def __init__(self, digest: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.received = 0
        self.core_cpu = 0.0
        self.hash = hashlib.sha256() if digest else None

    def feed(self, r: OspfRouter, event: Any) -> None:
        t0 = time.process_time()
        actions = r.handle(event, self.now)
        self.core_cpu += time.process_time() - t0
        self._apply(r, actions)

    def _receive(self, router: OspfRouter, event: Received) -> None:
        self.received += 1
        super()._receive(router, event)

    def _apply(self, r: OspfRouter, actions: list[Any]) -> None:
        if self.hash is not None:
            for a in actions:
                if isinstance(a, Send):
                    line = f"{self.now:.6f} {r.router_id} {a.ifname} {a.dst} ".encode()
                    self.hash.update(line + a.data)
        super()._apply(r, actions)


def grid(
    side: int, digest: bool, busy: float | None = None, defer: bool = False, rxmt: int = 2
) -> CountingLab:
    lab = CountingLab(digest, service=busy, rxmt_interval=rxmt)
    rs = [
        [lab.router(f"10.255.{y}.{x + 1}", defer_updates=defer) for x in range(side)]
        for y in range(side)
    ]
    link = 0

    def connect(a: OspfRouter, b: OspfRouter) -> None:
        nonlocal link
        seg = f"l{link}"
        hi, lo = divmod(link, 64)
        for r, host in ((a, 1), (b, 2)):
            addr = f"10.{100 + hi}.{lo * 4 // 256}.{lo * 4 % 256 + host}/30"
            lab.connect(seg, r, addr, ifname=f"p{link}", network_type="point-to-point")
        link += 1

    for y in range(side):
        for x in range(side):
            if x + 1 < side:
                connect(rs[y][x], rs[y][x + 1])
            if y + 1 < side:
                connect(rs[y][x], rs[y + 1][x])
    lab.start()
    params = te_link_params()
    for row in rs:
        for r in row:
            rid = r.router_id
            lab.feed(
                r,
                OriginateOpaque(
                    LsType.OPAQUE_AREA,
                    ri_lsa_id(0),
                    RouterInfoLSA((capabilities(te=True, qe_capable=True),)),
                ),
            )
            lab.feed(
                r, OriginateOpaque(LsType.OPAQUE_AREA, te_lsa_id(0), TeLSA((RouterAddress(rid),)))
            )
            for i in (1, 2):
                body = TeLSA((link_tlv(params),))
                lab.feed(r, OriginateOpaque(LsType.OPAQUE_AREA, te_lsa_id(i), body))
    return lab


def run(
    side: int,
    profile: bool,
    digest: bool,
    busy: float | None = None,
    defer: bool = False,
    rxmt: int = 2,
) -> dict[str, Any]:
    lab = grid(side, digest, busy, defer, rxmt)
    prof = cProfile.Profile() if profile else None
    t0 = time.process_time()
    if prof:
        prof.enable()
    t_conv = lab.run_until_converged(limit=600)
    if prof:
        prof.disable()
    cpu = time.process_time() - t0
    n = side * side
    lsdb = {len(r.lsdb) for r in lab.routers.values()}
    assert lsdb == {5 * n}, lsdb
    assert (
        LSAKey(LsType.ROUTER, lab.alive()[0].router_id, lab.alive()[0].router_id)
        in next(iter(lab.routers.values())).lsdb
    )
    out = {
        "routers": n,
        "lsas": 5 * n,
        "cpu_s": cpu,
        "core_s": lab.core_cpu,
        "packets": lab.received,
        "us_per_packet": lab.core_cpu / lab.received * 1e6,
        "converged_at": t_conv,
        "digest": lab.hash.hexdigest() if lab.hash else None,
        "retransmitted": sum(r.lsu_counters["retransmitted"] for r in lab.routers.values()),
        "dropped": sum(r.lsu_counters["dropped_waiting"] for r in lab.routers.values()),
        "turns": lab.turns,
    }
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 5 x 5 grid")
    ap.add_argument("--side", type=int, default=None, help="grid side (default 10)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    ap.add_argument("--digest", action="store_true", help="hash every packet sent")
    ap.add_argument("--repeat", type=int, default=None, help="runs, the best kept (default 3)")
    ap.add_argument("--busy", type=float, default=None, help="virtual s per backlog packet")
    ap.add_argument("--defer", action="store_true", help="cores defer updates (with --busy)")
    ap.add_argument("--rxmt", type=int, default=2, help="retransmit interval (default 2 s)")
    args = ap.parse_args(argv)
    side = args.side or (5 if args.quick else 10)
    repeat = args.repeat or (1 if args.quick or args.profile else 3)
    runs = [
        run(side, args.profile, args.digest, args.busy, args.defer, args.rxmt)
        for _ in range(repeat)
    ]
    r = min(runs, key=lambda x: x["cpu_s"])
    print("routers  LSAs  CPU s  in cores s  packets  us/packet  converged at (virtual s)")
    print(
        f"{r['routers']:7d} {r['lsas']:5d} {r['cpu_s']:6.1f} {r['core_s']:11.1f} "
        f"{r['packets']:8d} {r['us_per_packet']:10.0f}  {r['converged_at']:.1f}"
    )
    print(
        f"LSAs retransmitted {r['retransmitted']}, backlog turns {r['turns']}, "
        f"copies dropped as waiting {r['dropped']}"
    )
    if r["digest"]:
        print(f"sent packets sha256 {r['digest']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
