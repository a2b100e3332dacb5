"""``python -m qkd_proxy --topology FILE --host NAME``: one ETSI GS QKD 004 proxy."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gmpls import topology
from gmpls.logfmt import setup_logging
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import sync
from qkd_proxy.daemon import config_from_topology, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qkd_proxy", description=__doc__)
    p.add_argument("--topology", required=True, type=Path)
    p.add_argument("--host", required=True)
    p.add_argument("--log-file")
    p.add_argument("--state-dir", type=Path)
    p.add_argument("--north-port", type=int, default=etsi.PORT)
    p.add_argument("--sync-port", type=int, default=sync.PORT)
    p.add_argument("--peer-sync-port", type=int, help="default: --sync-port")
    p.add_argument("--idq-port", type=int, default=idq.PORT)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(a.log_file)
    topo = topology.load(a.topology)
    cfg, north, sync_bind, south = config_from_topology(
        topo, a.host, a.north_port, a.sync_port, a.peer_sync_port, a.idq_port
    )
    asyncio.run(serve(cfg, north, sync_bind, south, a.state_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
