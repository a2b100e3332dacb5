"""``python -m node_agent --topology FILE --host NAME``: one GMPLS node (OSPF-TE speaker,
telnet CLI, RSVP-TE and the QE service; see :mod:`node_agent.daemon`). The common flags
and exit statuses are those of :mod:`daemonkit.daemon`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from daemonkit import daemon
from gmpls.topology import Topology
from node_agent.daemon import NodeDaemon


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cli-port", type=int, help="default: the host's cli_port")
    p.add_argument("--cli-bind", default="0.0.0.0")
    p.add_argument(
        "--ospf-only",
        action="store_true",
        help="run OSPF-TE and the CLI only (no RSVP-TE, no QE service)",
    )
    p.add_argument(
        "--access-if",
        metavar="IFNAME",
        help="the port toward this node's client host (e.g. access): the encrypted data "
        "plane of the QE services this node heads or ends (docs/dataplane.md)",
    )
    p.add_argument(
        "--qkd-stock-threshold",
        type=_fraction,
        default=0.10,
        metavar="FRACTION",
        help="site node: re-advertise a QKD link when its key stock moves by more than this "
        "fraction of the stock last advertised (default 0.10; docs/ospf-te.md)",
    )


def _fraction(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number") from None
    if not 0.0 < x <= 1.0:
        raise argparse.ArgumentTypeError(f"{v} is not in (0, 1]")
    return x


def _build(a: argparse.Namespace, topo: Topology) -> NodeDaemon:
    return NodeDaemon(
        topo,
        a.host,
        cli_port=a.cli_port,
        cli_bind=a.cli_bind,
        state_dir=a.state_dir,
        ospf_only=a.ospf_only,
        qkd_stock_threshold=a.qkd_stock_threshold,
        access_if=a.access_if,
    )


#: what ``python -m node_agent`` runs (and ``qkdnet up --pack N`` packs)
SPEC = daemon.Spec("node_agent", "node", _build, __doc__, _arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
