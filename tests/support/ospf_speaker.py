"""A stand-in GMPLS node for the PCE's namespace tests: an OSPF speaker on the control
LAN that originates the RI and TE LSAs a node agent would (pce.synth.node_lsas), through
the same raw-socket speaker the PCE uses (daemonkit.ospf). Run inside the node's namespace::

    python -m tests.support.ospf_speaker TOPOLOGY HOST     # from the repository root
    python -m tests.support.ospf_speaker TOPOLOGY HOST --opaque 1.0.0.7=0002000801...

It proves the PCE's OSPF side on its own; tests/pce/test_pce_netns.py runs the same
scenario once with these speakers and once with the real node agents. ``--opaque
LSID=HEX`` (repeatable) also originates an area-local opaque LSA with that link state ID
and those body bytes, as they are (tests/ospf/test_ospf_interop.py gives FRR one our
decoder cannot read).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from ipaddress import IPv4Address
from pathlib import Path

from daemonkit.ospf import OspfSpeaker, control_interface
from gmpls.ospf.constants import LsType
from gmpls.ospf.lsa import UnknownBody
from gmpls.ospf.router import OspfRouter
from gmpls.topology import load
from pce.synth import node_lsas


async def main(topology: str, host: str, extra: list[tuple[IPv4Address, bytes]]) -> None:
    topo = load(Path(topology))
    h = topo.host(host)
    assert h.router_id is not None
    router = OspfRouter(h.router_id, topo.ospf.area, name=host)
    speaker = OspfSpeaker(router, control_interface(topo, host))
    await speaker.start()
    for lsa in node_lsas(topo, host):
        speaker.originate_opaque(lsa.header.ls_type, lsa.header.ls_id, lsa.body)
    for ls_id, raw in extra:
        speaker.originate_opaque(LsType.OPAQUE_AREA, ls_id, UnknownBody(raw))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await speaker.stop()


def _opaque(arg: str) -> tuple[IPv4Address, bytes]:
    ls_id, _, hexbody = arg.partition("=")
    return IPv4Address(ls_id), bytes.fromhex(hexbody)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="a stand-in node's OSPF speaker")
    ap.add_argument("topology")
    ap.add_argument("host")
    ap.add_argument("--opaque", type=_opaque, action="append", default=[], metavar="LSID=HEX")
    a = ap.parse_args()
    asyncio.run(main(a.topology, a.host, a.opaque))
