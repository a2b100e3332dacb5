"""The QKD link TLV (gmpls/ospf/qkdlink.py, docs/ospf-te.md#the-qkd-link-tlv): golden
bytes, the configurable type, decoding inside a TE LSA, malformed input, fuzz, and
tshark reading an LS Update that carries it with nothing malformed."""

from __future__ import annotations

import contextlib
import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls import qe
from gmpls.errors import DecodeError, EncodeError
from gmpls.ospf import examples as ex
from gmpls.ospf import show
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType
from gmpls.ospf.events import OriginateOpaque
from gmpls.ospf.lsa import LSA, MalformedBody
from gmpls.ospf.packet import LSUpdate, Packet
from gmpls.ospf.qkdlink import (
    QKD_OPAQUE_ID_BASE,
    QkdLinkTlv,
    is_qkd_lsa_id,
    qkd_link,
    qkd_links,
    qkd_lsa_id,
)
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import RouterAddress, TeLSA, te_lsa_id
from gmpls.tlv import UnknownTlv
from tests.support import tshark
from tests.support.pcap import ethernet_frame, ipv4_packet, write_pcap
from tests.support.tshark import REQUIRED, TSHARK, collect

S1 = IPv4Address("10.1.1.1")
S2 = IPv4Address("10.1.1.2")
LINK = QkdLinkTlv(S1, S2, 2000, 0x0102030405, 1 << 20, True)

GOLDEN = bytes.fromhex(
    "8001"  # type 32769 (qe.CODEPOINTS.te_qkd_link)
    "0038"  # length 56: six sub-TLVs
    "0001 0004 0a010101"  # 1 local site 10.1.1.1
    "0002 0004 0a010102"  # 2 far site 10.1.1.2
    "0003 0004 000007d0"  # 3 key rate 2000 b/s
    "0004 0008 0000000102030405"  # 4 key stock
    "0005 0008 0000000000100000"  # 5 key buffer 1 Mib
    "0006 0004 00000001".replace(" ", "")  # 6 link state: up
)


@pytest.fixture
def codepoints():  # type: ignore[no-untyped-def]
    old = qe.CODEPOINTS
    yield
    qe.CODEPOINTS = old


def qkd_lsa(tlv: QkdLinkTlv = LINK, instance: int = 0) -> LSA:
    return LSA.build(
        LsType.OPAQUE_AREA, qkd_lsa_id(instance), tlv.local_site, INITIAL_SEQUENCE, TeLSA((tlv,))
    )


def test_golden_bytes() -> None:
    assert qe.CODEPOINTS.te_qkd_link == 32769
    assert LINK.encode() == GOLDEN
    assert QkdLinkTlv.decode(GOLDEN) == LINK
    down = QkdLinkTlv(S2, S1, 0, 0, 0, False)
    assert QkdLinkTlv.decode(down.encode()) == down
    assert down.encode()[-4:] == bytes(4)


def test_decoded_in_a_te_lsa_and_found() -> None:
    a = LSA.decode(qkd_lsa().encode())
    assert a.body == TeLSA((LINK,))
    assert qkd_links(a.body) == (LINK,) and qkd_link(a.body) == LINK
    # with FRR-style neighbours: a Router Address TLV first, the QKD link after
    body = TeLSA((RouterAddress(S1), LINK))
    b = LSA.decode(LSA.build(10, te_lsa_id(3), S1, INITIAL_SEQUENCE, body).encode())
    assert qkd_link(b.body) == LINK and b.body.router_address == S1
    assert qkd_link(ex.te_link_lsa().body) is None and qkd_link(ex.ri_lsa().body) is None


def test_found_when_kept_raw() -> None:
    """A TE codec that does not know the TLV keeps it as UnknownTlv: still found."""
    raw = TeLSA((UnknownTlv(qe.CODEPOINTS.te_qkd_link, GOLDEN[4:]),))
    assert qkd_links(raw) == (LINK,)
    bad = TeLSA((UnknownTlv(qe.CODEPOINTS.te_qkd_link, GOLDEN[4:-8]),))
    with pytest.raises(DecodeError):
        qkd_links(bad)


def test_type_is_configuration(codepoints: None) -> None:
    qe.configure(te_qkd_link=32775)
    assert LINK.encode()[:2] == (32775).to_bytes(2, "big")
    a = LSA.decode(qkd_lsa().encode())
    assert qkd_link(a.body) == LINK
    with pytest.raises(DecodeError, match="not the QKD link TLV"):
        QkdLinkTlv.decode(GOLDEN)
    # under the old type it is just an unknown TE TLV now
    old = LSA.decode(
        LSA.build(10, qkd_lsa_id(0), S1, 1, TeLSA((UnknownTlv(32769, GOLDEN[4:]),))).encode()
    )
    assert qkd_links(old.body) == ()


