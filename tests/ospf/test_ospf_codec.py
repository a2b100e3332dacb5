"""OSPFv2 codec: round trips (hypothesis), golden bytes, and precise errors."""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings

from gmpls import ero, qe
from gmpls.checksum import fletcher_ok
from gmpls.errors import DecodeError
from gmpls.ospf import examples as ex
from gmpls.ospf import lsa as L
from gmpls.ospf import packet as P
from gmpls.ospf import ri as R
from gmpls.ospf import te as T
from gmpls.tlv import UnknownTlv, decode_tlvs
from gmpls.wire import Reader
from tests.support import ospf_strategies as S


@given(S.packet)
def test_packet_round_trip(p: P.Packet) -> None:
    assert P.decode(p.encode()) == p


@given(S.lsa)
def test_lsa_round_trip_and_checksum(a: L.LSA) -> None:
    raw = a.encode()
    assert fletcher_ok(raw[2:])
    b = L.LSA.decode(raw)
    assert b == a
    # re-encoding without the cached wire bytes gives the same bytes (canonical codecs)
    assert replace(b, wire=b"").encode() == raw


@given(S.lsa_header)
def test_lsa_header_round_trip(h: L.LSAHeader) -> None:
    assert L.LSAHeader.decode(Reader(h.encode(), "t")) == h


@settings(max_examples=300)
@given(S.link_subtlv)
def test_link_subtlv_round_trip(s: object) -> None:
    wire = s.encode()
    assert len(wire) % 4 == 0
    assert decode_tlvs(Reader(wire, "t"), T.LINK_SUBTLVS, "s") == (s,)


@given(S.te_tlv)
def test_te_tlv_round_trip(t: object) -> None:
    assert decode_tlvs(Reader(t.encode(), "t"), T.TE_TLVS, "s") == (t,)


@given(S.ri_tlv)
def test_ri_tlv_round_trip(t: object) -> None:
    assert decode_tlvs(Reader(t.encode(), "t"), R.RI_TLVS, "s") == (t,)


@given(S.label_set)
def test_label_set_round_trip(s: T.LabelSet) -> None:
    assert T.LabelSet.decode(Reader(s.encode(), "t")) == s


def test_paper_ri_lsa_golden_bytes() -> None:
    a = ex.ri_lsa()
    assert a.encode().hex() == (
        "0000"  # age
        "42"  # options: O, E
        "0a"  # LS type 10
        "04000000"  # opaque type 4 (RI), opaque ID 0
        "0a010101"  # advertising router tn1
        "80000001"  # InitialSequenceNumber
        "3cb1"  # Fletcher checksum
        "001c"  # length 28
        "00010004"  # Informational Capabilities TLV, length 4
        "12000000"  # TE (bit 3) + QE (bit 6): first octet 0x12, Fig. 7
    )
    body = a.body
    assert isinstance(body, R.RouterInfoLSA)
    assert body.te_capable and body.qe_capable


def test_qe_bit_is_configuration() -> None:
    old = qe.CODEPOINTS
    try:
        qe.configure(ri_qe_bit=7)
        caps = R.capabilities(te=True, qe_capable=True)
        assert caps.flags == 0x11000000
        assert not R.RouterInfoLSA((R.InformationalCapabilities(0x12000000),)).qe_capable
    finally:
        qe.CODEPOINTS = old
    assert R.capabilities(te=True, qe_capable=True).flags == 0x12000000
    assert R.capabilities(te=True, qe_capable=False).flags == 0x10000000


def test_hello_golden_bytes() -> None:
    raw = ex.hello().encode()
    assert raw.hex() == (
        "0201"  # version 2, Hello
        "0030"  # length 48
        "0a010101"  # router ID
        "00000000"  # area 0
        "d0bd"  # checksum
        "0000"  # AuType null
        "0000000000000000"
        "ffffff00"  # network mask
        "0001"  # hello interval
        "02"  # options: E (the O bit belongs to DD packets, RFC 5250)
        "01"  # priority
        "00000004"  # dead interval
        "0a010101"  # DR
        "0a010102"  # BDR
        "0a010102"  # neighbour
    )
    # the checksum is the Internet checksum over the packet without the auth field
    from gmpls.checksum import inet_checksum

    assert inet_checksum(raw[:16] + raw[24:]) == 0


def test_frr_style_te_lsa_several_top_level_tlvs() -> None:
    """Router Address and Link TLVs in one LSA, plus unknown TLVs at both levels."""
    link = T.Link((T.LinkType(2), UnknownTlv(32770, b"\x01\x02\x03"), T.TeMetric(7)))
    body = T.TeLSA((T.RouterAddress(IPv4Address("10.0.0.9")), link, UnknownTlv(32768, b"xyz!")))
    a = L.LSA.build(10, T.te_lsa_id(3), "10.0.0.9", 5, body)
    b = L.LSA.decode(a.encode())
    assert b == a
    assert b.body.router_address == IPv4Address("10.0.0.9")
    assert b.body.links[0].find(T.TeMetric) == T.TeMetric(7)
    # the unknown sub-TLV was padded to 4 octets and is kept as it was
    assert b.body.links[0].subtlvs[1] == UnknownTlv(32770, b"\x01\x02\x03")


