"""The optical layer of a testbed in the kernel (docs/dataplane.md, "Optical layer and
cross-connects"), shared by both backends.

Every TE link becomes one channel per lambda: a veth pair whose ends are created directly
inside the two nodes' network namespaces (no end in the root namespace), each end named
after its own node's TE interface ID and the lambda (``te1l3`` at tn1, ``te2l3`` at tn2 for
lambda 3 of the link tn1:1 - tn2:2; :func:`gmpls.dataplane.names.channel_ifname`), MTU
:data:`CHANNEL_MTU`, up. Transmit checksum, TSO, GSO and GRO are turned off on the
channels and on both ends of every access link (:func:`offloads_off`), so that a frame
read from a port is a real frame no larger than the MTU, with its checksums computed.

A namespace is named by its path (``/run/netns/qk-tn1`` or a container's
``/proc/PID/ns/net``); removing a namespace (or stopping a container) destroys its
channels with it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from pyroute2 import IPRoute

from compose import nsutil
from gmpls.dataplane.names import channel_ifname
from gmpls.topology import Topology

#: channels carry a frame of the access port's 1500-byte MTU plus the data plane's header
CHANNEL_MTU = 1600
#: the ethtool features turned off on channels and access links
OFFLOADS = ("tx", "off", "tso", "off", "gso", "off", "gro", "off")


@dataclass(frozen=True, slots=True)
class ChannelPair:
    """Lambda ``lam`` of the TE link ``a``:``a_if`` - ``b``:``b_if``."""

    a: str
    a_if: int
    b: str
    b_if: int
    lam: int

    @property
    def a_name(self) -> str:
        return channel_ifname(self.a_if, self.lam)

    @property
    def b_name(self) -> str:
        return channel_ifname(self.b_if, self.lam)


def pairs(topo: Topology) -> list[ChannelPair]:
    """Every channel of the topology, link by link, lambda by lambda."""
    return [ChannelPair(x.a, x.a_if, x.b, x.b_if, lam) for x in topo.te_links for lam in x.lambdas]


def names_by_node(chans: Sequence[ChannelPair]) -> dict[str, list[str]]:
    """Node -> the names of its channel ends."""
    out: dict[str, list[str]] = {}
    for c in chans:
        out.setdefault(c.a, []).append(c.a_name)
        out.setdefault(c.b, []).append(c.b_name)
    return out


@contextlib.contextmanager
def _fds(paths: Mapping[str, str]) -> Iterator[dict[str, int]]:
    fds: dict[str, int] = {}
    try:
        for node, path in paths.items():
            fds[node] = os.open(path, os.O_RDONLY)
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)


def build(chans: Sequence[ChannelPair], ns_path: Callable[[str], str]) -> None:
    """Create every channel (both ends inside their nodes' namespaces, MTU
    :data:`CHANNEL_MTU`, up). ``ns_path``: node -> the path of its network namespace."""
    nodes = sorted({n for c in chans for n in (c.a, c.b)})
    with _fds({n: ns_path(n) for n in nodes}) as fds, IPRoute() as ipr:
        for c in chans:
            ipr.link(
                "add",
                ifname=c.a_name,
                net_ns_fd=fds[c.a],
                kind="veth",
                peer={"ifname": c.b_name, "net_ns_fd": fds[c.b]},
            )
    for node, ifnames in names_by_node(chans).items():
        with nsutil.iproute_in(ns_path(node)) as nsr:
            for ifname in ifnames:
                idx = nsr.link_lookup(ifname=ifname)[0]
                nsr.link("set", index=idx, mtu=CHANNEL_MTU, state="up")


def offloads_off(ns_path: str, ifnames: Sequence[str]) -> None:
    """``ethtool -K IF tx off tso off gso off gro off`` for each interface, inside the
    namespace (one shell for all of them); raises RuntimeError with ethtool's words."""
    if not ifnames:
        return
    script = 'for i in "$@"; do ethtool -K "$i" ' + " ".join(OFFLOADS) + " || exit 1; done"
    with nsutil.closing_preexec(ns_path) as enter:
        r = subprocess.run(
            ["sh", "-c", script, "offloads", *ifnames],
            preexec_fn=enter,
            capture_output=True,
            text=True,
            check=False,
        )
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        raise RuntimeError(f"ethtool -K in {ns_path}: {why[-1] if why else r.returncode}")
