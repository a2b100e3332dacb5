"""The stateful PCE in memory (RFC 8231, 8281, 8408): capability negotiation, reports and
state synchronisation, path setup types it does not compute, and the lambda ledger (fifty
requests in a burst never share a lambda on a link)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from gmpls import ero
from gmpls.ospf.lsa import LSA
from gmpls.pcep import constants as C
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.pcep.events import Deliver, Received, SendMessage
from gmpls.pcep.session import SessionConfig
from gmpls.topology import load
from pce.compute import PathComputer
from pce.lspdb import LspDb, route_lambdas
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted
from tests.pcep.test_pcep_session import establish, sent
from tests.support.e2elab import wide_topology

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}
U, INIT = C.STATEFUL_FLAG_U, C.STATEFUL_FLAG_I
PCC = "10.1.1.1"


# negotiation (RFC 8231 §5.4, RFC 8408 §3) ----------------------------------------------------


def test_stateful_when_both_advertise() -> None:
    pcc, pce, _ = establish(SessionConfig(stateful=U), SessionConfig(stateful=U | INIT))
    assert pcc.stateful == pce.stateful == U
    tlvs = pce.local_open.tlvs
    assert T.StatefulCapabilityTlv(U | INIT) in tlvs and T.PathSetupTypeCapabilityTlv((0,)) in tlvs
    pcc, pce, _ = establish(SessionConfig(), SessionConfig(stateful=U | INIT))
    assert pcc.stateful is None and pce.stateful is None and pcc.is_up


def test_report_on_a_stateless_session_is_pcerr_19_5() -> None:
    _pcc, pce, _ = establish(SessionConfig(), SessionConfig(stateful=U | INIT))
    out = pce.handle(_rx(ex.paper_pcrpt()), 1)
    assert [m.codes for m in sent(out)] == [[C.ERR_REPORT_NOT_STATEFUL]]
    assert not any(isinstance(a, Deliver) for a in out) and pce.is_up


def test_report_delivered_on_a_stateful_session() -> None:
    _pcc, pce, _ = establish(SessionConfig(stateful=U), SessionConfig(stateful=U | INIT))
    out = pce.handle(_rx(ex.paper_pcrpt()), 1)
    assert [a.msg for a in out if isinstance(a, Deliver)] == [ex.paper_pcrpt()]
    # a PCUpd is not for a PCE: unrecognised, counted (RFC 5440 §6.9)
    pce.handle(_rx(ex.paper_pcupd()), 2)
    assert pce.counters.unknown_messages == 1


def test_pcupd_without_stateful_is_pcerr_19_2_at_the_pcc() -> None:
    pcc, _pce, _ = establish(SessionConfig(), SessionConfig(stateful=U | INIT))
    out = pcc.handle(_rx(ex.paper_pcupd()), 1)
    assert [m.codes for m in sent(out)] == [[C.ERR_UPDATE_NOT_STATEFUL]]


def test_unsupported_path_setup_type_is_pcerr_21_1_and_the_other_request_answered() -> None:
    """RFC 8408 §4: a PCReq for an SR path (PST 1) gets PCErr (21, 1) naming its RP."""
    pcc, pce, _ = establish(SessionConfig(stateful=U), SessionConfig(stateful=U | INIT))
    sr = M.Request(O.RP(1, tlvs=(T.PathSetupTypeTlv(1),)), O.EndPointsIpv4(TN[1], TN[5]))
    rsvp = M.Request(O.RP(2, tlvs=(T.PathSetupTypeTlv(0),)), O.EndPointsIpv4(TN[1], TN[5]))
    pcc.handle(SendMessage(M.PCReq((sr, rsvp))), 1)
    out = pce.handle(_rx(M.PCReq((sr, rsvp))), 1)
    (err,) = sent(out)
    assert err.codes == [C.ERR_UNSUPPORTED_PST] and err.blocks[0].rps[0].request_id == 1
    (deliver,) = [a for a in out if isinstance(a, Deliver)]
    assert [r.rp.request_id for r in deliver.msg.requests] == [2]


def _rx(msg: M.AnyMessage) -> Received:
    return Received(msg.encode())


# the LSP database and state synchronisation (RFC 8231 §5.6) ----------------------------------


def _report(plsp: int, name: bytes, *, sync: bool = False, state: int = C.LspState.UP,
            channel: int = 1, remove: bool = False) -> M.PCRpt:  # fmt: skip
    ids = T.Ipv4LspIdentifiersTlv(TN[1], plsp, plsp, TN[1], TN[5])
    flags = O.lsp_flags(delegate=True, sync=sync, state=state, remove=remove)
    lsp = O.LspObject(plsp, flags, (T.SymbolicPathNameTlv(name), ids))
    return M.PCRpt((M.LspEntry(lsp, ero=O.Ero(ex.fig9_ero(channel=channel))),))


def test_state_sync_restart_and_empty_sync() -> None:
    db = LspDb()
    db.session_up(PCC, 0)
    db.report(PCC, _report(1, b"a", sync=True), 0)
    db.report(PCC, _report(2, b"b", sync=True, channel=2), 0)
    assert db.sync[PCC].syncing
    db.report(PCC, ex.end_of_sync(), 0)
    assert [(x.plsp_id, x.name, x.delegated) for x in db.all()] == [(1, "a", True), (2, "b", True)]
    assert not db.sync[PCC].syncing and db.sync[PCC].syncs == 1
    db.session_down(PCC)  # delegation returns to the PCC, the LSPs stay
    assert [(x.pcc_up, x.delegated) for x in db.all()] == [(False, False)] * 2
    db.session_up(PCC, 10)  # the PCC restarted: it only has LSP 2 now
    assert all(x.stale for x in db.all())
    db.report(PCC, _report(2, b"b", sync=True, channel=2), 10)
    db.report(PCC, ex.end_of_sync(), 10)
    assert [x.plsp_id for x in db.all()] == [2] and db.counters.purged == 1
    db.session_down(PCC)
    db.session_up(PCC, 20)  # an empty synchronisation: the marker alone
    db.report(PCC, ex.end_of_sync(), 20)
    assert db.all() == [] and db.sync[PCC].syncs == 3


def test_report_details_and_removal() -> None:
    db = LspDb()
    db.report(PCC, ex.paper_pcrpt(), 0)
    (j,) = db.as_json(0)["lsps"]
    assert j["name"] == "qe-tn1-tn5" and (j["head"], j["tail"]) == ("10.1.1.1", "10.1.1.5")
    assert j["state"] == "up" and j["delegated"] and j["pst"] == "RSVP_TE"
    assert [x["lambda"] for x in j["lambdas"]] == [1, 1, 1, 1]
    assert j["lambdas"][0]["link"] == "10.1.1.1:1"
    assert j["qe"]["key_length"] == 32 and j["qe"]["algorithm"] == 10
    assert j["path"][:3] == ["10.1.1.1:1", "QE", "label 1"]
    db.report(PCC, _report(1, b"qe-tn1-tn5", remove=True), 1)
    assert db.all() == [] and db.counters.removed == 1


def test_segment_routing_report_stored_and_shown_holding_no_lambda() -> None:
    """pathd's kind of report: PST 1 in the SRP, SR-ERO subobjects (type 36, kept as
    unknown), no LSP-IDENTIFIERS needed for SR."""
    srp = O.Srp(0, tlvs=(T.PathSetupTypeTlv(C.PathSetupType.SR),))
    lsp = O.LspObject(7, O.lsp_flags(state=C.LspState.UP), (T.SymbolicPathNameTlv(b"qe1"),))
    sr_ero = O.Ero((ero.UnknownSubobject(36, bytes.fromhex("100003e8a0000a010105")),))
    db = LspDb()
    assert db.report("10.1.1.21", M.PCRpt((M.LspEntry(lsp, srp, sr_ero),)), 0) == []
    (j,) = db.as_json(0)["lsps"]
    assert j["pst"] == "SR" and j["name"] == "qe1" and j["lambdas"] == []
    assert j["path"] == ["subobject 36"]
    assert db.held(0) == {}


def test_new_lsp_without_name_or_identifiers_refused() -> None:
    db = LspDb()
    no_name = M.PCRpt((M.LspEntry(O.LspObject(3), ero=O.Ero()),))
    assert [c for c, _ in db.report(PCC, no_name, 0)] == [C.ERR_SYMBOLIC_NAME_MISSING]
    named = O.LspObject(3, tlvs=(T.SymbolicPathNameTlv(b"x"),))
    no_ids = M.PCRpt((M.LspEntry(named, ero=O.Ero()),))
    assert [c for c, _ in db.report(PCC, no_ids, 0)] == [C.ERR_LSP_IDENTIFIERS_MISSING]
    assert db.all() == []


def test_reservation_held_until_reported_or_expired() -> None:
    db = LspDb(hold=5.0)
    links = route_lambdas(ex.fig9_ero())
    db.reserve(TN[1], TN[5], links, 0)
    assert db.held(1) == {k: {1} for k, _ in links}
    db.report(PCC, ex.paper_pcrpt(), 2)  # the head reports the LSP: it holds them now
    assert db.reservations == [] and db.counters.reservations_confirmed == 1
    assert db.held(100) == {k: {1} for k, _ in links}
    db.reserve(TN[2], TN[4], [((TN[2], 9), 3)], 100)
    assert db.held(104.9)[(TN[2], 9)] == {3}
    assert (TN[2], 9) not in db.held(105) and db.counters.reservations_expired == 1
    db.report(PCC, _report(1, b"qe-tn1-tn5", state=C.LspState.DOWN), 106)
    assert db.held(106) == {}  # an LSP reported down holds nothing


# the lambda ledger: a burst of requests ------------------------------------------------------


def _service(lsps: LspDb | None, path: Path) -> PceService:
    ted = Ted()
    for lsa in topology_lsas(load(path)):
        ted.install(LSA.decode(lsa.encode()))
    return PceService(PathComputer(ted), lsps=lsps)


def _burst(service: PceService, n: int) -> list[list[tuple[object, int]]]:
    """``n`` QE requests between the paper's nodes, each from its own PCC, all computed
    before any LSP is signalled (the same instant): the (link, lambda) of each path."""
    pairs = itertools.cycle([(1, 5), (5, 1), (2, 4), (1, 3), (4, 1), (3, 5), (2, 5)])
    out = []
    for rid, (a, b) in zip(range(1, n + 1), pairs, strict=False):
        ends = O.EndPointsIpv4(TN[a], TN[b])
        qe = ex.paper_pcreq().requests[0].metrics if {a, b} == {1, 5} else ()  # QE nodes
        req = M.Request(O.RP(rid), ends, metrics=qe)
        rep, _, _ = service.handle(M.PCReq((req,)), now=0.0)
        assert rep is not None
        (resp,) = rep.responses
        if resp.paths:
            out.append(route_lambdas(resp.paths[0].ero.subobjects))
    return out


def _collisions(paths: list[list[tuple[object, int]]]) -> int:
    used = [x for p in paths for x in p]
    return len(used) - len(set(used))


def test_fifty_concurrent_requests_never_collide(tmp_path: Path) -> None:
    wide = wide_topology(tmp_path, 64)  # as the fifty-service e2e test (e2elab.wide_lab)
    paths = _burst(_service(LspDb(), wide), 50)
    assert len(paths) == 50 and _collisions(paths) == 0
    # a stateless PCE (no ledger) hands the same lambdas out again and again
    assert _collisions(_burst(_service(None, wide), 50)) > 0


def _fig9_lambdas(service: PceService, rid: int, now: float) -> set[int]:
    """The lambdas of the path the PCE computes for the paper's request tn1 -> tn5."""
    req = replace(ex.paper_pcreq().requests[0], rp=O.RP(rid))
    rep, _, _ = service.handle(M.PCReq((req,)), now=now)
    assert rep is not None
    (resp,) = rep.responses
    return {ch for _, ch in route_lambdas(resp.paths[0].ero.subobjects)}


