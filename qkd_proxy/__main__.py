"""``python -m qkd_proxy --topology FILE --host NAME``: one key manager, the ETSI GS QKD
004 proxy of its site (see :mod:`qkd_proxy.daemon`). The common flags and exit statuses are those of
:mod:`daemonkit.daemon`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from daemonkit import daemon
from gmpls.qkd import etsi004, idq3p, kmstatus, sync
from gmpls.topology import Topology
from qkd_proxy.daemon import (
    Ports,
    ProxyDaemon,
    api_from_topology,
    keys_from_files,
    km_from_topology,
)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--north-port", type=int, default=etsi004.PORT)
    p.add_argument("--status-port", type=int, default=kmstatus.PORT)
    p.add_argument("--cli-port", type=int, help="default: the host's cli_port (none: no CLI)")
    p.add_argument("--sync-port", type=int, default=sync.PORT)
    p.add_argument("--peer-sync-port", type=int, help="default: --sync-port")
    p.add_argument("--idq-port", type=int, default=idq3p.PORT)
    p.add_argument(
        "--pki-dir",
        type=Path,
        help="serve ETSI 014 over HTTPS with the CA and this key manager's certificate and "
        "key in DIR (ca.pem, HOST.pem, HOST.key; `qkdnet up` makes them in RUN/pki)",
    )
    p.add_argument("--etsi014-port", type=int, help="default: the host's etsi014_port (443)")
    p.add_argument(
        "--sync-key-file",
        type=Path,
        action="append",
        default=[],
        help="a QKD link's KM channel key, named <kmX>-<kmY>.sync (raw bytes, at least 16; "
        "`qkdnet up` makes one per link); repeated, one per link",
    )


def _build(a: argparse.Namespace, topo: Topology) -> ProxyDaemon:
    keys = keys_from_files(a.sync_key_file)
    if len(keys) == 1 and len(topo.qkd_links_of(a.host)) == 1:
        # one link: its key, whatever the file is called (the paper's etsiA-etsiB.sync)
        (key,) = keys.values()
        keys = {topo.qkd_links_of(a.host)[0].name: key}
    ports = Ports(a.north_port, a.status_port, a.sync_port, a.peer_sync_port, a.idq_port)
    cfg, binds = km_from_topology(topo, a.host, keys, ports)
    cli = a.cli_port if a.cli_port is not None else topo.host(a.host).cli_port
    api = None
    if a.pki_dir is not None:
        api = api_from_topology(topo, a.host, a.pki_dir, a.etsi014_port)
    return ProxyDaemon(cfg, binds, ports, a.state_dir, cli, api)


#: what ``python -m qkd_proxy`` runs (and ``qkdnet up --pack N`` packs)
SPEC = daemon.Spec("qkd_proxy", "qkd-proxy", _build, __doc__, _arguments)


def main(argv: Sequence[str] | None = None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
