"""The optical layer's cost: bring-up time and kernel memory of the channels (one veth pair
per TE link and lambda, compose/channels.py) for the paper topology, mesh6 and a generated
30-node ring, against the alternative of one veth pair per TE link carrying one VXLAN
device per lambda (VNI = lambda) at each end (docs/dataplane.md).

Prints one line per (topology, scheme): channels, devices, seconds to create them, seconds
to turn offloads off (ethtool), kernel memory (Slab + per-CPU, /proc/meminfo) grown per
channel. Needs root; makes namespaces ``bch-NODE`` only, removes them after. Run it under
the testbed lock (``flock /tmp/qkdnet-netns.lock``) on a shared machine.

    python bench/channels.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyroute2 import IPRoute, netns

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compose import channels, nsutil, topogen
from gmpls.dataplane.names import channel_ifname
from gmpls.topology import Topology, load

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "bch"


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, v = line.split(":", 1)
        out[k] = int(v.split()[0])
    return out


def kernel_kib() -> int:
    m = meminfo()
    return m["Slab"] + m.get("Percpu", 0)


def ns_path(node: str) -> str:
    return str(nsutil.netns_path(f"{PREFIX}-{node}"))


def nodes_of(topo: Topology) -> list[str]:
    return sorted({n for x in topo.te_links for n in (x.a, x.b)})


def veth_scheme(topo: Topology) -> tuple[int, float, float]:
    chans = channels.pairs(topo)
    t0 = time.perf_counter()
    channels.build(chans, ns_path)
    t1 = time.perf_counter()
    for node, names in channels.names_by_node(chans).items():
        channels.offloads_off(ns_path(node), names)
    return 2 * len(chans), t1 - t0, time.perf_counter() - t1


def vxlan_scheme(topo: Topology) -> tuple[int, float, float]:
    """One veth pair per TE link (addresses 10.200.K.1/.2), a VXLAN device per lambda at
    each end over it, named as the channel."""
    t0 = time.perf_counter()
    devices = 0
    per_node: dict[str, list[str]] = {}
    with IPRoute() as ipr:
        for k, x in enumerate(topo.te_links, 1):
            a_fd, b_fd = os.open(ns_path(x.a), os.O_RDONLY), os.open(ns_path(x.b), os.O_RDONLY)
            try:
                ipr.link(
                    "add",
                    ifname=f"tl{x.a_if}",
                    net_ns_fd=a_fd,
                    kind="veth",
                    peer={"ifname": f"tl{x.b_if}", "net_ns_fd": b_fd},
                )
            finally:
                os.close(a_fd)
                os.close(b_fd)
            devices += 2
            hi, lo = divmod(k, 250)
            for node, if_id, mine, theirs in (
                (x.a, x.a_if, f"10.{200 + hi}.{lo}.1", f"10.{200 + hi}.{lo}.2"),
                (x.b, x.b_if, f"10.{200 + hi}.{lo}.2", f"10.{200 + hi}.{lo}.1"),
            ):
                with nsutil.iproute_in(ns_path(node)) as nsr:
                    under = nsr.link_lookup(ifname=f"tl{if_id}")[0]
                    nsr.addr("add", index=under, address=mine, prefixlen=24)
                    nsr.link("set", index=under, state="up", mtu=1700)
                    for lam in x.lambdas:
                        name = channel_ifname(if_id, lam)
                        nsr.link(
                            "add",
                            ifname=name,
                            kind="vxlan",
                            vxlan_id=k * 65536 + (lam & 0xFFFF),  # one VNI space per node
                            vxlan_link=under,
                            vxlan_local=mine,
                            vxlan_group=theirs,
                            vxlan_port=4789,
                        )
                        idx = nsr.link_lookup(ifname=name)[0]
                        nsr.link("set", index=idx, mtu=1600, state="up")
                        per_node.setdefault(node, []).append(name)
                        devices += 1
    t1 = time.perf_counter()
    for node, names in per_node.items():
        channels.offloads_off(ns_path(node), names)
    return devices, t1 - t0, time.perf_counter() - t1


def measure(topo: Topology, scheme: Callable[[Topology], tuple[int, float, float]]) -> str:
    nodes = nodes_of(topo)
    for n in nodes:
        nsutil.create_netns(f"{PREFIX}-{n}")
    try:
        time.sleep(0.2)
        before = kernel_kib()
        devices, t_create, t_ethtool = scheme(topo)
        time.sleep(0.2)
        grown = kernel_kib() - before
    finally:
        for n in nodes:
            with contextlib.suppress(OSError):
                netns.remove(f"{PREFIX}-{n}")
    chans = sum(len(x.lambdas) for x in topo.te_links)
    return (
        f"{topo.name:<8} {scheme.__name__:<12} {chans:>5} {devices:>7} {t_create:>9.2f} "
        f"{t_ethtool:>9.2f} {grown / max(chans, 1):>13.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the paper topology only")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    topos = [load(ROOT / "topologies" / "paper.yaml")]
    if not a.quick:
        topos.append(load(ROOT / "topologies" / "mesh6.yaml"))
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "ring30.yaml"
            f.write_text(topogen.dump(topogen.generate("ring", 30, name="ring30")))
            topos.append(load(f))
    print(
        f"{'topology':<8} {'scheme':<12} {'chans':>5} {'devices':>7} {'create s':>9} "
        f"{'ethtool s':>9} {'KiB/channel':>13}"
    )
    for topo in topos:
        for scheme in (veth_scheme, vxlan_scheme):
            print(measure(topo, scheme), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