def test_subtlvs_in_any_order_unknown_skipped() -> None:
    subs = list(LINK.subtlvs())
    body = b"".join(s.encode() for s in reversed(subs)) + UnknownTlv(99, b"xyz").encode()
    tlv = UnknownTlv(qe.CODEPOINTS.te_qkd_link, body).encode()
    assert QkdLinkTlv.decode(tlv) == LINK


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (GOLDEN[4:-8], "missing up"),
        (GOLDEN[4:] + GOLDEN[4:12], "repeated"),
        (GOLDEN[4:-4] + bytes.fromhex("00000002"), "not in 0..1"),
        (GOLDEN[4:6] + b"\x00\x05" + GOLDEN[8:12] + b"\x00" * 4 + GOLDEN[12:], "trailing"),
        (GOLDEN[4:30], "truncated"),
    ],
)
def test_malformed(body: bytes, why: str) -> None:
    tlv = UnknownTlv(qe.CODEPOINTS.te_qkd_link, body).encode()
    with pytest.raises(DecodeError, match=why):
        QkdLinkTlv.decode(tlv)
    # inside an LSA: flooded as is, but not used
    raw = TeLSA((RouterAddress(S1), UnknownTlv(qe.CODEPOINTS.te_qkd_link, body)))
    a = LSA.decode(LSA.build(10, qkd_lsa_id(1), S1, 1, raw).encode())
    assert isinstance(a.body, MalformedBody) and not a.usable


def test_values_that_do_not_fit() -> None:
    with pytest.raises(EncodeError):
        QkdLinkTlv(S1, S2, 1 << 32, 0, 0, True).encode()
    with pytest.raises(EncodeError):
        QkdLinkTlv(S1, S2, 1, -1, 0, True).encode()


def test_opaque_ids() -> None:
    assert qkd_lsa_id(0) == IPv4Address("1.0.128.0") and qkd_lsa_id(5).packed[1:] == b"\x00\x80\x05"
    assert is_qkd_lsa_id(qkd_lsa_id(7)) and not is_qkd_lsa_id(te_lsa_id(7))
    assert int(qkd_lsa_id(0)) & 0xFFFFFF == QKD_OPAQUE_ID_BASE
    with pytest.raises(ValueError):
        qkd_lsa_id(0x8000)


@settings(max_examples=300)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_round_trip(rate: int, stock: int, buf: int, up: bool, far: int) -> None:
    t = QkdLinkTlv(S1, IPv4Address(far), rate, stock, buf, up)
    assert QkdLinkTlv.decode(t.encode()) == t
    assert qkd_link(LSA.decode(qkd_lsa(t).encode()).body) == t


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 200),
)
def test_fuzz_only_decode_errors(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(GOLDEN)
    for pos, val in flips:
        data[pos % len(data)] = val
    for d in (bytes(data), bytes(data[: cut % (len(data) + 1)])):
        with contextlib.suppress(DecodeError):
            QkdLinkTlv.decode(d)
        with contextlib.suppress(DecodeError):
            qkd_links(TeLSA((UnknownTlv(qe.CODEPOINTS.te_qkd_link, d[4:]),)))
        a = LSA.build(10, qkd_lsa_id(0), S1, 1, TeLSA((UnknownTlv(1, S1.packed),)))
        raw = bytearray(a.encode()[:20] + d)
        raw[18:20] = len(raw).to_bytes(2, "big")
        _ = LSA.decode(bytes(raw), verify=False).body  # never raises: Malformed at worst


@pytest.mark.interop
def test_tshark_decodes_an_ls_update_with_qkd_links(tmp_path: Path) -> None:
    assert TSHARK, REQUIRED
    down = QkdLinkTlv(S1, IPv4Address("10.1.1.6"), 1500, 0, 1 << 20, False)
    lsas = (ex.te_router_lsa(), qkd_lsa(LINK, 0), qkd_lsa(down, 1))
    p = Packet(S1, ex.AREA0, LSUpdate(lsas))
    pcap = tmp_path / "qkd.pcap"
    write_pcap(str(pcap), [ethernet_frame(ipv4_packet(str(S1), "224.0.0.5", 89, p.encode()))])
    (layers,) = tshark.layers(pcap)
    text = json.dumps(layers)
    assert "_ws.malformed" not in text and "Malformed" not in text
    assert collect(layers, "_ws.expert") == []
    assert collect(layers, "ospf.lsid_opaque_type") == ["1", "1", "1"]
    assert collect(layers, "ospf.advrouter") == [str(S1)] * 3
    assert collect(layers, "ospf.mpls.routerid") == [str(S1)]
    assert collect(layers, "ospf.lsa.length") == ["28", str(20 + 60), str(20 + 60)]
    t = qe.CODEPOINTS.te_qkd_link
    assert collect(layers, "ospf.tlv_type").count(str(t)) == 2
    assert collect(layers, "ospf.lsid_te_lsa.instance")[1:] == [
        str(QKD_OPAQUE_ID_BASE),
        str(QKD_OPAQUE_ID_BASE + 1),
    ]
    assert collect(layers, "ospf.lsid_te_lsa.reserved") == ["0"] * 3
    verdict = tshark.run(pcap, "-V")
    assert "incorrect" not in verdict and "Malformed" not in verdict


def test_shown_in_the_opaque_database() -> None:
    r = OspfRouter(S1)
    r.handle(OriginateOpaque(LsType.OPAQUE_AREA, qkd_lsa_id(0), TeLSA((LINK,))), 0.0)
    (e,) = show.opaque(r, 0.0)["areas"]["0.0.0.0"]["opaqueAreaLinkStates"]
    assert e["trafficEngineering"] == [
        {
            "qkdLink": {
                "localSite": "10.1.1.1",
                "farSite": "10.1.1.2",
                "keyRateBps": 2000,
                "keyStockBits": 0x0102030405,
                "keyBufferBits": 1 << 20,
                "up": True,
            }
        }
    ]
