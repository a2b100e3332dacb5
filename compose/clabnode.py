"""The start of a containerlab node (:mod:`compose.clab`): interfaces first, then the daemon.

Containerlab starts a ``linux`` node's container and only then moves its links' ends into
it, with no address (the daemons bind by address, so they must not start before). So a
node's command is::

    python -m compose.clabnode --addr ctrl=10.1.1.1/24 --addr qa=10.2.1.1/24 -- \\
        python -m node_agent --topology /etc/qkdnet/paper.yaml --host tn1

which waits (``--timeout``, default 300 s) until every named interface exists, gives each
its address (unless it has it already), brings it up, then ``exec``s the command, which
so runs as the container's main process (its signals, its exit status).

``--bridge br0 --port tn1 --port tn2 ...`` (a domain's ``switch`` node, ``--domains
switch``) waits for the ports instead, makes a Linux bridge of them and stays (until
SIGTERM).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import time
from collections.abc import Sequence

from pyroute2 import IPRoute

#: how often the interfaces are looked for while containerlab plugs them in
POLL = 0.1


def parse_addr(text: str) -> tuple[str, ipaddress.IPv4Interface]:
    """``IFNAME=A.B.C.D/LEN`` -> (IFNAME, the interface address)."""
    name, sep, addr = text.partition("=")
    if not sep or not name or len(name) > 15:
        raise argparse.ArgumentTypeError(f"{text!r}: expected IFNAME=A.B.C.D/LEN")
    try:
        return name, ipaddress.IPv4Interface(addr)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def wait_for(ipr: IPRoute, names: Sequence[str], timeout: float) -> dict[str, int]:
    """The index of each interface in ``names``, once all exist (containerlab adds them
    after the container starts); raises TimeoutError naming the missing ones."""
    deadline = time.monotonic() + timeout
    while True:
        found = {n: ipr.link_lookup(ifname=n) for n in names}
        missing = [n for n, idx in found.items() if not idx]
        if not missing:
            return {n: idx[0] for n, idx in found.items()}
        if time.monotonic() > deadline:
            raise TimeoutError(f"interfaces never appeared: {', '.join(missing)}")
        time.sleep(POLL)


def configure(
    ipr: IPRoute, addrs: Sequence[tuple[str, ipaddress.IPv4Interface]], timeout: float
) -> None:
    index = wait_for(ipr, [n for n, _ in addrs], timeout)
    for name, iface in addrs:
        idx = index[name]
        have = {
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)
        }
        if (str(iface.ip), iface.network.prefixlen) not in have:
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=idx, state="up")


def make_bridge(ipr: IPRoute, bridge: str, ports: Sequence[str], timeout: float) -> None:
    index = wait_for(ipr, ports, timeout)
    if not ipr.link_lookup(ifname=bridge):
        ipr.link("add", ifname=bridge, kind="bridge")
    br = ipr.link_lookup(ifname=bridge)[0]
    for name in ports:
        ipr.link("set", index=index[name], master=br, state="up")
    ipr.link("set", index=br, state="up")


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    cmd: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, cmd = args_in[:cut], args_in[cut + 1 :]
    p = argparse.ArgumentParser(prog="python -m compose.clabnode", description=__doc__)
    p.add_argument("--addr", action="append", type=parse_addr, default=[], metavar="IF=ADDR/LEN")
    p.add_argument("--bridge", help="make a bridge of the --port interfaces and stay")
    p.add_argument("--port", action="append", default=[], metavar="IFNAME")
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args(args_in)
    if bool(args.bridge) == bool(cmd):
        p.error("give either -- COMMAND... or --bridge NAME --port IF...")
    try:
        with IPRoute() as ipr:
            if args.bridge:
                make_bridge(ipr, args.bridge, args.port, args.timeout)
            else:
                configure(ipr, args.addr, args.timeout)
    except (TimeoutError, OSError) as e:
        print(f"clabnode: {e}", file=sys.stderr, flush=True)
        return 1
    if args.bridge:
        print(f"clabnode: bridge {args.bridge} of {', '.join(args.port)}", flush=True)
        stops = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        signal.sigwait(stops)
        return 0
    os.execvp(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
