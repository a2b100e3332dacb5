"""Is an address reachable from here on a network of this host, or only by the default
route? The command-line clients (``python -m qkd_proxy.client``, ``python -m pce.client``)
ask before they send, so that a testbed address tried from the wrong network namespace
fails at once with the reason instead of timing out (or reaching some other server
through the default route).

It reads ``/proc/net/route``, the IPv4 routing table of the calling thread's network
namespace: the longest prefix that holds the address decides. A route of prefix length
0 (the default route) or none at all means the address is not on any network of this
host.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

ROUTES = Path("/proc/net/route")

#: what the clients add when the address is not local: where testbed addresses live
TESTBED_HINT = (
    "; a testbed's addresses exist only inside its hosts' namespaces: run the client there "
    "(`qkdnet etsi HOST ...`, `qkdnet pcc HOST ...`, or `qkdnet exec HOST -- python -m ...`), "
    "or give --any-route to send anyway"
)


def _routes(text: str) -> list[tuple[str, ipaddress.IPv4Network, str]]:
    """(interface, destination network, gateway) of each route of ``/proc/net/route``."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        dest, gw, mask = (
            socket.inet_ntoa(struct.pack("<I", int(x, 16))) for x in (f[1], f[2], f[7])
        )
        out.append((f[0], ipaddress.IPv4Network(f"{dest}/{mask}", strict=False), gw))
    return out


def not_local(address: str, table: str | None = None) -> str | None:
    """None when ``address`` is on a network of this host (or is not IPv4, or the table
    cannot be read); else why not, in words."""
    try:
        addr = ipaddress.IPv4Address(address)
        text = ROUTES.read_text() if table is None else table
    except (ValueError, OSError):
        return None
    if addr.is_loopback:
        return None
    best = max(
        ((net, ifname, gw) for ifname, net, gw in _routes(text) if addr in net),
        key=lambda r: r[0].prefixlen,
        default=None,
    )
    if best is None:
        return f"{address} is on no network of this host (no route to it)"
    net, ifname, gw = best
    if net.prefixlen == 0:
        return (
            f"{address} is on no network of this host: only the default route (via {gw} "
            f"on {ifname}) would take it"
        )
    return None
