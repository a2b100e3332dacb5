"""A stand-in GMPLS node for the PCE's namespace tests: an OSPF speaker on the control
LAN that originates the RI and TE LSAs a node agent would (pce.synth.node_lsas), through
the same raw-socket speaker the PCE uses (daemonkit.ospf). Run inside the node's namespace::

    python tests/pce/ospf_speaker.py TOPOLOGY HOST

It exists so the PCE's OSPF side can be proven before the node agent daemon lands; the
namespace tests use the real node agents when they can (see test_pce_netns.py).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
