"""The paper's OSPF messages (docs/design.md#the-testbed,
docs/design.md#router-information-capability-bits), built once for tests, benchmarks and docs.

tn1 (10.1.1.1) is TE and QE capable: its RI LSA carries informational capabilities
0x12000000 (TE bit 3, QE bit 6; the paper's Fig. 7). Its TE link 1 goes to tn2's
interface 2: TE metric 10, 100 Gb/s, lambda switching, DWDM channels 1..8 available.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from gmpls.ospf.constants import INITIAL_SEQUENCE, DDFlags, LsType, Options, RouterLinkType
from gmpls.ospf.lsa import LSA, RouterLink, RouterLSA
from gmpls.ospf.packet import (
    DatabaseDescription,
    Hello,
    LSAck,
    LSRequest,
    LSUpdate,
    Packet,
)
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.te import RouterAddress, TeLinkParams, TeLSA, link_tlv, te_lsa_id

TN1 = IPv4Address("10.1.1.1")
TN2 = IPv4Address("10.1.1.2")
AREA0 = IPv4Address("0.0.0.0")
MASK24 = IPv4Address("255.255.255.0")
OPTS = Options.E | Options.O

#: 100 Gb/s in bytes per second, as RFC 3630 encodes bandwidth
BW_100G = 100e9 / 8


def ri_lsa(router: IPv4Address = TN1, *, qe: bool = True) -> LSA:
    body = RouterInfoLSA((capabilities(te=True, qe_capable=qe),))
    return LSA.build(LsType.OPAQUE_AREA, ri_lsa_id(0), router, INITIAL_SEQUENCE, body, options=OPTS)


def te_router_lsa(router: IPv4Address = TN1) -> LSA:
    body = TeLSA((RouterAddress(router),))
    return LSA.build(LsType.OPAQUE_AREA, te_lsa_id(0), router, INITIAL_SEQUENCE, body, options=OPTS)


def te_link_params() -> TeLinkParams:
    return TeLinkParams(
        local_id=1,
        remote_id=2,
        remote_router=TN2,
        te_metric=10,
        max_bandwidth=BW_100G,
        max_reservable=BW_100G,
        unreserved=(BW_100G,) * 8,
        channels=tuple(range(1, 9)),
    )


def te_link_lsa(router: IPv4Address = TN1) -> LSA:
    body = TeLSA((link_tlv(te_link_params()),))
    return LSA.build(LsType.OPAQUE_AREA, te_lsa_id(1), router, INITIAL_SEQUENCE, body, options=OPTS)


def te_combined_lsa(router: IPv4Address = TN1) -> LSA:
    """Router Address and Link TLVs in one LSA, as FRR originates them."""
    body = TeLSA((RouterAddress(router), link_tlv(te_link_params())))
    return LSA.build(LsType.OPAQUE_AREA, te_lsa_id(2), router, INITIAL_SEQUENCE, body, options=OPTS)


def router_lsa(router: IPv4Address = TN1, dr: IPv4Address = TN1) -> LSA:
    body = RouterLSA(0, (RouterLink(dr, router, RouterLinkType.TRANSIT, 10),))
    return LSA.build(LsType.ROUTER, router, router, INITIAL_SEQUENCE, body, options=OPTS)


def hello(router: IPv4Address = TN1) -> Packet:
    """A Hello: options E only (the O bit belongs to Database Description packets)."""
    body = Hello(MASK24, 1, Options.E, 1, 4, TN1, TN2, (TN2,))
    return Packet(router, AREA0, body)


def dd(router: IPv4Address = TN1) -> Packet:
    headers = tuple(a.header for a in (router_lsa(), ri_lsa(), te_link_lsa()))
    body = DatabaseDescription(1500, OPTS, DDFlags.M | DDFlags.MS, 0x1234, headers)
    return Packet(router, AREA0, body)


def ls_request(router: IPv4Address = TN2) -> Packet:
    keys = tuple(a.key for a in (router_lsa(), ri_lsa(), te_link_lsa()))
    return Packet(router, AREA0, LSRequest(keys))


def ls_update(router: IPv4Address = TN1) -> Packet:
    """The paper's RI LSA (0x12) with the TE LSAs, in one LS Update."""
    lsas = (ri_lsa(), te_router_lsa(), te_link_lsa(), te_combined_lsa())
    return Packet(router, AREA0, LSUpdate(lsas))


def ls_ack(router: IPv4Address = TN2) -> Packet:
    return Packet(router, AREA0, LSAck(tuple(a.header for a in ls_update().body.lsas)))