def test_the_lambdas_of_a_reported_lsp_are_not_offered() -> None:
    """An LSP the PCE never computed (another PCC's, or one synchronised after the PCE
    restarted), reported on the Fig. 9 path with lambda 1, holds its lambdas with no
    reservation behind it: a request along that path gets lambda 2. Reported down, or
    removed, it holds nothing: lambda 1 is offered again."""
    db = LspDb(hold=0.0)  # no reservation of computed paths: only the report counts
    service = _service(db, PAPER)
    assert _fig9_lambdas(service, 1, 0) == {1}
    db.report("10.1.1.9", _report(1, b"a", channel=1), 0)
    assert db.reservations == [] and _fig9_lambdas(service, 2, 1) == {2}
    db.report("10.1.1.9", _report(1, b"a", channel=1, state=C.LspState.DOWN), 2)
    assert _fig9_lambdas(service, 3, 3) == {1}
    db.report("10.1.1.9", _report(1, b"a", channel=1), 4)
    assert _fig9_lambdas(service, 4, 5) == {2}
    db.report("10.1.1.9", _report(1, b"a", remove=True), 6)
    assert _fig9_lambdas(service, 5, 7) == {1}


def test_a_burst_beyond_the_lambdas_gets_no_path_not_a_collision() -> None:
    paths = _burst(_service(LspDb(), PAPER), 50)
    assert 8 <= len(paths) < 50 and _collisions(paths) == 0


