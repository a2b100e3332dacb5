"""``python -m pce --topology FILE --host pce``: the PCE daemon (see :mod:`pce.daemon`).
The common flags and exit statuses are those of :mod:`daemonkit.daemon`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from ipaddress import IPv4Address

from daemonkit import daemon
from gmpls.topology import Topology
from pce.daemon import PceDaemon, config_from_topology


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pcep-port", type=int, help="default 4189")
    p.add_argument("--cli-port", type=int, help="default: the host's cli_port")
    p.add_argument("--bind", help="listen address (default all)")
    p.add_argument(
        "--ted",
        choices=["ospf", "static"],
        default="ospf",
        help="TED from OSPF on the control LAN (default) or from the topology file",
    )
    p.add_argument(
        "--qkd-site",
        action="append",
        default=[],
        type=_site,
        metavar="NODE=SITE",
        help="the key-management site (its site node's router ID) of a node that is not "
        "its site's site node; repeatable (docs/pce.md#sites)",
    )
    p.add_argument(
        "--allow-several-sessions-per-peer",
        action="store_true",
        help="accept more than one PCEP session from one address (RFC 5440 §6.2 says no)",
    )
    p.add_argument(
        "--state-timeout",
        type=float,
        help="seconds the LSPs of a stateful PCC whose session went down are kept "
        "(RFC 8231 State Timeout Interval; default 60)",
    )


def _site(text: str) -> tuple[IPv4Address, IPv4Address]:
    node, sep, site = text.partition("=")
    try:
        if not sep:
            raise ValueError(text)
        return IPv4Address(node), IPv4Address(site)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NODE=SITE (two router IDs)") from None


def _build(a: argparse.Namespace, topo: Topology) -> PceDaemon:
    cfg = config_from_topology(
        topo,
        a.host,
        pcep_port=a.pcep_port,
        cli_port=a.cli_port,
        bind=a.bind,
        ted_source=a.ted,
        one_session_per_peer=not a.allow_several_sessions_per_peer,
        qkd_sites=tuple(a.qkd_site) or None,
        state_timeout=a.state_timeout,
    )
    return PceDaemon(topo, cfg)


#: what ``python -m pce`` runs (and ``qkdnet up --pack N`` packs)
SPEC = daemon.Spec("pce", "pce", _build, __doc__, _arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
