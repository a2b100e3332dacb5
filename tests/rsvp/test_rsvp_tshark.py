"""tshark, the independent decoder, reads our RSVP-TE messages as we meant them.

The paper's Path tn1 → tn2 (Fig. 9 ERO minus tn1's own subobjects, tn5's QE subobject
carrying a filled session ID, generalized label request, IF_ID RSVP_HOP,
SESSION_ATTRIBUTE, RECORD_ROUTE) and the Resv (STYLE, FLOWSPEC, FILTER_SPEC, generalized
LABEL), plus one of every other message type, are framed in Ethernet/IPv4 protocol 46
hop by hop to the neighbour's control address and decoded with ``tshark -T json -x``.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from gmpls import ero, qe
from gmpls.checksum import inet_checksum
from gmpls.rsvp import examples as ex
from gmpls.rsvp import objects as O
from gmpls.rsvp.message import Message
from tests.support import tshark
from tests.support.pcap import ethernet_frame, ipv4_packet, write_pcap
from tests.support.tshark import REQUIRED, TSHARK, collect

pytestmark = pytest.mark.interop

NAMES = list(ex.all_examples())
#: (source, destination) control addresses of each example on the wire
ADDRESSES: dict[str, tuple[IPv4Address, IPv4Address]] = {
    "path": (ex.TN[1], ex.TN[2]),
    "resv": (ex.TN[2], ex.TN[1]),
    "path_err": (ex.TN[3], ex.TN[2]),
    "resv_err": (ex.TN[1], ex.TN[2]),
    "path_tear": (ex.TN[1], ex.TN[2]),
    "resv_tear": (ex.TN[2], ex.TN[1]),
    "resv_conf": (ex.TN[1], ex.TN[2]),
    "hello": (ex.TN[1], ex.TN[2]),
    "notify": (ex.TN[3], ex.TN[1]),
    "ack": (ex.TN[2], ex.TN[1]),
    "srefresh": (ex.TN[1], ex.TN[2]),
    "bundle": (ex.TN[2], ex.TN[1]),
}


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TSHARK, REQUIRED
    pcap = Path(tmp_path_factory.mktemp("rsvp")) / "rsvp.pcap"
    frames = []
    for name, m in ex.all_examples().items():
        src, dst = ADDRESSES[name]
        frames.append(ethernet_frame(ipv4_packet(src, dst, 46, m.encode(), ttl=m.send_ttl)))
    write_pcap(str(pcap), frames)
    return pcap


@pytest.fixture(scope="module")
def decoded(pcap: Path) -> dict[str, Any]:
    decoded = tshark.layers(pcap, "-x")
    assert len(decoded) == len(NAMES)
    return dict(zip(NAMES, decoded, strict=True))


def _f(layers: Any, key: str) -> list[str]:
    return [v for v in collect(layers, key) if isinstance(v, str)]


def test_no_malformed_frame_or_expert_info(decoded: dict[str, Any]) -> None:
    for name, layers in decoded.items():
        text = json.dumps(layers)
        assert "_ws.malformed" not in text and "Malformed" not in text, name
        experts = collect(layers, "_ws.expert")
        if name == "hello":
            # RFC 3209 §5: Hellos go with TTL 1; tshark's IPv4 dissector notes that
            assert _f(experts, "_ws.expert.message") == ['"Time To Live" only 1']
        else:
            assert experts == [], name
        assert _f(layers, "frame.protocols") == ["eth:ethertype:ip:rsvp"]
        assert _f(layers, "ip.proto") == ["46"]


def _types(m: Message) -> list[str]:
    """The message types tshark shows for ``m``: a Bundle's, then its sub-messages'."""
    return [str(m.msg_type)] + [str(p.msg_type) for p in m.parts]


def test_checksums_correct(decoded: dict[str, Any], pcap: Path) -> None:
    text = tshark.run(pcap, "-V", "-O", "rsvp")
    headers = sum(len(_types(m)) for m in ex.all_examples().values())
    assert text.count("Message Checksum:") == headers
    # tshark 4.0 checks the checksum of every message but a Bundle's own header (we check
    # that one: the whole Bundle sums to zero)
    assert text.count("[correct]") == headers - 1
    assert inet_checksum(ex.bundle().encode()) == 0


def test_message_types(decoded: dict[str, Any]) -> None:
    for name, layers in decoded.items():
        assert _f(layers, "rsvp.msg") == _types(ex.all_examples()[name]), name


def test_path_session_sender_and_hop(decoded: dict[str, Any]) -> None:
    p = decoded["path"]
    assert _f(p, "rsvp.session.ip") == ["10.1.1.5"]
    assert _f(p, "rsvp.session.tunnel_id") == ["1"]
    assert _f(p, "rsvp.session.ext_tunnel_id") == [str(int(ex.TN[1]))]
    assert _f(p, "rsvp.sender.ip") == ["10.1.1.1"]
    assert _f(p, "rsvp.sender.lsp_id") == ["1"]
    assert _f(p, "rsvp.hop.neighbor_address_ipv4") == ["10.1.1.1"]
    assert _f(p, "rsvp.ifid_tlv.ipv4_address") == ["10.1.1.1"]
    assert _f(p, "rsvp.ifid_tlv.interface_id") == ["1"]
    assert _f(p, "rsvp.label_request.lsp_encoding_type") == ["8"]  # lambda
    assert _f(p, "rsvp.label_request.switching_type") == ["150"]  # LSC
    assert _f(p, "rsvp.label_request.g_pid") == ["0x0021"]  # 33 Ethernet
    assert _f(p, "rsvp.session_attribute.name") == ["qe-tn1-tn5"]
    assert _f(p, "rsvp.tspec.token_bucket_rate") == ["1.25e+09"]


def test_path_ero_is_fig9_minus_tn1(decoded: dict[str, Any]) -> None:
    p = decoded["path"]
    route = collect(p, "rsvp.explicit_route")
    assert route, "no EXPLICIT_ROUTE decoded"
    ero_tree = route[0]
    types = _f(ero_tree, "rsvp.type")
    assert types == ["4", "3", "4", "3", "4", "3", "1", "103"]
    assert _f(ero_tree, "rsvp.ero_rro_subobjects.router_id") == ["10.1.1.2", "10.1.1.3", "10.1.1.4"]
    assert _f(ero_tree, "rsvp.ero_rro_subobjects.interface_id") == ["1", "3", "3"]
    assert _f(ero_tree, "rsvp.ero_rro_subobjects.label") == [str(ex.LAMBDA)] * 3
    assert _f(ero_tree, "rsvp.ero_rro_subobjects.ipv4_hop") == ["10.1.1.5"]
    assert _f(ero_tree, "rsvp.ero_rro_subobjects.prefix_length") == ["32"]
    assert "Unknown subobject: 103" in json.dumps(ero_tree)
    # tn1's QE subobject is gone; tn5's carries the filled session ID: read its bytes at
    # the offset tshark gives for the subobject's type octet
    type_raws = [v for v in collect(ero_tree, "rsvp.type_raw") if isinstance(v, list)]
    qe_type = [v for v in type_raws if v[0] == "67"]
    assert len(qe_type) == 1
    offset = qe_type[0][1]
    frame = bytes.fromhex(collect(p, "frame_raw")[0][0])
    sub = frame[offset : offset + 76]
    assert sub[0] == 103 and sub[1] == 76
    assert sub[4 : 4 + qe.SESSION_ID_LEN] == ex.SESSION_ID
    assert sub[4 + qe.SESSION_ID_LEN :] == bytes([2, 10, 0, 32, 1, 0, 0x03, 0xE8])


def test_path_label_set_and_record_route(decoded: dict[str, Any]) -> None:
    p = decoded["path"]
    assert _f(p, "rsvp.label_set.action") == ["0"]
    assert _f(p, "rsvp.label_set.subchannel") == [str(ex.LAMBDA)]
    rro = collect(p, "rsvp.record_route")[0]
    assert _f(rro, "rsvp.ero_rro_subobjects.router_id") == ["10.1.1.1"]


def test_resv_style_flowspec_filter_label(decoded: dict[str, Any]) -> None:
    r = decoded["resv"]
    assert _f(r, "rsvp.style.style") == ["0x000012"]  # SE
    assert _f(r, "rsvp.flowspec.service_header") == ["5"]  # controlled load
    assert _f(r, "rsvp.flowspec.token_bucket_rate") == ["1.25e+09"]
    assert _f(collect(r, "rsvp.filter"), "rsvp.sender.ip") == ["10.1.1.1"]
    assert _f(r, "rsvp.label.generalized_label") == [str(ex.LAMBDA)]
    assert ero.lambda_channel(ex.LAMBDA) == 1
    assert _f(r, "rsvp.hop.neighbor_address_ipv4") == ["10.1.1.2"]
    rro = collect(r, "rsvp.record_route")[0]
    assert _f(rro, "rsvp.ero_rro_subobjects.router_id") == [f"10.1.1.{i}" for i in (2, 3, 4, 5)]
    assert _f(rro, "rsvp.rro.flags.global_label") == ["0"] * 4  # per-link lambdas


def test_errors_hello_notify(decoded: dict[str, Any]) -> None:
    pe = decoded["path_err"]
    assert _f(pe, "rsvp.error.error_code") == ["24"]
    assert _f(pe, "rsvp.error.error_node_ipv4") == ["10.1.1.3"]
    re_ = decoded["resv_err"]
    assert _f(re_, "rsvp.error.error_code") == ["24"]
    h = decoded["hello"]
    assert _f(h, "rsvp.hello.source_instance") == ["0x00001234"]
    assert _f(h, "rsvp.hello.destination_instance") == ["0x00005678"]
    n = decoded["notify"]
    assert _f(n, "rsvp.admin_status.reflect") == ["1"]
    assert _f(n, "rsvp.admin_status.down") == ["1"]


def test_ack(decoded: dict[str, Any]) -> None:
    a = decoded["ack"]
    assert _f(a, "rsvp.message_id_ack.message_id") == ["1"]
    assert _f(a, "rsvp.message_id_ack.epoch") == ["101"]


def test_srefresh_message_id_list_and_piggybacked_ack(decoded: dict[str, Any]) -> None:
    s = decoded["srefresh"]
    assert _f(s, "rsvp.message_id_list.epoch") == ["101"]
    assert _f(s, "rsvp.message_id_list.message_id") == ["1", "3", "4"]
    assert _f(s, "rsvp.message_id_ack.message_id") == ["2"]
    assert _f(s, "rsvp.ctype.message_id_ack") == ["1"]


def test_bundle_sub_messages(decoded: dict[str, Any]) -> None:
    b = decoded["bundle"]
    assert _f(b, "rsvp.style.style") == ["0x000012"]
    assert _f(b, "rsvp.label.generalized_label") == [str(ex.LAMBDA)]
    assert _f(b, "rsvp.ctype.message_id_ack") == ["2"]  # C-Type 2: NACK
    assert _f(b, "rsvp.message_id_ack.message_id") == ["9"]


def test_core_output_decodes_cleanly(tmp_path: Path) -> None:
    """Every message the cores of tn1..tn5 actually send for the paper's QE LSP (Hellos,
    Path, Resv, then the PathTear of its deletion) decodes in tshark with nothing
    malformed; the Path from tn1 carries the key handle in tn5's QE subobject."""
    from tests.support.rsvp_net import TOPO, Net

    assert TSHARK
    net = Net(hello_ms=1000)
    net.advance(1.0)
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    net.delete("tn1", 1)
    frames = []
    for src, dst, m in net.sent:
        ip = ipv4_packet(
            TOPO.control_address(src), TOPO.control_address(dst), 46, m.encode(), ttl=m.send_ttl
        )
        frames.append(ethernet_frame(ip))
    pcap = tmp_path / "core.pcap"
    write_pcap(str(pcap), frames)
    decoded = [dict(f)["_source"] for f in tshark.frames(pcap, "-x")]
    assert len(decoded) == len(net.sent)
    names = []
    for (_src, _dst, m), src_json in zip(net.sent, decoded, strict=True):
        layers = dict(src_json)["layers"]
        assert "Malformed" not in json.dumps(layers)
        messages = _f(collect(layers, "_ws.expert"), "_ws.expert.message")
        assert messages == (['"Time To Live" only 1'] if m.send_ttl == 1 else [])
        assert _f(layers, "rsvp.msg") == [str(m.msg_type)]
        names.append(m.name)
    assert names.count("PATH") == 4 and names.count("RESV") == 4
    assert names.count("PATH_TEAR") == 4
    first_path = next(
        dict(j)["layers"]
        for (s, _d, m), j in zip(net.sent, decoded, strict=True)
        if s == "tn1" and m.name == "PATH"
    )
    route = collect(first_path, "rsvp.explicit_route")[0]
    assert _f(route, "rsvp.type") == ["4", "3", "4", "3", "4", "3", "1", "103"]
    qe_type = [v for v in collect(route, "rsvp.type_raw") if v[0] == "67"]
    frame = bytes.fromhex(collect(first_path, "frame_raw")[0][0])
    sub = frame[qe_type[0][1] : qe_type[0][1] + 76]
    assert sub[4 : 4 + qe.SESSION_ID_LEN] == (1).to_bytes(2, "big") * 32