def test_wire_bytes_forwarded_unchanged_even_if_non_canonical() -> None:
    """Non-zero padding is not ours to fix: flooding sends the originator's bytes."""
    tlv = struct.pack("!HH", 1, 1) + b"\x01\xaa\xbb\xcc"  # link type 1, garbage padding
    body = struct.pack("!HH", 2, len(tlv)) + tlv
    h = L.LSAHeader(0, 0x42, 10, T.te_lsa_id(1), IPv4Address("1.1.1.1"), 1, 0, 20 + len(body))
    from gmpls.checksum import fletcher_checksum

    raw = bytearray(h.encode() + body)
    cks = fletcher_checksum(bytes(raw[2:]), 14)
    raw[16:18] = struct.pack("!H", cks)
    a = L.LSA.decode(bytes(raw))
    assert a.with_age(77).encode() == struct.pack("!H", 77) + bytes(raw[2:])


def test_available_labels_dwdm_bitmap() -> None:
    al = T.AvailableLabels.from_channels([1, 2, 3, 5, 8])
    assert al.channels() == (1, 2, 3, 5, 8)
    s = al.label_sets[0]
    assert s.action == T.LabelAction.BITMAP and s.num_labels == 8
    assert s.base_label == ero.lambda_label(1, grid=1, cs=1)  # DWDM, 100 GHz, n = 1
    assert ero.lambda_frequency_thz(s.base_label) == pytest.approx(193.2)
    assert s.encode().hex() == "4008000c22000001e9000000"
    assert ero.lambda_channel(ero.lambda_label(-3)) == -3


def test_label_set_lists_and_ranges() -> None:
    inc = T.LabelSet(0, 2, ero.lambda_label(4), struct.pack("!I", ero.lambda_label(6)))
    assert inc.channels() == (4, 6)
    rng = T.LabelSet(2, 0, ero.lambda_label(2), struct.pack("!I", ero.lambda_label(5)))
    assert rng.channels() == (2, 3, 4, 5)


def test_bad_lsa_checksum_names_the_field() -> None:
    raw = bytearray(ex.ri_lsa().encode())
    raw[-1] ^= 1
    with pytest.raises(DecodeError) as e:
        L.LSA.decode(bytes(raw))
    assert "checksum" in e.value.field


def test_bad_packet_checksum_names_the_field() -> None:
    raw = bytearray(ex.hello().encode())
    raw[-1] ^= 1
    with pytest.raises(DecodeError) as e:
        P.decode(bytes(raw))
    assert e.value.field == "ospf.header.checksum"


@pytest.mark.parametrize("cut", [1, 10, 23, 30, 47])
def test_truncation_is_a_decode_error(cut: int) -> None:
    raw = ex.ls_update().encode()
    with pytest.raises(DecodeError):
        P.decode(raw[:cut])


def test_zero_length_tlvs_advance() -> None:
    r = Reader(b"\x00\x63\x00\x00" * 3, "t")
    assert decode_tlvs(r, T.TE_TLVS, "x") == (UnknownTlv(0x63, b""),) * 3


def test_tlv_longer_than_its_container_is_rejected() -> None:
    with pytest.raises(DecodeError) as e:
        decode_tlvs(Reader(b"\x00\x01\x00\x08\x0a\x00\x00\x01", "t"), T.TE_TLVS, "x")
    assert "te" in e.value.field or "x" in e.value.field


def test_lsu_count_larger_than_content() -> None:
    p = ex.ls_update()
    raw = bytearray(p.encode())
    raw[24:28] = struct.pack("!I", 1000)
    # fix the header checksum so only the count is wrong
    raw[12:14] = b"\x00\x00"
    from gmpls.checksum import inet_checksum

    raw[12:14] = struct.pack("!H", inet_checksum(bytes(raw[:16] + raw[24:])))
    with pytest.raises(DecodeError) as e:
        P.decode(bytes(raw))
    assert e.value.field.endswith("count")


def test_md5_authentication() -> None:
    key = b"secret"
    raw = P.sign_md5(ex.hello(), key_id=1, seq=42, key=key)
    p = P.decode(raw)
    assert p.auth.autype == 2 and p.auth.key_id == 1 and p.auth.crypto_seq == 42
    assert p.auth.digest_len == 16 and len(p.trailer) == 16
    assert P.verify_md5(raw, key)
    assert not P.verify_md5(raw, b"other")


def test_simple_password_kept() -> None:
    p = replace(ex.hello(), auth=P.Auth.simple(b"pw"))
    q = P.decode(p.encode())
    assert q.auth.autype == 1 and q.auth.data == b"pw" + bytes(6)


def test_wrong_version_and_unknown_type() -> None:
    raw = bytearray(ex.hello().encode())
    raw[0] = 3
    with pytest.raises(DecodeError) as e:
        P.decode(bytes(raw))
    assert e.value.field == "ospf.header.version"
    raw[0] = 2
    raw[1] = 9
    with pytest.raises(DecodeError):
        P.decode(bytes(raw), verify_checksum=False)


def test_instance_comparison_rfc2328_13_1() -> None:
    h = ex.ri_lsa().header
    newer = replace(h, seq=h.seq + 1)
    assert L.compare_instances(newer, h) > 0 and L.compare_instances(h, newer) < 0
    assert L.compare_instances(replace(h, age=3600), h) > 0
    assert L.compare_instances(replace(h, age=1000), h) < 0
    assert L.compare_instances(replace(h, age=100), h) == 0
