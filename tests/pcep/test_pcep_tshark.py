"""tshark, the independent decoder, reads our PCEP messages as we meant them.

A PCEP session on TCP 4189 (handshake, Open both ways, Keepalive, the paper's PCReq with
the four QE metrics of Fig. 8, the PCRep with the exact Fig. 9 ERO, then a NO-PATH reply,
a PCErr, a PCNtf and a Close) is written to a pcap and decoded with tshark. Nothing may be
malformed; the only expert warning allowed is tshark's note that subobject 103 is not
defined (our QE subobject, docs/design.md#the-qe-ero-subobject).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from gmpls import ero
from gmpls.pcep import constants as C
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from tests.support import tshark
from tests.support.pcap import write_pcap
from tests.support.pcep_framing import conversation
from tests.support.tshark import REQUIRED, TSHARK

pytestmark = pytest.mark.interop
IP = ipaddress.IPv4Address


def _extra_pcreq() -> M.PCReq:
    """Two synchronised requests using every request object (SVEC, LSPA, BANDWIDTH, RRO,
    IRO, a TE metric)."""
    r2 = M.Request(
        O.RP(2, flags=0x3),
        O.EndPointsIpv4(IP("10.1.1.2"), IP("10.1.1.4")),
        lspa=O.Lspa(setup_priority=3, holding_priority=3),
        bandwidth=O.Bandwidth(1.25e9),
        metrics=(O.Metric(2, 0.0, flags=0x02),),
        rro=O.Rro((ero.Unnumbered(IP("10.1.1.2"), 1), ero.Unnumbered(IP("10.1.1.3"), 3))),
        rro_bandwidth=O.Bandwidth(1.0e9, type=2),
        iro=O.Iro((ero.Ipv4Prefix(IP("10.1.1.3"), 32),)),
    )
    r3 = M.Request(O.RP(3), O.EndPointsIpv4(IP("10.1.1.1"), IP("10.1.1.4")))
    return M.PCReq((r2, r3), svecs=(O.Svec((2, 3), flags=0x02),))


MESSAGES: list[tuple[bool, bytes]] = [
    (True, ex.paper_open(1).encode()),
    (False, ex.paper_open(2).encode()),
    (True, M.Keepalive().encode()),
    (False, M.Keepalive().encode()),
    (True, ex.paper_pcreq().encode()),
    (False, ex.paper_pcrep().encode()),
    (True, _extra_pcreq().encode()),
    (
        False,
        M.PCRep(
            (
                M.Response(
                    O.RP(2),
                    no_path=O.NoPath(
                        ni=0,
                        flags=0x8000,
                        tlvs=(
                            T.NoPathVectorTlv(C.NoPathVector.UNKNOWN_DESTINATION),
                            T.NoPathReasonTlv(2, "unknown_destination: 10.1.1.4 is not a TE node"),
                        ),
                    ),
                ),
                M.Response(
                    O.RP(3),
                    no_path=O.NoPath(tlvs=(T.NoPathVectorTlv(C.NoPathVector.UNKNOWN_SOURCE),)),
                ),
            )
        ).encode(),
    ),
    (False, M.PCErr.of((6, 3), rps=(O.RP(9),)).encode()),
    (
        False,
        M.PCNtf((M.Notify((O.Notification(2, 1, tlvs=(T.OverloadDurationTlv(30),)),)),)).encode(),
    ),
    (True, M.Close(O.CloseObject(reason=1)).encode()),
]
N_TCP_ONLY = 3  # handshake


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TSHARK, REQUIRED
    path = Path(tmp_path_factory.mktemp("pcep")) / "pcep.pcap"
    write_pcap(str(path), conversation(MESSAGES))
    return path


def _tshark(pcap: Path, *args: str) -> str:
    return tshark.run(pcap, "-o", "tcp.check_checksum:TRUE", *args)


def _fields(pcap: Path, flt: str, *fields: str) -> list[list[str]]:
    args = ["-Y", flt, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    for f in fields:
        args += ["-e", f]
    return [line.split("|") for line in _tshark(pcap, *args).splitlines()]


def test_every_message_decoded_and_none_malformed(pcap: Path) -> None:
    rows = _fields(pcap, "pcep", "frame.number", "pcep.msg", "_ws.malformed", "frame.protocols")
    assert [int(r[1]) for r in rows] == [1, 1, 2, 2, 3, 4, 3, 4, 6, 5, 7]
    for r in rows:
        assert r[2] == "", f"frame {r[0]} is malformed"
        assert r[3] == "eth:ethertype:ip:tcp:pcep"
    assert _tshark(pcap, "-Y", "_ws.malformed") == ""


def test_only_expert_note_is_subobject_103(pcap: Path) -> None:
    rows = _fields(pcap, "_ws.expert", "frame.number", "_ws.expert.message", "_ws.expert.severity")
    messages = []
    for r in rows:
        frame = int(r[0])
        for msg, sev in zip(r[1].split(","), r[2].split(","), strict=True):
            if frame <= N_TCP_ONLY and "SYN" in msg:
                continue  # tshark's Chat-level note on the TCP handshake
            messages.append((frame, msg, sev))
    # the PCRep of Fig. 9 (frame 9) carries two QE subobjects, nothing else is flagged
    warning = "6291456"  # PI_WARN
    assert messages == [(9, "Non defined subobject (103)", warning)] * 2


def test_fig8_metrics(pcap: Path) -> None:
    (row,) = _fields(
        pcap,
        "pcep.msg == 3 && pcep.obj.rp.requested_id_number == 1",
        "pcep.obj.metric.type",
        "pcep.obj.metric.metric_value",
        "pcep.obj.end_point.source_ipv4_address",
        "pcep.obj.end_point.destination_ipv4_address",
        "pcep.obj.rp.requested_id_number",
        "pcep.obj.hdr.flags.p",
    )
    # tshark names both the 4-bit object type and the metric type "pcep.obj.metric.type"
    assert row[0].split(",") == ["1", "255", "1", "254", "1", "253", "1", "252"]
    assert [float(v) for v in row[1].split(",")] == [32.0, 2.0, 10.0, 1000.0]
    assert row[2:5] == ["10.1.1.1", "10.1.1.5", "0x00000001"]
    # RP, END-POINTS and the four QE METRIC objects all with the P flag (gmpls.qe default)
    assert row[5].split(",") == ["1"] * 6


def test_fig9_ero(pcap: Path) -> None:
    (row,) = _fields(
        pcap,
        "pcep.msg == 4 && pcep.obj.ero",
        "pcep.subobj",
        "pcep.subobj.unnumb_interfaceID.router_id",
        "pcep.subobj.unnumb_interfaceID.interface_id",
        "pcep.subobj.label_control.label",
        "pcep.subobj.label_control.c_type",
        "pcep.subobj.ipv4.ipv4",
        "pcep.subobj.ipv4.prefix_length",
        "pcep.non_defined_subobject",
        "pcep.object_length",
    )
    types = [int(t) for t in row[0].split(",")]
    # tshark lists the types of the subobjects it knows; the two 103s are flagged apart
    assert types == [4, 3, 4, 3, 4, 3, 4, 3, 1]
    assert row[7] == "1,1"
    assert row[1].split(",") == ["10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4"]
    assert [int(x, 0) for x in row[2].split(",")] == [1, 1, 3, 3]
    lam = ero.lambda_label(1)
    assert [int(x, 16) for x in row[3].split(",")] == [lam] * 4
    assert row[4].split(",") == ["2"] * 4
    assert row[5:7] == ["10.1.1.5", "32"]
    # ERO object length: 4 + 4 x 12 (unnumbered) + 4 x 8 (labels) + 8 (prefix) + 2 x 76 (QE)
    assert "244" in row[8].split(",")


def test_fig9_qe_subobjects_bytes(pcap: Path) -> None:
    """tshark does not know type 103, so check its bytes as tshark reports the payload."""
    (payload,) = _fields(pcap, "pcep.msg == 4 && pcep.obj.ero", "tcp.payload")
    raw = bytes.fromhex(payload[0].replace(":", ""))
    qe_sub = ero.QeSubobject.from_params(ex.PAPER_QE).encode()
    assert raw.count(qe_sub) == 2
    assert qe_sub[:2] == bytes([103, 76]) and qe_sub[4:68] == bytes(64)
    assert qe_sub[68:] == bytes([2, 10, 0, 32, 1, 0]) + (1000).to_bytes(2, "big")


def test_request_objects(pcap: Path) -> None:
    (row,) = _fields(
        pcap,
        "pcep.msg == 3 && pcep.obj.svec",
        "pcep.obj.svec.request_id_number",
        "pcep.bandwidth",
        "pcep.obj.lspa.setup_priority",
        "pcep.obj.metric.type",
        "pcep.metric.flags.c",
        "pcep.obj.rro",
        "pcep.obj.iro",
    )
    assert [int(x, 16) for x in row[0].split(",")] == [2, 3]
    assert [float(x) for x in row[1].split(",")] == [1.25e9, 1.0e9]
    assert row[2] == "3" and row[3] == "1,2" and row[4] == "1"
    assert row[5] and row[6]


def test_no_path_error_notification_close(pcap: Path) -> None:
    rows = _fields(
        pcap,
        "pcep.msg == 4 && pcep.obj.nopath",
        "pcep.no_path_tlvs.unk_dest",
        "pcep.no_path_tlvs.unk_src",
        "pcep.no.path.flags.c",
    )
    (row,) = rows
    assert row[0].split(",") == ["1", "0"] and row[1].split(",") == ["0", "1"]
    (err,) = _fields(pcap, "pcep.msg == 6", "pcep.error.type", "pcep.error.value")
    assert err == ["6", "3"]
    (ntf,) = _fields(pcap, "pcep.msg == 5", "pcep.notification.type", "pcep.obj.notification.value")
    assert ntf == ["2", "0x01"]  # overload (2), value 1
    (close,) = _fields(pcap, "pcep.msg == 7", "pcep.obj.close.reason")
    assert close == ["1"]


def _pairs_values(obj: Any, key: str, out: list[str]) -> list[str]:
    """Every value of ``key`` in document order (tshark's JSON repeats keys)."""
    if isinstance(obj, list):
        for item in obj:
            if isinstance(item, tuple):
                k, v = item
                if k == key:
                    out.append(v)
                _pairs_values(v, key, out)
            else:
                _pairs_values(item, key, out)
    return out


def test_json_view_of_the_pcrep(pcap: Path) -> None:
    """The Fig. 9 PCRep through ``-T json``: hops and lengths in document order."""
    frames = json.loads(_tshark(pcap, "-Y", "pcep.msg == 4", "-T", "json"), object_pairs_hook=list)
    first = frames[0]
    assert _pairs_values(first, "pcep.msg", []) == ["4"]
    assert _pairs_values(first, "pcep.object_length", []) == ["12", "244"]
    assert _pairs_values(first, "pcep.subobj.unnumb_interfaceID.router_id", []) == [
        "10.1.1.1",
        "10.1.1.2",
        "10.1.1.3",
        "10.1.1.4",
    ]
    assert _pairs_values(first, "pcep.subobj.ipv4.ipv4", []) == ["10.1.1.5"]
    assert len(_pairs_values(first, "pcep.non_defined_subobject", [])) == 2


# stateful PCEP (RFC 8231, 8281, 8408) -----------------------------------------------------

#: a PCC's Open as FRR's pathd sends it: stateful (U), PSTs 0 and 1 with SR-PCE-CAPABILITY
PCC_STATEFUL_OPEN = M.Open(
    O.OpenObject(
        30,
        120,
        1,
        tlvs=(
            T.StatefulCapabilityTlv(C.STATEFUL_FLAG_U),
            T.PathSetupTypeCapabilityTlv((0, 1), (T.SrPceCapabilityTlv(0, 10),)),
        ),
    )
)
STATEFUL: list[tuple[bool, bytes]] = [
    (True, PCC_STATEFUL_OPEN.encode()),
    (False, ex.stateful_open(2).encode()),
    (True, M.Keepalive().encode()),
    (False, M.Keepalive().encode()),
    (True, ex.paper_pcrpt(sync=True).encode()),
    (True, ex.end_of_sync().encode()),
    (False, ex.paper_pcupd().encode()),
    (True, ex.paper_pcrpt().encode()),
    (False, ex.paper_pcinitiate().encode()),
    (False, ex.paper_release().encode()),
    (False, M.PCErr((M.ErrorBlock((O.ErrorObject(19, 3),), (O.Srp(9),)),)).encode()),
    (False, M.PCErr.of((21, 1), rps=(O.RP(4, tlvs=(T.PathSetupTypeTlv(1),)),)).encode()),
]


@pytest.fixture(scope="module")
def stateful_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TSHARK, REQUIRED
    path = Path(tmp_path_factory.mktemp("pcep")) / "stateful.pcap"
    write_pcap(str(path), conversation(STATEFUL))
    return path


def test_stateful_messages_decoded_and_none_malformed(stateful_pcap: Path) -> None:
    rows = _fields(stateful_pcap, "pcep", "frame.number", "pcep.msg", "_ws.malformed")
    assert [int(r[1]) for r in rows] == [1, 1, 2, 2, 10, 10, 11, 10, 12, 12, 6, 6]
    assert all(r[2] == "" for r in rows)
    assert _tshark(stateful_pcap, "-Y", "_ws.malformed") == ""
    notes = _fields(stateful_pcap, "_ws.expert && pcep", "_ws.expert.message")
    # only our QE subobject (type 103) is flagged, twice in each ERO of the Fig. 9 path
    assert {m for r in notes for m in r[0].split(",")} == {"Non defined subobject (103)"}


def test_stateful_open_capabilities(stateful_pcap: Path) -> None:
    rows = _fields(
        stateful_pcap,
        "pcep.msg == 1",
        "pcep.stateful-pce-capability.lsp-update",
        "pcep.stateful-pce-capability.lsp-instantiation",
        "pcep.pst_capability.pst",
        "pcep.sub-tlv.sr-pce-capability.msd",
    )
    assert rows[0] == ["1", "0", "0,1", "10"]  # pathd's
    assert rows[1] == ["1", "1", "0", ""]  # ours: U and I, RSVP-TE only


def test_stateful_lsp_and_srp_fields(stateful_pcap: Path) -> None:
    (sync, eos) = _fields(
        stateful_pcap,
        "pcep.msg == 10 && (pcep.obj.lsp.flags.sync == 1 || pcep.obj.lsp.plsp-id == 0)",
        "pcep.obj.lsp.plsp-id",
        "pcep.obj.lsp.flags.sync",
        "pcep.obj.lsp.flags.operational",
        "pcep.tlv.symbolic-path-name",
    )
    assert sync[:3] == ["1", "1", "1"] and sync[3] == "qe-tn1-tn5"
    assert eos[:2] == ["0", "0"]
    (upd,) = _fields(
        stateful_pcap, "pcep.msg == 11", "pcep.obj.srp.id-number", "pcep.obj.lsp.plsp-id"
    )
    assert upd == ["1", "1"]
    inits = _fields(
        stateful_pcap,
        "pcep.msg == 12",
        "pcep.obj.srp.flags.remove",
        "pcep.obj.lsp.flags.create",
        "pcep.obj.end_point.destination_ipv4_address",
    )
    assert inits == [["0", "1", "10.1.1.5"], ["1", "0", ""]]
