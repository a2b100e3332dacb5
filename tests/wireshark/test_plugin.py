"""The Wireshark plugin (wireshark/qkdnet.lua) reads what our encoders write.

Captures are made from the project's own codecs: every ETSI 004, sync and IDQ3P message
type, the paper's RSVP Path, PCReq/PCRep and Router Information LSA; tshark loads the plugin
with ``-X lua_script:`` and the tests compare the fields it shows with the values encoded.
A second capture of broken frames must raise the plugin's expert infos, and never an error
of Lua itself.
"""

from __future__ import annotations

import dataclasses
import subprocess
import xml.etree.ElementTree as ET
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from compose import wireshark
from gmpls import ero, qe
from gmpls.ospf import examples as ospf_ex
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType
from gmpls.ospf.lsa import LSA
from gmpls.ospf.packet import LSUpdate, Packet
from gmpls.ospf.qkdlink import QkdLinkTlv, qkd_lsa_id
from gmpls.ospf.te import TeLSA, link_tlv, te_lsa_id
from gmpls.pcep import examples as pcep_ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as PO
from gmpls.pcep import tlv as PT
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p, kmstatus, sync
from gmpls.rsvp import examples as rsvp_ex
from gmpls.rsvp import objects as O
from gmpls.tlv import UnknownTlv, encode_tlvs
from pce.compute import NoPathReason
from tests.support.captures import qe_session_ids
from tests.support.pcap import ethernet_frame, ipv4_packet, udp_datagram, write_pcap
from tests.support.pcep_framing import conversation
from tests.support.tshark import REQUIRED, TSHARK

pytestmark = pytest.mark.interop

HANDLE = bytes(range(0x40, 0x80))
KEY = bytes(range(0xE0, 0x100))  # 32 bytes, only ever a test value
NODE, PROXY, PEER, DEVICE = "10.2.1.1", "10.2.1.11", "10.11.1.12", "10.11.2.2"
QOS = etsi.QoS(32, 1000, 2, 5000)

