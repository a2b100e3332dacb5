"""``python -m node_agent --topology FILE --host NAME [--log-file F]``: one GMPLS node
(OSPF-TE speaker, telnet CLI, and the extensions; see :mod:`node_agent.daemon`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from gmpls.topology import TopologyError, load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m node_agent", description=__doc__)
    p.add_argument("--topology", required=True, type=Path)
    p.add_argument("--host", required=True, help="this node's name in the topology")
    p.add_argument("--log-file", help="JSON-lines log (default: stderr)")
    p.add_argument("--state-dir", type=Path, help="where extensions may keep state")
    p.add_argument("--cli-port", type=int, help="default: the host's cli_port")
    p.add_argument("--cli-bind", default="0.0.0.0")
    p.add_argument(
        "--no-extensions",
        action="store_true",
        help="run OSPF-TE and the CLI only (no node_agent/ext_* plug-ins: RSVP, QE service)",
    )
    p.add_argument("--debug", action="store_true")
    a = p.parse_args(argv)
    from gmpls.logfmt import setup_logging
    from node_agent.daemon import NodeDaemon, run

    setup_logging(a.log_file, logging.DEBUG if a.debug else logging.INFO)
    try:
        topo = load(a.topology)
        h = topo.host(a.host)
        if h.kind != "node":
            raise ValueError(f"{a.host} is a {h.kind}, not a node")
        daemon = NodeDaemon(
            topo,
            a.host,
            cli_port=a.cli_port,
            cli_bind=a.cli_bind,
            state_dir=a.state_dir,
            load_extensions=not a.no_extensions,
        )
    except (TopologyError, KeyError, ValueError, LookupError, OSError) as e:
        print(f"node_agent: {e}", file=sys.stderr)
        return 2
    asyncio.run(run(daemon))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
