"""A stand-in GMPLS node for the PCE's namespace tests: an OSPF speaker on the control
LAN that originates the RI and TE LSAs a node agent would (pce.synth.node_lsas), through
the same raw-socket shell the PCE uses. Run inside the node's namespace::

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

from gmpls.ospf.events import InterfaceConfig, OriginateOpaque
from gmpls.ospf.router import OspfRouter
from gmpls.topology import load
from pce.ospf_io import OspfShell, interface_of
from pce.synth import node_lsas


async def main(topology: str, host: str) -> None:
    topo = load(Path(topology))
    h = topo.host(host)
    assert h.router_id is not None
    ifname, addr = interface_of(topo.control_address(host))
    o = topo.ospf
    router = OspfRouter(h.router_id, o.area, name=host)
    iface = InterfaceConfig(
        ifname,
        addr,
        priority=h.ospf_priority,
        hello_interval=o.hello_interval,
        dead_interval=o.dead_interval,
        rxmt_interval=o.retransmit_interval,
    )
    shell = OspfShell(router, iface)
    shell.start()
    loop = asyncio.get_running_loop()
    for lsa in node_lsas(topo, host):
        shell._apply(
            router.handle(
                OriginateOpaque(lsa.header.ls_type, lsa.header.ls_id, lsa.body), loop.time()
            )
        )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    shell.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