def test_core_srefresh_and_nacks_decode_cleanly(tmp_path: Path) -> None:
    """What the cores send once the LSP is up: a period of summary refreshes, then tn2
    restarts and NACKs what it no longer knows. tshark reads every Srefresh's
    MESSAGE_ID_LIST and every NACK, nothing malformed."""
    from tests.support.rsvp_net import TOPO, Net

    net = Net()
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    net.sent.clear()
    net.advance(30.0)
    net.restart("tn2")
    net.advance(30.0)
    frames = [
        ethernet_frame(
            ipv4_packet(TOPO.control_address(s), TOPO.control_address(d), 46, m.encode(), ttl=255)
        )
        for s, d, m in net.sent
    ]
    pcap = tmp_path / "srefresh.pcap"
    write_pcap(str(pcap), frames)
    decoded = tshark.layers(pcap)
    assert len(decoded) == len(net.sent)
    ids, nacks = [], []
    for (_s, _d, m), layers in zip(net.sent, decoded, strict=True):
        assert "Malformed" not in json.dumps(layers) and not collect(layers, "_ws.expert")
        assert _f(layers, "rsvp.msg") == [str(m.msg_type)]
        ids += _f(layers, "rsvp.message_id_list.message_id")
        if "2" in _f(layers, "rsvp.ctype.message_id_ack"):
            nacks += _f(layers, "rsvp.message_id_ack.message_id")
    sent_ids = [i for _, _, m in net.sent for o in m.all(O.MessageIdList) for i in o.message_ids]
    assert ids == [str(i) for i in sent_ids] and len(ids) >= 8
    sent_nacks = [o.message_id for _, _, m in net.sent for o in m.all(O.MessageIdNack)]
    assert nacks == [str(i) for i in sent_nacks] and nacks
