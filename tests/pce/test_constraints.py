"""The constraints of a PCReq the PCE must honour or refuse (RFC 5440 §7.2, issue 11 item
6): LSPA affinities, setup priority and L flag, the RP B (bidirectional) flag, METRIC bounds
on the IGP metric, and the IRO. Each request goes through the service (PCReq in, PCRep
out) on a small hand-made TED."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from gmpls.ero import Ipv4Prefix, Unnumbered
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType, RouterLinkType
from gmpls.ospf.lsa import LSA, RouterLink, RouterLSA
from gmpls.ospf.te import AdminGroup, Link, TeLinkParams, TeLSA, link_tlv, te_lsa_id
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.pcep.constants import LSPA_FLAG_L, METRIC_FLAG_B, METRIC_FLAG_C, RP_FLAG_B
from gmpls.pcep.tlv import find_tlv
from pce.compute import NoPathReason, PathComputer
from pce.service import PceService
from pce.ted import Ted
from tests.support.pce_graphs import BW, OPTS, graph, rid

#   1 --10-- 2 --10-- 4        the short way 1-2-4 (TE 20),
#    \               /         the long way 1-3-4 (TE 40)
#     `--20-- 3 --20'
LINKS = [
    (1, 1, 2, 1, 10, range(1, 9)),
    (2, 2, 4, 1, 10, range(1, 9)),
    (1, 2, 3, 1, 20, range(1, 9)),
    (3, 2, 4, 2, 20, range(1, 9)),
]


def link_lsa(
    a: int,
    a_if: int,
    b: int,
    b_if: int,
    metric: int,
    *,
    channels: Iterable[int] = range(1, 9),
    groups: int | None = None,
    unreserved: tuple[float, ...] = (BW,) * 8,
) -> LSA:
    """The TE LSA of one direction of a link, with an Administrative Group if given."""
    p = TeLinkParams(a_if, b_if, rid(b), metric, BW, BW, unreserved, tuple(channels))
    link = link_tlv(p)
    if groups is not None:
        link = Link((*link.subtlvs, AdminGroup(groups)))
    body = TeLSA((link,))
    return LSA.build(
        LsType.OPAQUE_AREA, te_lsa_id(a_if), rid(a), INITIAL_SEQUENCE, body, options=OPTS
    )


def ted(*extra: LSA) -> Ted:
    t = graph({n: True for n in range(1, 5)}, LINKS)
    for lsa in extra:
        t.install(lsa)
    return t


def answer(t: Ted, request: M.Request) -> M.Response:
    rep, errors, _ = PceService(PathComputer(t)).handle(M.PCReq((request,)))
    assert rep is not None and errors == []
    (r,) = rep.responses
    return r


def request(rid_: int = 1, *, flags: int = 0, **kw: object) -> M.Request:
    return M.Request(O.RP(rid_, flags), O.EndPointsIpv4(rid(1), rid(4)), **kw)  # type: ignore[arg-type]


def nodes(r: M.Response) -> list[IPv4Address]:
    assert r.no_path is None, reason(r)
    return [s.router_id for s in r.paths[0].ero.subobjects if isinstance(s, Unnumbered)]


def reason(r: M.Response) -> tuple[int, str]:
    assert r.no_path is not None
    t = find_tlv(r.no_path.tlvs, T.NoPathReasonTlv)
    assert isinstance(t, T.NoPathReasonTlv)
    return t.code, t.text


SHORT = [rid(1), rid(2)]
LONG = [rid(1), rid(3)]


# LSPA ---------------------------------------------------------------------------------


def test_lspa_exclude_any_avoids_coloured_link() -> None:
    """Link 2->4 is "red" (0x1): an LSPA excluding red takes the long way."""
    t = ted(link_lsa(2, 2, 4, 1, 10, groups=0x1))
    assert nodes(answer(t, request())) == SHORT
    assert nodes(answer(t, request(lspa=O.Lspa(exclude_any=0x1, p=True)))) == LONG


def test_lspa_include_any_and_all() -> None:
    """The long way is coloured 0x6 on both links; include-any 0x2 and include-all 0x6
    take it, include-all 0x7 finds nothing (NO-PATH with the LSPA attached)."""
    t = ted(link_lsa(1, 2, 3, 1, 20, groups=0x6), link_lsa(3, 2, 4, 2, 20, groups=0x6))
    assert nodes(answer(t, request(lspa=O.Lspa(include_any=0x2, p=True)))) == LONG
    assert nodes(answer(t, request(lspa=O.Lspa(include_all=0x6, p=True)))) == LONG
    lspa = O.Lspa(include_all=0x7, p=True)
    r = answer(t, request(lspa=lspa))
    assert reason(r)[0] == NoPathReason.NO_ROUTE and "include-all 0x7" in reason(r)[1]
    assert r.no_path is not None and r.no_path.constraints_included
    assert r.attributes.lspa == lspa


def test_lspa_setup_priority_checks_its_unreserved_bandwidth() -> None:
    """1->2 has 1 Gb/s unreserved at priorities 0..3 only (higher-priority LSPs hold the
    rest): a 1 Gb/s request at setup priority 7 takes the long way, at 0 the short one."""
    low = (1e9 / 8,) * 4 + (0.0,) * 4
    t = ted(link_lsa(1, 1, 2, 1, 10, unreserved=low))
    bw = O.Bandwidth(1e9 / 8)
    assert nodes(answer(t, request(bandwidth=bw))) == LONG
    assert nodes(answer(t, request(bandwidth=bw, lspa=O.Lspa(setup_priority=7, p=True)))) == LONG
    assert nodes(answer(t, request(bandwidth=bw, lspa=O.Lspa(setup_priority=0, p=True)))) == SHORT


def test_lspa_local_protection_cannot_be_met() -> None:
    """L flag with P: no TE link advertises protection, NO-PATH; without P it is ignored."""
    r = answer(ted(), request(lspa=O.Lspa(flags=LSPA_FLAG_L, p=True)))
    assert reason(r)[0] == NoPathReason.NO_ROUTE and "local protection" in reason(r)[1]
    assert nodes(answer(ted(), request(lspa=O.Lspa(flags=LSPA_FLAG_L, p=False)))) == SHORT


# RP B flag ------------------------------------------------------------------------------


def test_bidirectional_needs_the_reverse_links() -> None:
    """4->2 (the reverse of 2->4) has only channel 8 free, 2->4 only channel 1: one way
    the short path is fine, both ways it shares no wavelength and the long way is taken."""
    t = ted(link_lsa(2, 2, 4, 1, 10, channels=[1]), link_lsa(4, 1, 2, 2, 10, channels=[8]))
    one_way = answer(t, request())
    assert nodes(one_way) == SHORT
    both = answer(t, request(flags=RP_FLAG_B))
    assert nodes(both) == LONG
    assert both.rp.flags & RP_FLAG_B  # echoed


def test_bidirectional_reverse_bandwidth() -> None:
    """The reverse of 1->2 has no bandwidth left: a bidirectional request avoids it."""
    t = ted(link_lsa(2, 1, 1, 1, 10, unreserved=(0.0,) * 8))
    bw = O.Bandwidth(1e6)
    assert nodes(answer(t, request(bandwidth=bw))) == SHORT
    assert nodes(answer(t, request(flags=RP_FLAG_B, bandwidth=bw))) == LONG


# IGP metric bound -----------------------------------------------------------------------


def router_lsa(n: int, costs: dict[int, int]) -> LSA:
    links = tuple(
        RouterLink(rid(m), rid(n), RouterLinkType.POINT_TO_POINT, c) for m, c in costs.items()
    )
    return LSA.build(
        LsType.ROUTER, rid(n), rid(n), INITIAL_SEQUENCE, RouterLSA(0, links), options=OPTS
    )


def igp_ted() -> Ted:
    """OSPF runs over the TE links: IGP costs 1-2 = 50, 2-4 = 50, 1-3 = 5, 3-4 = 5."""
    return ted(
        router_lsa(1, {2: 50, 3: 5}),
        router_lsa(2, {1: 50, 4: 50}),
        router_lsa(3, {1: 5, 4: 5}),
        router_lsa(4, {2: 50, 3: 5}),
    )


def test_igp_metric_bound() -> None:
    """The TE-shortest path has IGP metric 100: a bound of 20 takes the next one (IGP 10),
    a bound of 5 none; the C flag returns the IGP metric of the path."""
    t = igp_ted()
    computed = O.Metric(1, 0.0, flags=METRIC_FLAG_C)
    r = answer(t, request(metrics=(computed,)))
    assert nodes(r) == SHORT and r.paths[0].attributes.metrics == (O.Metric(1, 100.0),)
    bound = O.Metric(1, 20.0, flags=METRIC_FLAG_B, p=True)
    r = answer(t, request(metrics=(bound, computed)))
    assert nodes(r) == LONG and r.paths[0].attributes.metrics == (O.Metric(1, 10.0),)
    tight = O.Metric(1, 5.0, flags=METRIC_FLAG_B, p=True)
    r = answer(t, request(metrics=(tight,)))
    assert reason(r)[0] == NoPathReason.NO_ROUTE and "IGP metric" in reason(r)[1]
    assert r.attributes.metrics == (tight,)


def test_igp_bound_without_igp_adjacencies() -> None:
    """TE links over which no OSPF adjacency runs have no IGP metric: a bound cannot be
    shown to hold, NO-PATH (never a path that ignores the bound)."""
    r = answer(ted(), request(metrics=(O.Metric(1, 1000.0, flags=METRIC_FLAG_B, p=True),)))
    assert reason(r)[0] == NoPathReason.NO_ROUTE and "no IGP metric" in reason(r)[1]


# IRO ------------------------------------------------------------------------------------


def test_iro_node_and_link() -> None:
    """An IRO naming node 3 (or the link 3:2 towards 4) takes the long way; with P set it
    is honoured, not refused."""
    via3 = O.Iro((Ipv4Prefix(rid(3), 32, loose=True),), p=True)
    assert nodes(answer(ted(), request(iro=via3))) == [rid(1), rid(3)]
    link = O.Iro((Unnumbered(rid(3), 2),), p=True)
    r = answer(ted(), request(iro=link))
    assert [
        (s.router_id, s.interface_id)
        for s in r.paths[0].ero.subobjects
        if isinstance(s, Unnumbered)
    ] == [
        (rid(1), 2),
        (rid(3), 2),
    ]


def test_iro_order_and_unknown_node() -> None:
    """IRO 2 then 3: 1-2, then 2-4-3 would revisit nothing but must end at 4 without
    passing 2 or 3 again: no loopless route; an IRO node outside the TED: NO-PATH."""
    order = O.Iro((Ipv4Prefix(rid(2), 32), Ipv4Prefix(rid(3), 32)), p=True)
    r = answer(ted(), request(iro=order))
    assert reason(r)[0] == NoPathReason.NO_ROUTE and "IRO" in reason(r)[1]
    assert r.attributes.iro == order
    unknown = O.Iro((Ipv4Prefix(rid(9), 32),), p=True)
    assert "not in the TED" in reason(answer(ted(), request(iro=unknown)))[1]


# METRIC objects the PCE cannot honour ---------------------------------------------------


def test_metric_with_p_not_honoured_is_refused() -> None:
    """With P, a METRIC of an unknown type, or an objective (no B) other than the TE
    metric, gets NO-PATH unsupported_request; without P it is ignored. The QE metrics (P
    by default) and a TE objective are served."""
    for m in (O.Metric(200, 1.0, p=True), O.Metric(3, 0.0, flags=METRIC_FLAG_C, p=True)):
        code, text = reason(answer(ted(), request(metrics=(m,))))
        assert code == NoPathReason.UNSUPPORTED_REQUEST and "METRIC type" in text
        assert nodes(answer(ted(), request(metrics=(O.Metric(m.metric_type, 1.0),)))) == SHORT
    te = O.Metric(2, 0.0, flags=METRIC_FLAG_C, p=True)
    assert (
        nodes(answer(ted(), request(metrics=(te, *ex.paper_pcreq().requests[0].metrics)))) == SHORT
    )
