"""The asyncio shell of the QKD link advertiser (node_agent/qkd_links.py) on loopback: a
stand-in KM answers the status requests on a real UDP socket with the real codec; the
shell's OSPF side records what it would originate and flush. Also: which node of a
topology runs it (the site node) and what it polls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from gmpls.ospf.qkdlink import qkd_link, qkd_lsa_id
from gmpls.qkd import kmstatus as K
from gmpls.qkd_advert.core import AdvertConfig
from gmpls.topology import load
from node_agent.qkd_links import QkdLinkAgent, view_text

ROOT = Path(__file__).resolve().parents[2]
SITE = IPv4Address("10.1.1.1")
FAR = IPv4Address("10.1.1.2")


class Ospf:
    def __init__(self) -> None:
        self.calls: list[tuple[str, IPv4Address, Any]] = []

    def originate_opaque(self, ls_type: int, ls_id: IPv4Address, body: Any) -> None:
        self.calls.append(("originate", ls_id, qkd_link(body)))

    def flush_opaque(self, ls_type: int, ls_id: IPv4Address) -> None:
        self.calls.append(("flush", ls_id, None))


class Km(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.links: list[K.LinkStatus] = []
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        req = K.decode(data)
        assert isinstance(req, K.LinksRequest)
        self.requests += 1
        assert self.transport is not None
        self.transport.sendto(K.encode(K.LinksReply(req.request_id, tuple(self.links))), addr)


async def until(cond: Callable[[], bool]) -> None:
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_polls_the_km_and_originates_then_flushes() -> None:
    loop = asyncio.get_running_loop()
    km = Km()
    km.links = [K.LinkStatus(FAR, "km1-km2", True, 2000, 5000, 1 << 20, 77, 1)]
    t, _ = await loop.create_datagram_endpoint(lambda: km, local_addr=("127.0.0.1", 0))
    port = t.get_extra_info("sockname")[1]
    ospf = Ospf()
    cfg = AdvertConfig(SITE, poll_interval=0.05, min_ls_interval=0.0)
    agent = QkdLinkAgent(ospf, ("127.0.0.1", port), cfg, bind="127.0.0.1", name="n1")
    await agent.start()
    try:
        await until(lambda: len(ospf.calls) == 1)
        (what, ls_id, tlv) = ospf.calls[0]
        assert (what, ls_id) == ("originate", qkd_lsa_id(0))
        assert (tlv.local_site, tlv.far_site, tlv.stock_bits, tlv.up) == (SITE, FAR, 5000, True)
        v = agent.view()
        assert v["kmReachable"] and v["links"][str(FAR)]["usedBits"] == 77
        assert "10.1.1.2        km1-km2     up          2000          5000  1.0.128.0" in (
            view_text(v)
        )
        km.links = []
        await until(lambda: len(ospf.calls) == 2)
        assert ospf.calls[1] == ("flush", qkd_lsa_id(0), None)
        assert agent.core.counters["malformed"] == 0
    finally:
        await agent.stop()
        t.close()
    n = km.requests
    await asyncio.sleep(0.2)
    assert km.requests == n  # stopped means stopped


def test_only_the_site_node_advertises() -> None:
    topo = load(ROOT / "topologies" / "paper.yaml")
    ospf = Ospf()
    for host in ("tn1", "tn5"):
        km = topo.site_of(host)
        assert km is not None
        a = QkdLinkAgent.from_topology(topo, host, ospf)  # type: ignore[arg-type]
        assert a is not None
        dom = topo.shared_domain(host, km)
        assert dom is not None
        assert a.km == (str(topo.host(km).interfaces[dom]), K.PORT)
        assert a.bind == str(topo.host(host).interfaces[dom])
        assert a.core.cfg.local_site == topo.host(host).router_id
    a = QkdLinkAgent.from_topology(topo, "tn1", ospf, stock_fraction=0.25)  # type: ignore[arg-type]
    assert a is not None and a.core.cfg.stock_fraction == 0.25
    for host in ("tn2", "tn3", "tn4"):  # TE-only nodes: no site
        assert QkdLinkAgent.from_topology(topo, host, ospf) is None  # type: ignore[arg-type]
