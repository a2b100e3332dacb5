"""``python -m qkd_proxy --topology FILE --host NAME``: one ETSI GS QKD 004 proxy (see
:mod:`qkd_proxy.daemon`). The common flags and exit statuses are those of
:mod:`daemonkit.daemon`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from daemonkit import daemon
from gmpls.qkd import etsi004, idq3p, sync
from gmpls.topology import Topology
from qkd_proxy.daemon import ProxyDaemon, config_from_topology


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--north-port", type=int, default=etsi004.PORT)
    p.add_argument("--sync-port", type=int, default=sync.PORT)
    p.add_argument("--peer-sync-port", type=int, help="default: --sync-port")
    p.add_argument("--idq-port", type=int, default=idq3p.PORT)
    p.add_argument(
        "--sync-key-file",
        type=Path,
        help="the proxy pair's sync HMAC key (raw bytes, at least 16; `qkdnet up` makes it)",
    )


def _build(a: argparse.Namespace, topo: Topology) -> ProxyDaemon:
    key = daemon.read_secret(a.sync_key_file) if a.sync_key_file is not None else None
    cfg, north, sync_bind, south = config_from_topology(
        topo, a.host, a.north_port, a.sync_port, a.peer_sync_port, a.idq_port, key
    )
    return ProxyDaemon(cfg, north, sync_bind, south, a.state_dir)


def main(argv: Sequence[str] | None = None) -> int:
    return daemon.main(
        "qkd_proxy", "qkd-proxy", _build, argv, description=__doc__, add_arguments=_arguments
    )


if __name__ == "__main__":
    raise SystemExit(main())