RELAY = (IPv4Address("10.1.1.1"), IPv4Address("10.1.1.3"), IPv4Address("10.1.1.5"))
ETSI_MESSAGES: list[etsi.Message] = [
    etsi.Open(1, IPv4Address("10.1.1.5"), QOS),
    etsi.Open(8, IPv4Address("10.1.1.5"), QOS, HANDLE, relay=RELAY),
    etsi.OpenReply(1, etsi.Status.SUCCESSFUL, HANDLE, QOS),
    etsi.ConnectNonblock(2, HANDLE),
    etsi.ConnectNonblockReply(2, etsi.Status.PEER_NOT_CONNECTED, HANDLE),
    etsi.ConnectBlocking(3, HANDLE, 2500),
    etsi.ConnectBlockingReply(3, etsi.Status.TIMEOUT, HANDLE),
    etsi.GetKey(4, HANDLE),
    etsi.GetKeyReply(4, etsi.Status.SUCCESSFUL, 7, KEY),
    etsi.GetKey(5, HANDLE),
    etsi.GetKeyReply(5, etsi.Status.INSUFFICIENT_KEY),
    etsi.Close(6, HANDLE),
    etsi.CloseReply(6, etsi.Status.NO_QKD_CONNECTION, HANDLE),
]
SYNC_MESSAGES: list[sync.SyncMessage] = [
    sync.Create(1, HANDLE, IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5"), 32),
    sync.CreateResp(1, HANDLE, sync.Result.OK),
    sync.Opened(2, HANDLE),
    sync.Bind(3, HANDLE, 0, 32, (0x1001, 0x1002, 0x1003)),
    sync.Alloc(4, HANDLE, 3),
    sync.AllocResp(4, HANDLE, sync.Result.INSUFFICIENT_KEY),
    sync.Close(5, HANDLE),
    sync.Ack(5, HANDLE, sync.Result.UNKNOWN_HANDLE),
    sync.Hello(),
]
IDQ_KEYS = (idq3p.Key(0xA1, KEY), idq3p.Key(0xA2, KEY[::-1]))
IDQ_MESSAGES: list[idq3p.AnyMessage] = [
    idq3p.GetNextKey(1, 32, 2),
    idq3p.Keys(1, idq3p.Status.OK, 32, IDQ_KEYS),
    idq3p.GetKeyById(2, 32, (0xA1, 0xA2)),
    idq3p.Keys(2, idq3p.Status.UNKNOWN_KEY_ID, 32),
    idq3p.StatusRequest(3, 32),
    idq3p.StatusReply(3, idq3p.Status.OK, 32, 10, 320, 1_000_000, 1 << 40, 99),
    idq3p.Error(4),
]
EPOCH_A, EPOCH_B = 0x1122334455667788, 0x99AABBCCDDEEFF00
KM_LINKS = (
    kmstatus.LinkStatus(IPv4Address("10.1.1.2"), "km1-km2", True, 2000, 5, 1 << 20, 256, 3),
    kmstatus.LinkStatus(IPv4Address("10.1.1.3"), "km1-km3", False, 0, 0, 1 << 20, 0, 0),
)
KM_MESSAGES: list[kmstatus.Message] = [kmstatus.LinksRequest(5), kmstatus.LinksReply(5, KM_LINKS)]


def _udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    seg = udp_datagram(src, dst, sport, dport, payload)
    return ethernet_frame(ipv4_packet(src, dst, 17, seg, ttl=64))


def _etsi_frames() -> list[bytes]:
    out = []
    for m in ETSI_MESSAGES:
        request = m.TYPE < 0x80
        src, dst = (NODE, PROXY) if request else (PROXY, NODE)
        sport, dport = (40001, etsi.PORT) if request else (etsi.PORT, 40001)
        out.append(_udp(src, dst, sport, dport, etsi.encode(m)))
    return out


def _sync_frames() -> list[bytes]:
    a = sync.SyncCodec(b"s" * 32, "etsiA", "etsiB", EPOCH_A)
    a.peer_epoch = EPOCH_B
    return [_udp(PROXY, PEER, sync.PORT, sync.PORT, a.seal(m)) for m in SYNC_MESSAGES]


def _idq_frames() -> list[bytes]:
    out = []
    for m in IDQ_MESSAGES:
        request = m.TYPE < 0x80
        src, dst = ("10.11.2.1", DEVICE) if request else (DEVICE, "10.11.2.1")
        sport, dport = (40002, idq3p.PORT) if request else (idq3p.PORT, 40002)
        out.append(_udp(src, dst, sport, dport, idq3p.encode(m)))
    return out


#: the second RI LSA is of a TE node that is not QE capable
RI_ROUTERS = {"10.1.1.1": True, "10.1.1.2": False}
NO_PATH = M.PCRep(
    (
        M.Response(
            PO.RP(3),
            no_path=PO.NoPath(
                tlvs=(
                    PT.NoPathVectorTlv(0),
                    PT.NoPathReasonTlv(NoPathReason.NO_COMMON_WAVELENGTH, "no common lambda"),
                )
            ),
        ),
    )
)
QKD_LINK = QkdLinkTlv(
    IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5"), 2000, 0x0102030405, 1 << 20, True
)
#: the wavelengths free on tn1's link to tn2 (docs/ospf-te.md's second example)
FREE_CHANNELS = (1, 2, 3, 5, 8)


def _km_frames() -> list[bytes]:
    out = []
    for m in KM_MESSAGES:
        request = m.TYPE < 0x80
        src, dst = (NODE, PROXY) if request else (PROXY, NODE)
        sport, dport = (40003, kmstatus.PORT) if request else (kmstatus.PORT, 40003)
        out.append(_udp(src, dst, sport, dport, kmstatus.encode(m)))
    return out


def _control_frames() -> list[bytes]:
    path = rsvp_ex.paper_path()
    frames = [ethernet_frame(ipv4_packet(rsvp_ex.TN[1], rsvp_ex.TN[2], 46, path.encode()))]
    lsas = tuple(ospf_ex.ri_lsa(IPv4Address(r), qe=q) for r, q in RI_ROUTERS.items())
    params = dataclasses.replace(ospf_ex.te_link_params(), channels=FREE_CHANNELS)
    te = LSA.build(
        LsType.OPAQUE_AREA, te_lsa_id(1), ospf_ex.TN1, INITIAL_SEQUENCE, TeLSA((link_tlv(params),))
    )
    qkd = LSA.build(
        LsType.OPAQUE_AREA, qkd_lsa_id(0), ospf_ex.TN1, INITIAL_SEQUENCE, TeLSA((QKD_LINK,))
    )
    lsu = Packet(ospf_ex.TN1, ospf_ex.AREA0, LSUpdate((*lsas, te, qkd)))
    frames.append(ethernet_frame(ipv4_packet("10.1.1.1", "224.0.0.5", 89, lsu.encode())))
    pcep = [
        (True, pcep_ex.paper_pcreq().encode()),
        (False, pcep_ex.paper_pcrep().encode()),
        (False, pcep_ex.relay_pcrep(2).encode()),
        (False, pcep_ex.relay_pcinitiate().encode()),
        (False, NO_PATH.encode()),
    ]
    return frames + conversation(pcep)


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TSHARK, REQUIRED
    path = Path(tmp_path_factory.mktemp("wireshark")) / "qkdnet.pcap"
    write_pcap(str(path), _etsi_frames() + _sync_frames() + _idq_frames() + _km_frames())
    return path


def tshark(pcap: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        wireshark.tshark_command(pcap, *args), capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    # a failing Lua dissector shows "Lua Error: ..." in the tree, or on stderr at load
    assert "Lua" not in r.stderr and "Lua Error" not in r.stdout, r.stderr + r.stdout[:2000]
    return r


def fields(pcap: Path, flt: str, *names: str, opts: tuple[str, ...] = ()) -> list[list[str]]:
    args = [*opts, "-Y", flt, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    for n in names:
        args += ["-e", n]
    return [line.split("|") for line in tshark(pcap, *args).stdout.splitlines()]


def shown(pcap: Path, flt: str, name: str) -> list[str]:
    """The text tshark shows for every field ``name`` in the frames of ``flt`` (PDML)."""
    root = ET.fromstring(tshark(pcap, "-Y", flt, "-T", "pdml").stdout)
    return [f.get("showname", "") for f in root.iter("field") if f.get("name") == name]


def test_generated_block_is_up_to_date() -> None:
    assert wireshark.main(["--check"]) == 0


def test_nothing_malformed_and_no_expert_info(pcap: Path) -> None:
    rows = fields(pcap, "", "frame.number", "frame.protocols", "_ws.malformed", "_ws.expert")
    n = len(ETSI_MESSAGES) + len(SYNC_MESSAGES) + len(IDQ_MESSAGES) + len(KM_MESSAGES)
    assert len(rows) == n
    ours = ("qkdnet.etsi004", "qkdnet.sync", "qkdnet.idq3p", "qkdnet.kmstatus")
    for number, protocols, malformed, experts in rows:
        assert malformed == "" and experts == "", f"frame {number}: {malformed} {experts}"
        assert protocols.split(":")[-1] in ours


def test_etsi004_every_message_type(pcap: Path) -> None:
    rows = fields(
        pcap,
        "qkdnet.etsi004",
        "qkdnet.etsi004.type",
        "qkdnet.etsi004.request_id",
        "qkdnet.etsi004.key_handle",
        "qkdnet.etsi004.status",
    )
    assert [int(r[0], 16) for r in rows] == [int(m.TYPE) for m in ETSI_MESSAGES]
    assert [int(r[1], 16) for r in rows] == [m.request_id for m in ETSI_MESSAGES]
    for r, m in zip(rows, ETSI_MESSAGES, strict=True):
        handle = getattr(m, "key_handle", None)
        assert r[2] == (handle.hex() if handle else ""), m
        status = getattr(m, "status", None)
        assert r[3] == ("" if status is None else str(int(status))), m


def test_etsi004_status_names(pcap: Path) -> None:
    names = shown(pcap, "qkdnet.etsi004", "qkdnet.etsi004.status")
    assert names == [
        "Status: SUCCESSFUL (0)",
        "Status: PEER_NOT_CONNECTED (1)",
        "Status: TIMEOUT (6)",
        "Status: SUCCESSFUL (0)",
        "Status: INSUFFICIENT_KEY (2)",
        "Status: NO_QKD_CONNECTION (4)",
    ]
    info = fields(pcap, "qkdnet.etsi004.type == 0x84", "_ws.col.Info")
    assert info == [
        ["GET_KEY_REPLY status=SUCCESSFUL index=7 request_id=4"],
        ["GET_KEY_REPLY status=INSUFFICIENT_KEY index=0 request_id=5"],
    ]


def test_etsi004_open_qos_and_key(pcap: Path) -> None:
    (row,) = fields(
        pcap,
        "qkdnet.etsi004.type == 1 && !qkdnet.etsi004.relay_count",
        "qkdnet.etsi004.destination",
        "qkdnet.etsi004.qos.requested_length",
        "qkdnet.etsi004.qos.max_bps",
        "qkdnet.etsi004.qos.priority",
        "qkdnet.etsi004.qos.timeout_ms",
        "qkdnet.etsi004.key_handle",
    )
    assert row == ["10.1.1.5", "32", "1000", "2", "5000", "00" * 64]
    (row,) = fields(
        pcap,
        "qkdnet.etsi004.status == 0 && qkdnet.etsi004.type == 0x84",
        "qkdnet.etsi004.index",
        "qkdnet.etsi004.key_length",
        "qkdnet.etsi004.key",
    )
    assert row == ["7", "32", KEY.hex()]
    assert shown(pcap, "qkdnet.etsi004.key", "qkdnet.etsi004.key")[0].startswith(
        "Key (secret: ETSI 004 carries it in clear"
    )


def test_requests_and_replies_are_paired(pcap: Path) -> None:
    """Each reply names its request's frame; read through twice (-2), each request its
    reply's. ETSI 004 frames are 1.., one request then its reply (the relay OPEN, frame 2,
    has none)."""
    rows = fields(
        pcap,
        "qkdnet.etsi004",
        "frame.number",
        "qkdnet.etsi004.response_in",
        "qkdnet.etsi004.request_in",
        opts=("-2",),
    )
    assert rows[:3] == [["1", "3", ""], ["2", "", ""], ["3", "", "1"]]
    for number, response_in, request_in in rows[3:]:
        n = int(number)
        assert (response_in, request_in) == ((str(n + 1), "") if n % 2 == 0 else ("", str(n - 1)))
    rows = fields(
        pcap, "qkdnet.idq3p", "qkdnet.idq3p.request_id", "qkdnet.idq3p.request_in", opts=("-2",)
    )
    replies = [r for r in rows if r[1]]
    assert len(replies) == 3  # KEYS, KEYS, STATUS_REPLY; ERROR answered no request here


def test_etsi004_open_relay_path(pcap: Path) -> None:
    rows = fields(
        pcap,
        "qkdnet.etsi004.type == 1",
        "qkdnet.etsi004.request_id",
        "qkdnet.etsi004.relay_count",
        "qkdnet.etsi004.relay_site",
    )
    assert rows == [["0x00000001", "", ""], ["0x00000008", "3", ",".join(map(str, RELAY))]]


def test_kmstatus_links(pcap: Path) -> None:
    rows = fields(
        pcap,
        "qkdnet.kmstatus",
        "qkdnet.kmstatus.type",
        "qkdnet.kmstatus.request_id",
        "qkdnet.kmstatus.count",
        "qkdnet.kmstatus.far_site",
        "qkdnet.kmstatus.name",
        "qkdnet.kmstatus.up",
        "qkdnet.kmstatus.rate_bps",
        "qkdnet.kmstatus.stock_bits",
        "qkdnet.kmstatus.buffer_bits",
        "qkdnet.kmstatus.used_bits",
        "qkdnet.kmstatus.services",
    )
    assert rows[0] == ["0x01", "0x00000005"] + [""] * 9
    values = [
        [str(x.far_site) for x in KM_LINKS],
        [x.name for x in KM_LINKS],
        [str(int(x.up)) for x in KM_LINKS],
        *(
            [str(getattr(x, f)) for x in KM_LINKS]
            for f in ("rate_bps", "stock_bits", "buffer_bits", "used_bits", "services")
        ),
    ]
    assert rows[1] == ["0x81", "0x00000005", "2", *(",".join(v) for v in values)]
    info = fields(pcap, "qkdnet.kmstatus", "_ws.col.Info")
    assert info == [["LINKS_REQUEST request_id=5"], ["LINKS_REPLY count=2 request_id=5"]]


def test_sync_every_message_type_mac_as_bytes(pcap: Path) -> None:
    rows = fields(
        pcap,
        "qkdnet.sync",
        "qkdnet.sync.type",
        "qkdnet.sync.sender_epoch",
        "qkdnet.sync.receiver_epoch",
        "qkdnet.sync.counter",
        "qkdnet.sync.key_handle",
        "qkdnet.sync.result",
        "qkdnet.sync.key_id",
        "qkdnet.sync.hmac",
        "udp.payload",
    )
    assert [int(r[0], 16) for r in rows] == [int(m.TYPE) for m in SYNC_MESSAGES]
    for i, (r, m) in enumerate(zip(rows, SYNC_MESSAGES, strict=True)):
        assert int(r[1], 16) == EPOCH_A and int(r[2], 16) == EPOCH_B
        assert int(r[3]) == i + 1
        assert r[4] == (HANDLE.hex() if not isinstance(m, sync.Hello) else "")
        result = getattr(m, "result", None)
        assert r[5] == ("" if result is None else str(int(result)))
        ids = getattr(m, "key_ids", ())
        assert [int(x, 16) for x in r[6].split(",") if x] == list(ids)
        assert r[7] == r[8].replace(":", "")[-64:]  # the last 32 bytes, shown, not checked
    names = shown(pcap, "qkdnet.sync.type == 2", "qkdnet.sync.result")
    assert names == ["Result: OK (0)"]


def test_idq3p_every_message_type_keys_marked(pcap: Path) -> None:
    rows = fields(
        pcap,
        "qkdnet.idq3p",
        "qkdnet.idq3p.type",
        "qkdnet.idq3p.request_id",
        "qkdnet.idq3p.status",
        "qkdnet.idq3p.key_id",
        "qkdnet.idq3p.key",
    )
    assert [int(r[0], 16) for r in rows] == [int(m.TYPE) for m in IDQ_MESSAGES]
    assert [int(r[1], 16) for r in rows] == [m.request_id for m in IDQ_MESSAGES]
    keys = rows[1]
    assert [int(x, 16) for x in keys[3].split(",")] == [0xA1, 0xA2]
    assert keys[4].split(",") == [k.material.hex() for k in IDQ_KEYS]
    assert [int(x, 16) for x in rows[2][3].split(",")] == [0xA1, 0xA2]
    assert rows[3][2] == str(int(idq3p.Status.UNKNOWN_KEY_ID))
    (status,) = fields(
        pcap,
        "qkdnet.idq3p.type == 0x83",
        "qkdnet.idq3p.keys_available",
        "qkdnet.idq3p.bits_available",
        "qkdnet.idq3p.rate_bps",
        "qkdnet.idq3p.buffer_bits",
        "qkdnet.idq3p.delivered_keys",
    )
    assert status == ["10", "320", "1000000", str(1 << 40), "99"]
    label = shown(pcap, "qkdnet.idq3p.type == 0x81", "qkdnet.idq3p.key")[0]
    assert label.startswith("Key material (secret: the emulator's south link")


# --- the control plane: RSVP, PCEP, OSPF ----------------------------------------------------


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TSHARK, REQUIRED
    path = Path(tmp_path_factory.mktemp("wireshark")) / "control.pcap"
    write_pcap(str(path), _control_frames())
    return path


def test_control_plane_nothing_malformed_no_expert_of_ours(control: Path) -> None:
    rows = fields(control, "", "frame.number", "_ws.malformed", "_ws.expert.message")
    assert len(rows) == 2 + 3 + 5
    for number, malformed, experts in rows:
        assert malformed == "", number
        # tshark's own notes only (the TCP handshake, "Non defined subobject (103)")
        assert "qkdnet" not in experts and "QE" not in experts, (number, experts)


def test_qe_subobject_in_rsvp_path(control: Path) -> None:
    rows = fields(
        control,
        "rsvp && qkdnet.ero",
        "qkdnet.ero.object",
        "qkdnet.ero.hop",
        "qkdnet.ero.type",
        "qkdnet.ero.key_handle",
        "qkdnet.ero.enc_layer",
        "qkdnet.ero.algorithm",
        "qkdnet.ero.key_length",
        "qkdnet.ero.refresh_type",
        "qkdnet.ero.refresh_value",
        "qkdnet.ero.key_handle_set",
    )
    msg = rsvp_ex.paper_path()
    (obj, hop, typ, handle, *params, filled) = rows[0]
    assert len(rows) == 1 and obj == "RSVP EXPLICIT_ROUTE" and hop == "10.1.1.5"
    assert typ == str(qe.CODEPOINTS.ero_subobject)
    assert handle == qe_session_ids(msg)[IPv4Address("10.1.1.5")].hex() and filled == "1"
    (s,) = [s for s in msg.get(O.ExplicitRoute).subobjects if isinstance(s, ero.QeSubobject)]
    assert params == [
        str(v) for v in (s.enc_layer, s.algorithm, s.key_length, s.refresh_type, s.refresh_value)
    ]
    assert shown(control, "rsvp && qkdnet.ero", "qkdnet.ero.algorithm") == [
        "Algorithm: AES_256_GCM (10)"
    ]
    assert shown(control, "rsvp && qkdnet.ero", "qkdnet.ero.enc_layer") == [
        "Encryption layer: ETHERNET (2)"
    ]


def test_qe_subobjects_in_pcep_ero(control: Path) -> None:
    rows = fields(
        control,
        "pcep.msg == 4 && !qkdnet.relay && !qkdnet.nopath",
        "qkdnet.ero.object",
        "qkdnet.ero.hop",
        "qkdnet.ero.key_handle_set",
        "qkdnet.ero.key_length",
        "qkdnet.ero.refresh_value",
    )
    p = pcep_ex.PAPER_QE
    assert rows == [
        [
            "PCEP ERO,PCEP ERO",
            "10.1.1.1,10.1.1.5",
            "0,0",
            f"{p.key_length},{p.key_length}",
            f"{p.refresh_value},{p.refresh_value}",
        ]
    ]


def test_relay_path_tlv_in_rp_and_lsp(control: Path) -> None:
    rows = fields(control, "qkdnet.relay", "pcep.msg", "qkdnet.relay.object", "qkdnet.relay.site")
    sites = ",".join(map(str, pcep_ex.RELAY_SITES))
    assert rows == [["4", "PCEP RP", sites], ["12", "PCEP LSP", sites]]


def test_no_path_reason_tlv(control: Path) -> None:
    rows = fields(control, "qkdnet.nopath", "qkdnet.nopath.code", "qkdnet.nopath.text")
    assert rows == [[str(int(NoPathReason.NO_COMMON_WAVELENGTH)), "no common lambda"]]
    assert shown(control, "qkdnet.nopath", "qkdnet.nopath.code") == [
        "Reason: NO_COMMON_WAVELENGTH (6)"
    ]


def test_qe_metric_names_and_values(control: Path) -> None:
    (row,) = fields(control, "pcep.msg == 3", "qkdnet.metric.type", "qkdnet.metric.value")
    p = pcep_ex.PAPER_QE
    cp = qe.CODEPOINTS
    types = [int(t) for t in row[0].split(",")]
    assert types == [
        cp.metric_key_length,
        cp.metric_enc_layer,
        cp.metric_algorithm,
        cp.metric_refresh_value,
    ]
    assert [float(v) for v in row[1].split(",")] == [
        p.key_length,
        p.enc_layer,
        p.algorithm,
        p.refresh_value,
    ]
    assert shown(control, "pcep.msg == 3", "qkdnet.metric.type") == [
        "Metric type: QE key length (255)",
        "Metric type: QE encryption layer (254)",
        "Metric type: QE encryption algorithm (253)",
        "Metric type: QE key refresh value (252)",
    ]
    assert shown(control, "pcep.msg == 3", "qkdnet.metric.meaning") == [
        "Meaning: ETHERNET",
        "Meaning: AES_256_GCM",
    ]


def test_ri_qe_capability_bit(control: Path) -> None:
    rows = fields(control, "ospf", "qkdnet.ri.router", "qkdnet.ri.qe", "qkdnet.ri.te")
    routers = rows[0][0].split(",")
    assert routers == list(RI_ROUTERS)
    assert rows[0][1].split(",") == ["1" if q else "0" for q in RI_ROUTERS.values()]
    assert rows[0][2].split(",") == ["1", "1"]


def test_available_labels_sub_tlv(control: Path) -> None:
    rows = fields(
        control,
        "ospf",
        "qkdnet.labels.router",
        "qkdnet.labels.link_id",
        "qkdnet.labels.action",
        "qkdnet.labels.base",
        "qkdnet.labels.channel",
    )
    assert rows == [
        ["10.1.1.1", "10.1.1.2", "4", hex(ero.lambda_label(1)), ",".join(map(str, FREE_CHANNELS))]
    ]
    assert shown(control, "ospf", "qkdnet.labels.action") == [
        "0100 .... .... .... = Action: BITMAP (4)"
    ]


def test_qkd_link_tlv(control: Path) -> None:
    names = ["local_site", "far_site", "rate_bps", "stock_bits", "buffer_bits", "up"]
    rows = fields(control, "ospf", "qkdnet.qkdlink.router", *(f"qkdnet.qkdlink.{n}" for n in names))
    q = QKD_LINK
    want = [q.local_site, q.far_site, q.rate_bps, q.stock_bits, q.buffer_bits, int(q.up)]
    assert rows == [["10.1.1.1", *map(str, want)]]


# --- malformed input: the plugin's expert infos ---------------------------------------------


def _bad_path() -> bytes:
    """The paper's Path with its QE subobject cut to 8 bytes."""
    msg = rsvp_ex.paper_path()
    route = msg.get(O.ExplicitRoute)
    assert route is not None
    subs = tuple(
        ero.UnknownSubobject(qe.CODEPOINTS.ero_subobject, bytes(6))
        if isinstance(s, ero.QeSubobject)
        else s
        for s in route.subobjects
    )
    objs = tuple(O.ExplicitRoute(subs) if o is route else o for o in msg.objects)
    return dataclasses.replace(msg, objects=objs).encode()


def _etsi(payload: bytes) -> bytes:
    return _udp(NODE, PROXY, 40001, etsi.PORT, payload)


def _sync(payload: bytes) -> bytes:
    return _udp(PROXY, PEER, sync.PORT, sync.PORT, payload)


def _idq(payload: bytes) -> bytes:
    return _udp(DEVICE, "10.11.2.1", idq3p.PORT, 40002, payload)


def _sealed(m: sync.SyncMessage) -> bytes:
    return sync.SyncCodec(b"s" * 32, "etsiA", "etsiB", EPOCH_A).seal(m)


def _bad_qkd_link() -> bytes:
    """An LS Update whose QKD link TLV lacks its link state sub-TLV."""
    subs = encode_tlvs(QKD_LINK.subtlvs()[:-1])
    body = TeLSA((UnknownTlv(qe.CODEPOINTS.te_qkd_link, subs),))
    lsa = LSA.build(LsType.OPAQUE_AREA, qkd_lsa_id(0), ospf_ex.TN1, INITIAL_SEQUENCE, body)
    lsu = Packet(ospf_ex.TN1, ospf_ex.AREA0, LSUpdate((lsa,)))
    return ethernet_frame(ipv4_packet("10.1.1.1", "224.0.0.5", 89, lsu.encode()))


def _bad_relay() -> bytes:
    """A PCRep whose relay path TLV names no site."""
    rp = PO.RP(7, tlvs=(UnknownTlv(qe.CODEPOINTS.pcep_relay_tlv, b""),))
    rep = M.PCRep((M.Response(rp),)).encode()
    return conversation([(False, rep)])[-1]


def _bad_metric() -> bytes:
    """A PCReq asking for encryption layer 9, which the registry does not have."""
    rp, ends = PO.RP(5), PO.EndPointsIpv4(IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5"))
    metric = PO.Metric(qe.CODEPOINTS.metric_enc_layer, 9.0, p=True)
    req = M.PCReq((M.Request(rp, ends, metrics=(metric,)),)).encode()
    return conversation([(True, req)])[-1]


GET_KEY = etsi.encode(etsi.GetKey(9, HANDLE))
CLOSE_REPLY = etsi.encode(etsi.CloseReply(9, etsi.Status.SUCCESSFUL, HANDLE))
BIND = _sealed(sync.Bind(3, HANDLE, 0, 32, (1, 2)))
KEYS = idq3p.encode(idq3p.Keys(1, idq3p.Status.OK, 32, IDQ_KEYS))
#: (frame, the plugin's expert abbreviation it must raise)
BROKEN: list[tuple[bytes, str]] = [
    (_etsi(GET_KEY[:5]), "qkdnet.etsi004.short"),
    (_etsi(GET_KEY[:-1]), "qkdnet.etsi004.short"),
    (_etsi(CLOSE_REPLY + b"\0"), "qkdnet.etsi004.bad_length"),
    (_etsi(b"\x01\x10\0\0\0\0\0\x09"), "qkdnet.etsi004.unknown"),  # type 0x10
    (_etsi(CLOSE_REPLY[:11] + b"\x07" + CLOSE_REPLY[12:]), "qkdnet.etsi004.unknown"),  # status 7
    (_etsi(b"\x02" + GET_KEY[1:]), "qkdnet.etsi004.unknown"),  # version 2
    (_sync(BIND[:40]), "qkdnet.sync.short"),
    (_sync(b"XS" + BIND[2:]), "qkdnet.sync.unknown"),
    (_sync(BIND[:3] + b"\x20" + BIND[4:]), "qkdnet.sync.unknown"),  # type 0x20
    (_sync(BIND[:-34] + BIND[-32:]), "qkdnet.sync.bad_length"),  # a key ID cut short
    (_idq(KEYS[:6]), "qkdnet.idq3p.short"),
    (_idq(KEYS[:-1]), "qkdnet.idq3p.bad_length"),
    (_idq(KEYS[:3] + b"\x42" + KEYS[4:]), "qkdnet.idq3p.unknown"),  # type 0x42
    (
        ethernet_frame(ipv4_packet(rsvp_ex.TN[1], rsvp_ex.TN[2], 46, _bad_path())),
        "qkdnet.expert.bad_length",
    ),
    (_bad_qkd_link(), "qkdnet.expert.bad_length"),
    (_bad_relay(), "qkdnet.expert.bad_length"),
    (_bad_metric(), "qkdnet.expert.unknown"),
]


def test_malformed_input_raises_the_plugins_expert_info(tmp_path: Path) -> None:
    assert TSHARK, REQUIRED
    path = tmp_path / "broken.pcap"
    write_pcap(str(path), [f for f, _ in BROKEN])
    abbrevs = sorted({a for _, a in BROKEN})
    rows = fields(path, "", "_ws.expert.message", "_ws.expert.severity", *abbrevs)
    assert len(rows) == len(BROKEN)
    for i, (row, (_, want)) in enumerate(zip(rows, BROKEN, strict=True)):
        raised = [a for a, v in zip(abbrevs, row[2:], strict=True) if v]
        assert want in raised, (i + 1, row)
        assert "Lua Error" not in row[0], (i + 1, row[0])


def test_a_moved_subobject_type_follows_the_preference(tmp_path: Path) -> None:
    """A network that moved the QE subobject (``qe.configure(ero_subobject=104)``) is read
    with ``-o qkdnet.ero_subobject:104``."""
    assert TSHARK, REQUIRED
    old = qe.CODEPOINTS
    try:
        qe.configure(ero_subobject=104)
        data = rsvp_ex.paper_path().encode()
    finally:
        qe.configure(**dataclasses.asdict(old))
    path = tmp_path / "moved.pcap"
    write_pcap(str(path), [ethernet_frame(ipv4_packet(rsvp_ex.TN[1], rsvp_ex.TN[2], 46, data))])
    assert fields(path, "rsvp", "qkdnet.ero.hop") == [[""]]
    pref = ("-o", "qkdnet.ero_subobject:104")
    assert fields(path, "rsvp", "qkdnet.ero.hop", "qkdnet.ero.type", opts=pref) == [
        ["10.1.1.5", "104"]
    ]


def test_sync_relay_messages(tmp_path: Path) -> None:
    """The key managers' relay messages (gmpls.qkd.sync RELAY_*), where the codec has them:
    decoded once the generated block is rewritten from it."""
    codec: Any = sync
    if not hasattr(codec, "RelayOpen"):
        pytest.skip("this sync codec has no relay messages")
    assert TSHARK, REQUIRED
    path_sites = (IPv4Address("10.1.1.1"), IPv4Address("10.1.1.3"), IPv4Address("10.1.1.5"))
    relay = bytes(range(64))
    pad = bytes(range(0xA0, 0xC0))  # a test value for a one-time-padded key
    msgs = [
        codec.RelayOpen(1, relay, HANDLE, path_sites[0], path_sites[-1], 32, path_sites),
        codec.RelayResp(1, relay),
        codec.RelayKey(2, relay, 0, pad),
        codec.RelayKey(3, relay, 1),
        codec.RelayAck(2, relay),
        codec.RelayClose(4, relay),
        codec.RelayOpened(5, relay),
    ]
    pcap = tmp_path / "relay.pcap"
    write_pcap(str(pcap), [_udp(PROXY, PEER, sync.PORT, sync.PORT, _sealed(m)) for m in msgs])
    rows = fields(
        pcap,
        "qkdnet.sync",
        "qkdnet.sync.type",
        "qkdnet.sync.relay_handle",
        "qkdnet.sync.path",
        "qkdnet.sync.payload_length",
        "_ws.expert",
    )
    assert [int(r[0], 16) for r in rows] == [int(m.TYPE) for m in msgs]
    assert all(r[1] == relay.hex() and r[4] == "" for r in rows)
    assert rows[0][2] == ",".join(map(str, path_sites))
    assert rows[2][3] == "32" and rows[3][3] == "0"
    # the one-time-padded key is marked, never shown
    text = tshark(pcap, "-V").stdout
    assert "bytes not shown" in text and pad.hex() not in text.replace(" ", "")


def test_a_pcep_message_split_over_two_segments(tmp_path: Path) -> None:
    """The PCRep's QE subobjects are found in the message tshark reassembles."""
    assert TSHARK, REQUIRED
    rep = pcep_ex.paper_pcrep().encode()
    pcap = tmp_path / "split.pcap"
    write_pcap(str(pcap), conversation([(False, rep[:100]), (False, rep[100:])]))
    rows = fields(pcap, "qkdnet", "frame.number", "pcep.msg", "qkdnet.ero.hop")
    assert rows == [["5", "4", "10.1.1.1,10.1.1.5"]]
