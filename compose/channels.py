"""The optical layer of a testbed in the kernel (docs/dataplane.md, "Optical layer and
cross-connects"), shared by both backends.

Every TE link becomes one channel per lambda: a veth pair whose ends are created directly
inside the two nodes' network namespaces (no end in the root namespace), each end named
after its own node's TE interface ID and the lambda (``te1l3`` at tn1, ``te2l3`` at tn2 for
lambda 3 of the link tn1:1 - tn2:2; :func:`gmpls.dataplane.names.channel_ifname`), MTU
:data:`CHANNEL_MTU`, up. Transmit checksum, scatter-gather, TSO, GSO and GRO are turned off
on the channels and on both ends of every access link (:func:`offloads_off`), so that a frame
read from a port is a real frame no larger than the MTU, with its checksums computed.

A namespace is named by its path (``/run/netns/qk-tn1`` or a container's
``/proc/PID/ns/net``); removing a namespace (or stopping a container) destroys its
channels with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import socket
import struct
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from compose import nsutil
from gmpls.dataplane.names import channel_ifname
from gmpls.topology import Topology

#: channels carry a frame of the access port's 1500-byte MTU plus the data plane's header
CHANNEL_MTU = 1600


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


def ip_netns_ref(ns_path: str) -> str:
    """What ``ip link ... netns REF`` takes for a namespace path: the name of a
    ``/run/netns/NAME`` namespace, the PID of a ``/proc/PID/ns/net`` one."""
    parts = Path(ns_path).parts
    if len(parts) == 5 and parts[:2] == ("/", "proc") and parts[3:] == ("ns", "net"):
        return parts[2]
    if Path(ns_path).parent == nsutil.NETNS_DIR:
        return Path(ns_path).name
    raise ValueError(f"{ns_path} is neither /run/netns/NAME nor /proc/PID/ns/net")


def _ip_batch(lines: Sequence[str], ns_path: str | None = None) -> None:
    """``ip -batch -`` (inside the namespace ``ns_path`` if given); RuntimeError with
    ip's words when a line fails."""
    if not lines:
        return
    with contextlib.ExitStack() as stack:
        enter = stack.enter_context(nsutil.closing_preexec(ns_path)) if ns_path else None
        r = subprocess.run(
            ["ip", "-batch", "-"],
            input="\n".join(lines) + "\n",
            preexec_fn=enter,
            capture_output=True,
            text=True,
            check=False,
        )
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        raise RuntimeError(f"ip -batch{' in ' + ns_path if ns_path else ''}: {' '.join(why[-2:])}")


def build(chans: Sequence[ChannelPair], ns_path: Callable[[str], str]) -> None:
    """Create every channel (both ends inside their nodes' namespaces, MTU
    :data:`CHANNEL_MTU`, up). ``ns_path``: node -> the path of its network namespace.
    Two ``ip -batch`` runs (about 3 ms a channel; pyroute2's netlink took 80)."""
    refs = {n: ip_netns_ref(ns_path(n)) for c in chans for n in (c.a, c.b)}
    _ip_batch(
        [
            f"link add name {c.a_name} mtu {CHANNEL_MTU} netns {refs[c.a]} type veth "
            f"peer name {c.b_name} mtu {CHANNEL_MTU} netns {refs[c.b]}"
            for c in chans
        ]
    )
    for node, ifnames in names_by_node(chans).items():
        _ip_batch([f"link set {i} up" for i in ifnames], ns_path(node))


#: SIOCETHTOOL and the ethtool commands used (linux/ethtool.h)
SIOCETHTOOL = 0x8946
ETHTOOL_GSTRINGS, ETHTOOL_GSSET_INFO, ETHTOOL_SFEATURES = 0x1B, 0x37, 0x3B
ETH_SS_FEATURES = 4
#: the features ``ethtool -K IF tx off sg off tso off gso off gro off`` turns off
OFF = ("tx-checksum", "tx-scatter-gather", "tx-tcp", "tx-generic-segmentation", "rx-gro")


def _ioctl(sock: socket.socket, ifname: str, data: ctypes.Array[ctypes.c_char]) -> None:
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(data)).ljust(40, b"\0")
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def _feature_names(sock: socket.socket, ifname: str) -> list[str]:
    """The kernel's feature names in bit order (ETH_SS_FEATURES)."""
    info = ctypes.create_string_buffer(struct.pack("=IIQI", ETHTOOL_GSSET_INFO, 0, 1 << 4, 0))
    _ioctl(sock, ifname, info)
    (count,) = struct.unpack_from("=I", info.raw, 16)
    strings = ctypes.create_string_buffer(
        struct.pack("=III", ETHTOOL_GSTRINGS, 4, count), 12 + 32 * count
    )
    _ioctl(sock, ifname, strings)
    raw = strings.raw[12:]
    return [raw[32 * i : 32 * i + 32].split(b"\0", 1)[0].decode() for i in range(count)]


def _features_off(sock: socket.socket, ifname: str, names: list[str]) -> None:
    """ETHTOOL_SFEATURES: every feature named by a prefix of :data:`OFF` requested off."""
    blocks = (len(names) + 31) // 32
    valid = [0] * blocks
    for bit, name in enumerate(names):
        if name.startswith(OFF):
            valid[bit // 32] |= 1 << (bit % 32)
    body = b"".join(struct.pack("=II", v, 0) for v in valid)
    req = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_SFEATURES, blocks) + body)
    _ioctl(sock, ifname, req)


def offloads_off(ns_path: str, ifnames: Sequence[str]) -> None:
    """Transmit checksum, scatter-gather, TSO, GSO and GRO off on each interface inside the
    namespace: what ``ethtool -K IF tx off sg off tso off gso off gro off`` does, by
    ethtool's own ioctl (ETHTOOL_SFEATURES) in this process (an ethtool process per
    interface took 5 to 25 ms each); RuntimeError naming the interface and the cause."""
    if not ifnames:
        return
    with nsutil.in_netns(ns_path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifname = ifnames[0]
    with sock:
        try:
            names = _feature_names(sock, ifname)
            for ifname in ifnames:
                _features_off(sock, ifname, names)
        except OSError as e:
            raise RuntimeError(f"ethtool -K {ifname} ...: {e.strerror}") from None


def offloads_off_all(
    per_host: Mapping[str, Sequence[str]], ns_path: Callable[[str], str], roots: Sequence[str]
) -> None:
    """:func:`offloads_off` on each host's interfaces inside its namespace (``ns_path``
    of the host) and on ``roots``, ends in this process's namespace."""
    for host, ifnames in per_host.items():
        offloads_off(ns_path(host), ifnames)
    offloads_off("/proc/self/ns/net", roots)
