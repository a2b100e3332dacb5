"""The relay path end to end in memory, through every codec on the way: the site nodes'
QKD link advertisers (gmpls/qkd_advert) fed by KM status replies originate their TE LSAs
in real OSPF router cores; those LSAs, as bytes, fill the real PCE's TED; the PCE answers
the head's PCReq with a RELAY-PATH TLV (through the PCEP codec); the head's QE shell puts
the path in its QKD_OPEN and in show. And when the links cannot carry the service's key
consumption: NO-PATH "insufficient key rate".

Paper topology (tn1 ... tn5); QKD links tn1-tn3 and tn3-tn5 (tn1 and tn5 share none), so
tn3 is a trusted site on the way."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

from daemonkit.pcep import Reply
from gmpls import qe
from gmpls.core import Tick
from gmpls.ospf.constants import LsType
from gmpls.ospf.events import OriginateOpaque
from gmpls.ospf.lsa import LSA
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import TeLSA
from gmpls.pcep.messages import PCRep, decode_message
from gmpls.qe_service.events import Create
from gmpls.qkd import kmstatus as K
from gmpls.qkd_advert.core import AdvertConfig, QkdAdvertiser
from gmpls.qkd_advert.events import KmDatagram, Originate, SendKm
from node_agent.qe_cli import created
from node_agent.qe_service import QeService
from pce.compute import PathComputer
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted
from tests.qe.test_qe_shell import TOPO, Etsi, Pcc, Unwired

TN1, TN3, TN5 = (IPv4Address(f"10.1.1.{i}") for i in (1, 3, 5))
LINKS = {TN1: [TN3], TN3: [TN1, TN5], TN5: [TN3]}


def qkd_lsas(rate_bps: int) -> list[LSA]:
    """Each site node's QKD link LSAs, as its advertiser and OSPF core make them (bytes)."""
    out = []
    for site, fars in LINKS.items():
        adv, router = QkdAdvertiser(AdvertConfig(site)), OspfRouter(site)
        (send,) = [a for a in adv.handle(Tick(), 0.0) if isinstance(a, SendKm)]
        req = K.decode(send.data)
        links = tuple(
            K.LinkStatus(
                f, f"s{site.packed[3]}-s{f.packed[3]}", True, rate_bps, 1 << 19, 1 << 20, 0, 0
            )
            for f in fars
        )
        for a in adv.handle(KmDatagram(K.encode(K.LinksReply(req.request_id, links))), 0.0):
            if isinstance(a, Originate):
                router.handle(OriginateOpaque(LsType.OPAQUE_AREA, a.ls_id, TeLSA((a.tlv,))), 0.0)
        out += [LSA.decode(x.encode()) for x in router.lsdb.lsas(0.0) if x.header.ls_type == 10]
    return out


class KeyAwarePcc(Pcc):
    def __init__(self, rate_bps: int) -> None:
        ted = Ted()
        ted.load([*topology_lsas(TOPO), *qkd_lsas(rate_bps)])
        self.pce = PceService(PathComputer(ted))

    async def request(self, *args: Any, **kw: Any) -> Reply:
        """The PCE's answer through the PCEP codec (the RELAY-PATH TLV as bytes)."""
        r = await super().request(*args, **kw)
        msg = decode_message(PCRep((r.response,)).encode())
        assert isinstance(msg, PCRep)
        return Reply(1, msg.responses[0])


async def run(rate_bps: int) -> tuple[Etsi, QeService, str]:
    etsi = Etsi()
    agent = Unwired.from_topology(TOPO, "tn1")
    svc = QeService(name="tn1", router_id=TN1, rsvp=agent, pcc=KeyAwarePcc(rate_bps), etsi=etsi)
    agent.on_action = svc.on_rsvp_action
    await svc.start()
    # 32-byte keys every second: 256 b/s of key on every link of the relay path
    sid = created(svc.feed(Create(TN5, qe.QeParams(key_length=32, refresh_value=1000))))
    s = svc.core.find(sid)
    async with asyncio.timeout(5):
        while s.state not in ("signalling", "failed"):
            await asyncio.sleep(0.005)
    return etsi, svc, sid


async def test_the_pce_relays_through_the_trusted_site_and_the_head_opens_on_it() -> None:
    etsi, svc, sid = await run(rate_bps=2000)
    s = svc.core.find(sid)
    assert s.state == "signalling", s.error
    assert s.relay == (TN1, TN3, TN5)
    assert etsi.relays == [(TN1, TN3, TN5)]
    assert s.as_json(svc.now())["relay_path"] == ["10.1.1.1", "10.1.1.3", "10.1.1.5"]
    await svc.stop()


async def test_links_too_slow_for_the_service_give_no_path_insufficient_key_rate() -> None:
    etsi, svc, sid = await run(rate_bps=100)
    s = svc.core.find(sid)
    assert s.state == "failed" and "insufficient key rate" in s.error, s.error
    assert etsi.relays == []
    await svc.stop()
