"""A stand-in GMPLS node for the PCE's namespace tests: an OSPF speaker on the control
LAN that originates the RI and TE LSAs a node agent would (pce.synth.node_lsas), through
the same raw-socket speaker the PCE uses (daemonkit.ospf). Run inside the node's namespace::

    python -m tests.support.ospf_speaker TOPOLOGY HOST     # from the repository root

It proves the PCE's OSPF side on its own; tests/pce/test_pce_netns.py runs the same
scenario once with these speakers and once with the real node agents.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from daemonkit.ospf import OspfSpeaker, control_interface
from gmpls.ospf.router import OspfRouter
from gmpls.topology import load
from pce.synth import node_lsas


async def main(topology: str, host: str) -> None:
    topo = load(Path(topology))
    h = topo.host(host)
    assert h.router_id is not None
    router = OspfRouter(h.router_id, topo.ospf.area, name=host)
    speaker = OspfSpeaker(router, control_interface(topo, host))
    await speaker.start()
    for lsa in node_lsas(topo, host):
        speaker.originate_opaque(lsa.header.ls_type, lsa.header.ls_id, lsa.body)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await speaker.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
