"""PCReq -> PCRep (pce/service.py): attributes, bounds, SVEC diversity and missing
requests, NO-PATH contents."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from gmpls.ospf.lsa import LSA
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.pcep.tlv import find_tlv
from gmpls.topology import load
from pce.compute import PathComputer
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}


def service() -> PceService:
    ted = Ted()
    for lsa in topology_lsas(load(PAPER)):
        ted.install(LSA.decode(lsa.encode()))
    return PceService(PathComputer(ted))


def req(rid: int, a: int, b: int, **kw: object) -> M.Request:
    return M.Request(O.RP(rid), O.EndPointsIpv4(TN[a], TN[b]), **kw)  # type: ignore[arg-type]


def test_paper_reply_and_computed_metrics() -> None:
    s = service()
    metrics = (
        *ex.paper_pcreq().requests[0].metrics,
        O.Metric(2, 0.0, flags=0x02),
        O.Metric(3, 0.0, flags=0x02),
    )
    rep, errors, outcomes = s.handle(
        M.PCReq((req(1, 1, 5, metrics=metrics, bandwidth=O.Bandwidth(1e9)),))
    )
    assert rep is not None and errors == []
    (r,) = rep.responses
    assert r.paths[0].ero.subobjects == ex.fig9_ero()
    assert r.paths[0].attributes.metrics == (O.Metric(2, 40.0), O.Metric(3, 4.0))
    assert r.paths[0].attributes.bandwidth == O.Bandwidth(1e9)
    assert M.decode_message(rep.encode()) == rep
    assert outcomes[0].result.ok


def test_metric_bound_and_iro() -> None:
    s = service()
    rep, _, _ = s.handle(
        M.PCReq(
            (
                req(1, 1, 5, metrics=(O.Metric(2, 39.0, flags=0x01),)),
                req(2, 1, 5, iro=O.Iro((), p=True)),
            )
        )
    )
    assert rep is not None
    r1, r2 = rep.responses
    assert r1.no_path is not None and "bound" in find_tlv(r1.no_path.tlvs, T.NoPathReasonTlv).text  # type: ignore[union-attr]
    # an IRO with P is honoured (tests/pce/test_constraints.py); an empty one constrains nothing
    assert r2.no_path is None and r2.paths


def test_svec_link_diverse() -> None:
    """Two link-diverse requests tn2 -> tn4: the second avoids the first's links."""
    s = service()
    msg = M.PCReq((req(1, 2, 4), req(2, 2, 4)), svecs=(O.Svec((1, 2), flags=0x01),))
    rep, errors, outcomes = s.handle(msg)
    assert rep is not None and errors == []
    assert outcomes[0].result.nodes == (TN[2], TN[3], TN[4])
    assert outcomes[1].result.nodes == (TN[2], TN[4])
    # without the SVEC both take the shortest
    _, _, plain = s.handle(M.PCReq((req(1, 2, 4), req(2, 2, 4))))
    assert plain[0].result.nodes == plain[1].result.nodes


def test_svec_node_diverse_impossible() -> None:
    s = service()
    msg = M.PCReq((req(1, 1, 5), req(2, 1, 5)), svecs=(O.Svec((1, 2), flags=0x02),))
    _, _, outcomes = s.handle(msg)
    assert outcomes[0].result.ok and not outcomes[1].result.ok  # tn2 and tn4 are cut points


def test_svec_missing_request() -> None:
    s = service()
    rep, errors, outcomes = s.handle(M.PCReq((req(1, 1, 5), req(3, 2, 4)), svecs=(O.Svec((1, 2)),)))
    (err,) = errors
    assert err.codes == [(7, 0)]
    assert err.blocks[0].errors[0].tlvs == (T.ReqMissingTlv(2),)
    assert [rp.request_id for rp in err.blocks[0].rps] == [1]
    assert rep is not None and [r.rp.request_id for r in rep.responses] == [3]
    assert len(outcomes) == 1


def test_an_unknown_end_point_says_how_complete_the_ted_is() -> None:
    """Issue 18: right after `qkdnet up` a request met "unknown_source: ... is not a TE node"
    with nothing saying to wait; the reason now counts the TED against the topology."""
    ted = Ted()
    for lsa in topology_lsas(load(PAPER)):
        if lsa.header.adv_router in (TN[1], TN[2], TN[3]):
            ted.install(LSA.decode(lsa.encode()))
    svc = PceService(PathComputer(ted))
    svc.expected_nodes = frozenset(TN.values())
    (r,) = svc.handle(M.PCReq((req(1, 1, 5),)))[0].responses  # type: ignore[union-attr]
    text = find_tlv(r.no_path.tlvs, T.NoPathReasonTlv).text  # type: ignore[union-attr]
    assert text == (
        "unknown_destination: 10.1.1.5 is not a TE node in the TED; TED has 3/5 nodes; "
        "OSPF still converging, try again"
    )
    full = service()
    full.expected_nodes = frozenset(TN.values())
    bad = M.Request(O.RP(2), O.EndPointsIpv4(TN[1], IPv4Address("10.1.1.9")))
    (r,) = full.handle(M.PCReq((bad,)))[0].responses  # type: ignore[union-attr]
    text = find_tlv(r.no_path.tlvs, T.NoPathReasonTlv).text  # type: ignore[union-attr]
    assert text.endswith("is not a TE node in the TED; TED has 5/5 nodes")
