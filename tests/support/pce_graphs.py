"""Hand-made TE graphs for the PCE tests: the LSAs nodes would originate."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address
from typing import Any

from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType, Options, RouterLinkType
from gmpls.ospf.lsa import LSA, NetworkLSA, RouterLink, RouterLSA
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_lsa_id
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.te import RouterAddress, TeLinkParams, TeLSA, link_tlv, te_lsa_id
from pce.ted import Ted

OPTS = Options.E | Options.O
BW = 100e9 / 8


def rid(n: int) -> IPv4Address:
    return IPv4Address(f"10.0.0.{n}")


def ri(n: int, qe: bool, seq: int = INITIAL_SEQUENCE) -> LSA:
    body = RouterInfoLSA((capabilities(te=True, qe_capable=qe),))
    return LSA.build(LsType.OPAQUE_AREA, ri_lsa_id(0), rid(n), seq, body, options=OPTS)


def te_link(
    a: int,
    a_if: int,
    b: int,
    b_if: int,
    metric: int = 10,
    channels: Iterable[int] = range(1, 9),
    bw: float = BW,
    seq: int = INITIAL_SEQUENCE,
) -> LSA:
    p = TeLinkParams(a_if, b_if, rid(b), metric, bw, bw, (bw,) * 8, tuple(channels))
    body = TeLSA((link_tlv(p),))
    return LSA.build(LsType.OPAQUE_AREA, te_lsa_id(a_if), rid(a), seq, body, options=OPTS)


def graph(
    qe: dict[int, bool],
    links: Sequence[tuple[int, int, int, int, int, Iterable[int]]],
    bw: dict[tuple[int, int], float] | None = None,
) -> Ted:
    """``links``: (a, a_if, b, b_if, metric, channels), advertised by both ends."""
    ted = Ted()
    for n, q in qe.items():
        ted.install(ri(n, q))
        ted.install(
            LSA.build(
                LsType.OPAQUE_AREA,
                te_lsa_id(0),
                rid(n),
                INITIAL_SEQUENCE,
                TeLSA((RouterAddress(rid(n)),)),
                options=OPTS,
            )
        )
    for a, a_if, b, b_if, metric, chans in links:
        chans = tuple(chans)
        bw_ab = (bw or {}).get((a, a_if), BW)
        ted.install(te_link(a, a_if, b, b_if, metric, chans, bw_ab))
        ted.install(te_link(b, b_if, a, a_if, metric, chans, bw_ab))
    return ted


def lan(routers: list[IPv4Address], dr: IPv4Address) -> list[LSA]:
    """Router LSAs of ``routers`` on one transit LAN, and the DR's Network LSA."""
    out = [
        LSA.build(
            LsType.ROUTER,
            r,
            r,
            INITIAL_SEQUENCE,
            RouterLSA(0, (RouterLink(dr, r, RouterLinkType.TRANSIT, 10),)),
            options=OPTS,
        )
        for r in routers
    ]
    out.append(
        LSA.build(
            LsType.NETWORK,
            dr,
            dr,
            INITIAL_SEQUENCE,
            NetworkLSA(IPv4Address("255.255.255.0"), tuple(routers)),
            options=OPTS,
        )
    )
    return out


def qkd_lsa(
    a: int,
    b: int,
    instance: int = 0,
    rate: int = 1000,
    stock: int = 100_000,
    buffer: int = 100_000,
    up: bool = True,
    seq: int = INITIAL_SEQUENCE,
) -> LSA:
    """Site node ``rid(a)`` advertises its QKD link to site ``rid(b)`` (the QKD-link TLV in
    a TE LSA of its own, gmpls/ospf/qkdlink.py)."""
    body = TeLSA((QkdLinkTlv(rid(a), rid(b), rate, stock, buffer, up),))
    return LSA.build(LsType.OPAQUE_AREA, qkd_lsa_id(instance), rid(a), seq, body, options=OPTS)


def qkd_links(links: Sequence[tuple[int, int]], **kw: Any) -> list[LSA]:
    """Both ends of each (a, b) advertise the link (instance numbers per site in order)."""
    count: dict[int, int] = {}
    out = []
    for a, b in links:
        for near, far in ((a, b), (b, a)):
            out.append(qkd_lsa(near, far, count.get(near, 0), **kw))
            count[near] = count.get(near, 0) + 1
    return out
