"""``python -m pce --topology FILE --host pce``: the PCE daemon (see pce.daemon)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gmpls.logfmt import setup_logging
from gmpls.topology import TopologyError, load
from pce.daemon import config_from_topology, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pce", description=__doc__)
    p.add_argument("--topology", required=True, type=Path)
    p.add_argument("--host", required=True, help="this host's name in the topology")
    p.add_argument("--log-file")
    p.add_argument("--state-dir", type=Path, help="unused: the PCE keeps no state on disk")
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
        "--allow-several-sessions-per-peer",
        action="store_true",
        help="accept more than one PCEP session from one address (RFC 5440 §6.2 says no)",
    )
    a = p.parse_args(argv)
    setup_logging(a.log_file)
    try:
        topo = load(a.topology)
        cfg = config_from_topology(
            topo,
            a.host,
            pcep_port=a.pcep_port,
            cli_port=a.cli_port,
            bind=a.bind,
            ted_source=a.ted,
            one_session_per_peer=not a.allow_several_sessions_per_peer,
        )
    except (TopologyError, KeyError, ValueError, OSError) as e:
        print(f"pce: {e}", file=sys.stderr)
        return 2
    asyncio.run(run(topo, cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
