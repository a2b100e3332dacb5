"""tshark, the independent decoder, reads our OSPF packets as we meant them.

The paper's RI LSA with TE+QE (first capability octet 0x12) inside an LS Update, TE LSAs
(also FRR's several-TLVs layout), a Hello and a DD are framed in Ethernet/IPv4 (protocol
89, to 224.0.0.5), written to a pcap and decoded with ``tshark -T json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gmpls import qe
from gmpls.ospf import examples as ex
from tests.support import tshark
from tests.support.pcap import ethernet_frame, ipv4_packet, write_pcap
from tests.support.tshark import REQUIRED, TSHARK, collect

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TSHARK, REQUIRED
    pcap = Path(tmp_path_factory.mktemp("ospf")) / "ospf.pcap"
    packets = [ex.hello(), ex.dd(), ex.ls_request(), ex.ls_update(), ex.ls_ack()]
    frames = [
        ethernet_frame(ipv4_packet(str(p.router_id), "224.0.0.5", 89, p.encode())) for p in packets
    ]
    write_pcap(str(pcap), frames)
    return pcap


@pytest.fixture(scope="module")
def decoded(pcap: Path) -> list[dict[str, Any]]:
    decoded = tshark.layers(pcap)
    assert len(decoded) == 5
    return decoded


def test_no_malformed_frame_or_expert_info(decoded: list[dict[str, Any]]) -> None:
    for layers in decoded:
        assert "_ws.malformed" not in json.dumps(layers) and "Malformed" not in json.dumps(layers)
        assert collect(layers, "_ws.expert") == []
        assert collect(layers, "frame.protocols") == ["eth:ethertype:ip:ospf"]


def test_header_and_checksums(decoded: list[dict[str, Any]]) -> None:
    for layers, ptype in zip(decoded, [1, 2, 3, 4, 5], strict=True):
        assert collect(layers, "ospf.msg") == [str(ptype)]
        assert collect(layers, "ip.checksum.status") == ["1"]  # good
        assert collect(layers, "ospf.area_id") == ["0.0.0.0"]


def test_hello_fields(decoded: list[dict[str, Any]]) -> None:
    h = decoded[0]
    assert collect(h, "ospf.hello.network_mask") == ["255.255.255.0"]
    assert collect(h, "ospf.hello.hello_interval") == ["1"]
    assert collect(h, "ospf.hello.router_dead_interval") == ["4"]
    assert collect(h, "ospf.hello.designated_router") == ["10.1.1.1"]
    assert collect(h, "ospf.hello.backup_designated_router") == ["10.1.1.2"]
    assert collect(h, "ospf.hello.active_neighbor") == ["10.1.1.2"]
    # RFC 5250: the O bit is for Database Description packets, never in a Hello
    assert collect(h, "ospf.v2.options.o") == ["0"] and collect(h, "ospf.v2.options.e") == ["1"]


def test_dd_fields(decoded: list[dict[str, Any]]) -> None:
    d = decoded[1]
    assert collect(d, "ospf.db.interface_mtu") == ["1500"]
    assert collect(d, "ospf.db.dd_sequence") == ["4660"]
    assert collect(d, "ospf.lsa") == ["1", "10", "10"]
    assert collect(d, "ospf.v2.options.o")[0] == "1"  # the DD's own options: opaque capable


def test_ri_lsa_with_qe_bit(decoded: list[dict[str, Any]]) -> None:
    u = decoded[3]
    assert collect(u, "ospf.ri.options") == ["0x12"]
    assert collect(u, "ospf.ri.options.tes") == ["1"]
    assert collect(u, "ospf.lsid_opaque_type") == ["4", "1", "1", "1"]
    assert collect(u, "ospf.advrouter") == ["10.1.1.1"] * 4


def test_te_lsas(decoded: list[dict[str, Any]]) -> None:
    u = decoded[3]
    # Router Address twice (own LSA and FRR-style combined LSA), two Link TLVs
    assert collect(u, "ospf.mpls.routerid") == ["10.1.1.1", "10.1.1.1"]
    assert collect(u, "ospf.mpls.linktype") == ["1", "1"]
    assert collect(u, "ospf.mpls.linkid") == ["10.1.1.2", "10.1.1.2"]
    assert collect(u, "ospf.mpls.local_id") == ["1", "1"]
    assert collect(u, "ospf.mpls.remote_id") == ["2", "2"]
    assert collect(u, "ospf.mpls.te_metric") == ["10", "10"]
    assert collect(u, "ospf.mpls.switching_type") == ["150", "150"]
    assert collect(u, "ospf.mpls.encoding") == ["8", "8"]
    assert [float(v) for v in collect(u, "ospf.mpls.link_max_bw")] == [
        1.25e10
    ] * 4  # max, max-reservable
    assert collect(u, "ospf.lsid_te_lsa.instance") == ["0", "1", "2"]
    # the Available Labels sub-TLV under its experimental type (RFC 3630 32768-32777)
    t = qe.CODEPOINTS.te_available_labels
    assert str(t) in collect(u, "ospf.tlv_type") and 32768 <= t <= 32777
    assert f"Unknown Link sub-TLV: {t} (For Experimental Use)" in json.dumps(u)


def test_ls_ack_lists_the_update(decoded: list[dict[str, Any]]) -> None:
    assert collect(decoded[4], "ospf.lsa.seqnum") == ["0x80000001"] * 4


def test_ospf_checksums_verified_by_tshark(pcap: Path) -> None:
    text = tshark.run(pcap, "-V")
    # the OSPF header checksum of each of the five packets, as tshark's verdict
    verdicts = [ln.strip() for ln in text.splitlines() if ln.endswith("[correct]")]
    assert len(verdicts) == 5 and all(v.startswith("Checksum: 0x") for v in verdicts)
    assert "incorrect" not in text and "Malformed" not in text
