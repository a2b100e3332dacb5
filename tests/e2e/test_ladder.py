"""compose/ladder.py against tshark on a capture we build from the golden messages (the
paper's PCReq/PCRep, Path, Resv, an RI LS Update, plus a Hello and an RSVP Ack that the
ladder must leave out), and tests/support/captures.py reading the same capture back."""

from __future__ import annotations

import itertools
import shutil
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from compose import ladder as L
from gmpls.ospf import examples as ospf_ex
from gmpls.pcep import examples as pcep_ex
from gmpls.rsvp import examples as rsvp_ex
from tests.support.captures import qe_session_ids, rsvp_messages
from tests.support.pcap import ethernet_frame, ipv4_packet, tcp_segment, write_pcap

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

TN = [f"10.1.1.{i}" for i in range(1, 6)]
PCE = "10.1.1.200"


def _frame(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return ethernet_frame(ipv4_packet(src, dst, proto, payload, ttl=64))


def paper_capture(path: Path) -> None:
    """Fig. 6, one frame per millisecond (tests.support.pcap spaces them 1 ms apart)."""
    frames = [_frame(TN[4], "224.0.0.5", 89, ospf_ex.ls_update(IPv4Address(TN[4])).encode())]
    frames.append(_frame(TN[0], TN[1], 46, rsvp_ex.hello().encode()))
    req, rep = pcep_ex.paper_pcreq().encode(), pcep_ex.paper_pcrep().encode()
    frames.append(
        ethernet_frame(
            ipv4_packet(TN[0], PCE, 6, tcp_segment(TN[0], PCE, 40000, 4189, req), ttl=64)
        )
    )
    frames.append(
        ethernet_frame(
            ipv4_packet(PCE, TN[0], 6, tcp_segment(PCE, TN[0], 4189, 40000, rep), ttl=64)
        )
    )
    path_msg, resv_msg, ack = (
        rsvp_ex.paper_path().encode(),
        rsvp_ex.paper_resv().encode(),
        rsvp_ex.ack().encode(),
    )
    for a, b in itertools.pairwise(TN):
        frames.append(_frame(a, b, 46, path_msg))
        frames.append(_frame(b, a, 46, ack))
    for a, b in itertools.pairwise(TN[::-1]):
        frames.append(_frame(a, b, 46, resv_msg))
    write_pcap(str(path), frames)


def test_ladder_reads_fig6_from_a_capture(tmp_path: Path) -> None:
    pcap = tmp_path / "fig6.pcap"
    paper_capture(pcap)
    d = L.decode(pcap)
    assert d.malformed == []
    rungs = L.ladder(pcap, ri_from=TN[4], decoded=d)
    assert [(r.src, r.dst, r.msg) for r in rungs] == [
        (TN[4], "224.0.0.5", "LS Update (RI)"),
        (TN[0], PCE, "PCReq"),
        (PCE, TN[0], "PCRep"),
        *[(a, b, "Path") for a, b in itertools.pairwise(TN)],
        *[(a, b, "Resv") for a, b in itertools.pairwise(TN[::-1])],
    ]
    # frames 1 ms apart: LS Update 0, Hello 1, PCReq 2, PCRep 3, Path/Ack 4-11, Resv 12-15
    assert rungs[0].t_ms == pytest.approx(-2.0, abs=0.01)
    assert L.setup_ms(rungs, TN[0]) == pytest.approx(13.0, abs=0.01)
    assert "Hello" in {r.msg for _, r in d.rows}  # decoded, but not a rung
    text = L.format_ladder(rungs)
    assert "PCReq" in text and text.count("Resv") == 4


def test_ladder_without_ri_update_and_setup_without_resv(tmp_path: Path) -> None:
    pcap = tmp_path / "fig6.pcap"
    paper_capture(pcap)
    rungs = L.ladder(pcap)
    assert rungs[0].msg == "PCReq" and rungs[0].t_ms == 0.0
    assert L.setup_ms([r for r in rungs if r.msg != "Resv"], TN[0]) is None
    assert L.setup_ms(rungs, "10.9.9.9") is None


def test_captures_read_the_handle_back(tmp_path: Path) -> None:
    pcap = tmp_path / "fig6.pcap"
    paper_capture(pcap)
    paths = [(p, m) for p, m in rsvp_messages(pcap) if m.msg_type == 1]
    assert [str(p.src) for p, _ in paths] == TN[:4]
    assert qe_session_ids(paths[0][1])[IPv4Address(TN[4])] == rsvp_ex.SESSION_ID
