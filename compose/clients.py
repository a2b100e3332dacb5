"""``qkdnet etsi HOST ...`` and ``qkdnet pcc HOST ...``: the ETSI GS QKD 004 and PCEP
command-line clients (``python -m qkd_proxy.client``, ``python -m pce.client``) run
where they work, inside the host's namespace (its container on the Docker backend),
with the addresses filled in from the topology:

- ``qkdnet etsi tn1 open --destination tn5``: ``--proxy`` is tn1's ETSI 004 proxy (its
  ``qe.proxy``) at its address on the domain they share; host names after
  ``--destination`` become router IDs;
- ``qkdnet pcc tn1 --dst tn5 --qe``: a request as tn1 would make it: ``--pce`` is the
  topology's PCE at its control address, ``--src`` defaults to the host's router ID; host
  names become router IDs. A node runs its own PCEP session and the PCE takes one session
  per peer address (RFC 5440 §6.2), so for a node the client runs in the topology's
  ``client`` host (its first host of kind client on the control domain) instead.

The client's output and exit status are passed through unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from compose.backend import Testbed, TestbedError

#: options whose value may be a host name, replaced by the host's router ID
ADDRESS_OPTIONS = ("--destination", "--src", "--dst")


def _router_id(tb: Testbed, name: str) -> str:
    h = tb.topology.host(tb.check_host(name))
    return str(h.router_id) if h.router_id is not None else tb.address(name)


def resolve(tb: Testbed, argv: list[str]) -> list[str]:
    """``argv`` with the host name after each of :data:`ADDRESS_OPTIONS` (or in its
    ``--opt=NAME`` form) replaced by the host's router ID."""
    out = list(argv)
    for i, word in enumerate(out):
        opt, eq, val = word.partition("=")
        if eq and opt in ADDRESS_OPTIONS and val in tb.topology.hosts:
            out[i] = f"{opt}={_router_id(tb, val)}"
        elif i and out[i - 1] in ADDRESS_OPTIONS and word in tb.topology.hosts:
            out[i] = _router_id(tb, word)
    return out


def _python(tb: Testbed) -> str:
    return sys.executable if tb.backend == "netns" else "python"


def proxy_address(tb: Testbed, host: str) -> str:
    """The address at which ``host`` reaches its ETSI 004 proxy (or, for a proxy, itself)."""
    topo = tb.topology
    h = topo.host(tb.check_host(host))
    proxy = h.name if h.kind == "qkd-proxy" else (h.qe.proxy if h.qe is not None else None)
    if not proxy:
        users = [x.name for x in topo.hosts.values() if x.qe is not None and x.qe.proxy]
        raise TestbedError(
            f"{host} has no ETSI 004 proxy (no qe.proxy); hosts that have one: "
            f"{', '.join(users) or 'none'}"
        )
    p = topo.host(proxy)
    shared = [d for d in p.interfaces if d in h.interfaces]
    if not shared:
        raise TestbedError(f"{host} shares no domain with its proxy {proxy}")
    return str(p.interfaces[shared[0]])


def etsi_argv(tb: Testbed, host: str, rest: list[str]) -> tuple[str, list[str]]:
    """Where to run the ETSI 004 client for ``host`` (the host itself) and its argv."""
    proxy = proxy_address(tb, host)
    return host, [_python(tb), "-m", "qkd_proxy.client", "--proxy", proxy, *resolve(tb, rest)]


def pcc_argv(tb: Testbed, host: str, rest: list[str]) -> tuple[str, list[str]]:
    """Where to run the PCEP client for a request of ``host`` and its argv (module
    docstring: a node's own session would make the PCE refuse a second one)."""
    topo = tb.topology
    tb.check_host(host)
    pces = topo.of_kind("pce")
    if not pces:
        raise TestbedError(f"{topo.name} has no PCE")
    argv = [_python(tb), "-m", "pce.client", "--pce", tb.address(pces[0].name)]
    if not any(w == "--src" or w.startswith("--src=") for w in rest):
        argv += ["--src", _router_id(tb, host)]
    where = host
    if topo.host(host).kind == "node":
        ctrl = topo.control_domain
        where = next((h.name for h in topo.of_kind("client") if ctrl in h.interfaces), host)
    return where, argv + resolve(tb, rest)


Select = Callable[[argparse.Namespace], Testbed]
Build = Callable[[Testbed, str, list[str]], tuple[str, list[str]]]


def _command(select: Select, build: Build) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        tb = select(args)
        rest = list(args.argv)
        if rest[:1] == ["--"]:
            rest = rest[1:]
        where, argv = build(tb, args.host, rest)
        return tb.interact(where, argv)

    return run


def add_commands(sub: Any, sel: argparse.ArgumentParser, select: Select) -> None:
    """The two subcommands; ``select`` finds the testbed a command is about."""
    s = sub.add_parser(
        "etsi",
        parents=[sel],
        help="the ETSI 004 client inside a host, to its proxy: open|connect|get|close|links",
        description="qkdnet etsi HOST open --destination tn5 | get --handle H | close --handle H"
        " (python -m qkd_proxy.client inside HOST, --proxy filled in)",
    )
    s.add_argument("host")
    s.add_argument("argv", nargs=argparse.REMAINDER, metavar="CALL ...")
    s.set_defaults(fn=_command(select, etsi_argv))
    s = sub.add_parser(
        "pcc",
        parents=[sel],
        help="one PCEP path request from a host to the PCE (python -m pce.client there)",
        description="qkdnet pcc tn1 --dst tn5 [--qe] [--json] (--pce and --src filled in)",
    )
    s.add_argument("host")
    s.add_argument("argv", nargs=argparse.REMAINDER, metavar="OPTIONS ...")
    s.set_defaults(fn=_command(select, pcc_argv))
