"""Key-aware PCE answers (pce/service.py with pce/keyroute.py) on the paper's TE graph
with hand-made QKD links between the sites of tn1..tn5: the relay path in the PCRep,
NO-PATH "insufficient key rate", commit, release by hold time and by the head's reports,
a link down."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from pathlib import Path

from gmpls import qe
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType
from gmpls.ospf.lsa import LSA
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_lsa_id
from gmpls.ospf.te import TeLSA
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.pcep.constants import LSP_FLAG_R, NO_PATH_FLAG_C
from gmpls.pcep.qemetrics import qe_metrics
from gmpls.pcep.tlv import find_tlv
from gmpls.topology import load
from pce.compute import NoPathReason, PathComputer
from pce.keyroute import link_key
from pce.lspdb import LspDb
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted
from tests.support.pce_graphs import OPTS

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}
#: QKD links: tn1's site reaches tn5's through tn2's or tn3's
QKD = [(1, 2), (2, 5), (1, 3), (3, 5)]


def qkd_lsa(a: int, b: int, instance: int, up: bool = True, seq: int = INITIAL_SEQUENCE) -> LSA:
    body = TeLSA((QkdLinkTlv(TN[a], TN[b], 1000, 100_000, 100_000, up),))
    lsa = LSA.build(LsType.OPAQUE_AREA, qkd_lsa_id(instance), TN[a], seq, body, options=OPTS)
    return LSA.decode(lsa.encode())


def service(lsps: LspDb | None = None) -> PceService:
    ted = Ted()
    for lsa in topology_lsas(load(PAPER)):
        ted.install(LSA.decode(lsa.encode()))
    n: dict[int, int] = {}
    for a, b in QKD:
        for near, far in ((a, b), (b, a)):
            ted.install(qkd_lsa(near, far, n.get(near, 0)))
            n[near] = n.get(near, 0) + 1
    return PceService(PathComputer(ted), lsps=lsps)


def pcreq(rid: int = 1, refresh_ms: int = 1000) -> M.PCReq:
    params = dataclasses.replace(ex.PAPER_QE, refresh_value=refresh_ms)
    return M.PCReq(
        (M.Request(O.RP(rid), O.EndPointsIpv4(TN[1], TN[5]), metrics=qe_metrics(params)),)
    )


def answer(s: PceService, msg: M.PCReq, now: float = 0.0) -> M.Response:
    rep, _, _ = s.handle(msg, now)
    assert rep is not None
    back = M.decode_message(rep.encode())
    assert isinstance(back, M.PCRep)
    return back.responses[0]


def test_relay_path_in_the_reply_and_committed() -> None:
    s = service()
    r = answer(s, pcreq())
    assert r.paths and r.relay == (TN[1], TN[2], TN[5])
    need = 8 * ex.PAPER_QE.key_length  # 32 bytes once a second
    assert s.keys.committed() == {link_key(TN[1], TN[2]): need, link_key(TN[2], TN[5]): need}
    # the next one goes the other way: same hops, more free rate
    assert answer(s, pcreq(2)).relay == (TN[1], TN[3], TN[5])


def test_insufficient_key_rate() -> None:
    s = service()
    r = answer(s, pcreq(refresh_ms=100))  # 2560 b/s > 1000 b/s on every link
    assert r.no_path is not None and not r.paths and r.relay == ()
    assert r.no_path.flags & NO_PATH_FLAG_C
    reason = find_tlv(r.no_path.tlvs, T.NoPathReasonTlv)
    assert isinstance(reason, T.NoPathReasonTlv)
    assert reason.code == NoPathReason.INSUFFICIENT_KEY_RATE == 13
    assert "insufficient key rate" in reason.text and "1 kb/s free" in reason.text
    # the QE METRICs are the unsatisfied constraint
    assert r.attributes.metrics == pcreq(refresh_ms=100).requests[0].metrics
    assert s.stats.reasons["INSUFFICIENT_KEY_RATE"] == 1 and s.keys.committed() == {}


def test_rate_fills_up_then_refused() -> None:
    s = service()
    got = [answer(s, pcreq(i, refresh_ms=250), now=i).relay for i in range(1, 6)]
    # 1024 b/s each: one fits per 1000 b/s link... none: 1024 > 1000
    assert got == [()] * 5
    got = [answer(s, pcreq(i, refresh_ms=500), now=i).relay for i in range(1, 6)]
    # 512 b/s each: one per relay path, then nothing is left
    assert got[:2] == [(TN[1], TN[2], TN[5]), (TN[1], TN[3], TN[5])] and got[2:] == [()] * 3


def test_link_down_takes_another_relay_path() -> None:
    s = service()
    s.computer.ted.install(qkd_lsa(2, 1, 0, up=False, seq=INITIAL_SEQUENCE + 1))
    assert answer(s, pcreq()).relay == (TN[1], TN[3], TN[5])


def test_released_after_hold_unless_reported() -> None:
    s = service()
    answer(s, pcreq(), now=0)
    assert answer(s, pcreq(2), now=31).relay == (TN[1], TN[2], TN[5])  # the first expired
    assert len(s.keys.commitments) == 1
    lsps = LspDb(hold=30)
    s = service(lsps)
    answer(s, pcreq(), now=0)
    lsps.report("10.1.1.1", ex.paper_pcrpt(), now=1)  # tn1 reports its QE LSP to tn5
    answer(s, pcreq(2), now=31)
    assert len(s.keys.commitments) == 2  # the reported one kept its rate
    removed = ex.paper_pcrpt()
    (entry,) = removed.entries
    gone = dataclasses.replace(entry.lsp, flags=entry.lsp.flags | LSP_FLAG_R)
    lsps.report("10.1.1.1", M.PCRpt((dataclasses.replace(entry, lsp=gone),)), now=40)
    answer(s, pcreq(3), now=62)
    assert len(s.keys.commitments) == 1 and s.keys.released_total == 2


def test_no_sites_no_relay() -> None:
    """Without QKD-link advertisements the PCE answers as before, without the TLV."""
    ted = Ted()
    for lsa in topology_lsas(load(PAPER)):
        ted.install(lsa)
    s = PceService(PathComputer(ted))
    r = answer(s, pcreq())
    assert r.paths and r.relay == () and r.rp.tlvs == ()
    assert qe.CODEPOINTS.pcep_relay_tlv == 65520


def test_unreserved_answers_commit_nothing_and_refuse_nothing() -> None:
    """reserve=False (PCInitiate, PCUpd of a service whose rate is committed already)."""
    s = service()
    (req,) = pcreq(refresh_ms=500).requests
    resp, _ = s.answer(req, reserve=False)
    assert resp.relay == (TN[1], TN[2], TN[5]) and s.keys.commitments == []
    (hungry,) = pcreq(refresh_ms=100).requests
    resp, outcome = s.answer(hungry, reserve=False)
    assert resp.paths and resp.relay == () and outcome.result.ok
