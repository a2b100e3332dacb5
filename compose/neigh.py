"""The kernel's IPv4 neighbour (ARP) table, which all network namespaces share.

Every namespace has its own neighbour entries, but they live in one table whose limits,
``net.ipv4.neigh.default.gc_thresh2`` and ``gc_thresh3`` (512 and 1,024 by default), are
set in the root namespace only and count the entries of all namespaces together. An entry
is made for every next hop a namespace sends to: each peer it talks to unicast (OSPF on a
point-to-point link, RSVP to its TE neighbours and PCEP to the PCE over the control LAN)
and each multicast group it sends to on each interface (224.0.0.5: every OSPF interface).
A 300-node grid holds about 4,000 of them. Past ``gc_thresh3`` the kernel cannot make a
new entry (``neighbour: arp_cache: neighbor table overflow!``, the ``table_fulls`` column
of ``/proc/net/stat/arp_cache``) and drops the packet: OSPF Hellos stop arriving and TCP
connections to the PCE time out, whatever the CPU does (docs/scale.md).

:func:`entries_needed` estimates what a topology needs, generously; :func:`raise_limits`
raises the two limits to it when they are lower (never lowers them). The entries cost
memory only when they exist. :func:`make_room` is what both backends' ``up`` and the
Docker testbed's guard (a plain ``docker compose up``) call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gmpls.topology import Topology

#: where the shared table's limits are (root namespace only)
NEIGH_DIR = Path("/proc/sys/net/ipv4/neigh/default")
#: multicast groups an interface may send to (AllSPFRouters, AllDRouters)
MULTICAST_GROUPS = 2
#: unicast peers a host may have on one domain besides its TE neighbours (the PCE, a DR
#: and a backup, key managers)
OTHER_PEERS = 8


def entries_needed(topo: Topology) -> int:
    """An upper estimate of the neighbour entries the topology's namespaces hold at once:
    per interface, its multicast groups and its unicast peers on the domain (every other
    host of the domain, at most :data:`OTHER_PEERS` plus the host's TE links), and per
    domain of more than two hosts one host that talks to all the others (the PCE)."""
    members: dict[str, list[str]] = {d: [] for d in topo.domains}
    for host in topo.hosts.values():
        for d in host.interfaces:
            members.setdefault(d, []).append(host.name)
    degree = {name: len(topo.te_links_of(name)) for name in topo.hosts}
    need = 0
    for hosts in members.values():
        k = len(hosts)
        for name in hosts:
            need += MULTICAST_GROUPS + min(k - 1, OTHER_PEERS + degree[name])
        if k > 2:
            need += k - 1
    return need


def raise_limits(need: int, root: Path | None = None) -> list[tuple[str, int, int]]:
    """Raise ``gc_thresh2`` to ``need`` and ``gc_thresh3`` to twice that where they are
    lower (in ``root``, default :data:`NEIGH_DIR`); the changes made, as (name, old, new).
    Raises OSError when the limits cannot be read or written (not root, or not the root
    namespace)."""
    root = NEIGH_DIR if root is None else root
    changed = []
    for name, want in (("gc_thresh2", need), ("gc_thresh3", 2 * need)):
        f = root / name
        old = int(f.read_text().split()[0])
        if old < want:
            f.write_text(f"{want}\n")
            changed.append((name, old, want))
    return changed


def make_room(
    topo: Topology, say: Callable[[str], None], prefix: str = "", root: Path | None = None
) -> None:
    """Raise the limits for ``topo`` and say what changed; when they cannot be read or
    written (a container whose /proc/sys is read-only), say what the lab needs instead."""
    need = entries_needed(topo)
    tag = f"[{prefix}] " if prefix else ""
    try:
        changed = raise_limits(need, root)
    except OSError as e:
        say(
            f"{tag}warning: cannot check the neighbour table's limits ({e}); a lab "
            f"this size needs net.ipv4.neigh.default.gc_thresh3 >= {2 * need}"
        )
        return
    if changed:
        say(
            f"{tag}neighbour table (shared by all namespaces, {need} entries needed): "
            + ", ".join(f"net.ipv4.neigh.default.{n} {a} -> {b}" for n, a, b in changed)
        )