def test_no_hold_means_no_reservation() -> None:
    db = LspDb(hold=0.0)
    paths = _burst(_service(db, PAPER), 3)
    assert _collisions(paths) > 0 and db.held(0.0) == {}


# delegation and the State Timeout Interval (RFC 8231 §5.7) ----------------------------------


def test_state_timeout_purges_a_lost_pccs_lsps_and_a_pcc_back_in_time_redelegates() -> None:
    db = LspDb(state_timeout=60)
    db.session_up(PCC, 0)
    db.report(PCC, _report(1, b"a", sync=True), 0)
    db.report(PCC, ex.end_of_sync(), 0)
    (lsp,) = db.all()
    db.update_sent(lsp, db.new_srp_id(), 50)
    link_lambdas = route_lambdas(ex.fig9_ero(channel=1))
    assert all(ch in db.held(1)[link] for link, ch in link_lambdas)
    db.session_down(PCC, 100)  # delegation back with the PCC, the update void
    assert (lsp.delegated, lsp.pcc_up, lsp.update_srp) == (False, False, None)
    assert db.as_json(130)["pccs"][PCC] == {"syncing": False, "syncs": 1, "up": False,
                                            "purge_in_s": 30.0}  # fmt: skip
    assert all(ch in db.held(159)[link] for link, ch in link_lambdas)
    # back within the State Timeout: it re-synchronises and delegates again (D)
    db.session_up(PCC, 130)
    db.report(PCC, _report(1, b"a", sync=True), 130)
    db.report(PCC, ex.end_of_sync(), 130)
    (lsp,) = db.all()
    assert lsp.delegated and lsp.pcc_up and db.held(500) != {}
    # gone for good: the LSPs and their lambdas go State Timeout seconds later
    db.session_down(PCC, 1000)
    assert db.held(1059.9) != {} and db.all() != []
    assert db.held(1060) == {} and db.all() == [] and db.counters.purged_timeout == 1
    assert PCC not in db.as_json(1061)["pccs"]


def test_a_report_answering_an_update_ends_it_and_a_pcerr_names_why() -> None:
    db = LspDb()
    db.report(PCC, _report(1, b"a"), 0)
    (lsp,) = db.all()
    srp = db.new_srp_id()
    db.update_sent(lsp, srp, 0)
    assert db.update_outstanding(lsp, 9.9) and not db.update_outstanding(lsp, 10)
    db.report(PCC, _report(1, b"a", channel=3), 1)  # unsolicited (SRP-ID 0): still waiting
    (lsp,) = db.all()
    assert lsp.update_srp == srp and lsp.updates == 1
    answer = _report(1, b"a", channel=3)
    answer = M.PCRpt((replace(answer.entries[0], srp=O.Srp(srp)),))
    db.report(PCC, answer, 2)
    (lsp,) = db.all()
    assert (lsp.update_srp, lsp.update_result) == (None, "moved")
    db.update_sent(lsp, db.new_srp_id(), 3)
    db.srp_refused(srp + 1, [C.ERR_UPDATE_NOT_DELEGATED])
    assert (lsp.update_srp, lsp.update_result) == (None, "PCErr 19/1")
    assert db.counters.updates == 2 and db.counters.updates_refused == 1
