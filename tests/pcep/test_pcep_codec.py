"""PCEP codec (RFC 5440): round trips, golden bytes, grammar checks, P-flag rules."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmpls import ero, qe
from gmpls.errors import DecodeError, EncodeError
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import qemetrics as Q
from gmpls.pcep import tlv as T
from gmpls.pcep.objects import decode_objects
from gmpls.pcep.tlv import TLVS
from gmpls.tlv import decode_tlvs, encode_tlvs
from gmpls.wire import Reader
from tests.support.pcep_strategies import (
    messages,
    objects,
    requests,
    subobjects,
    tlvs,
)

IP = ipaddress.IPv4Address


# round trips -----------------------------------------------------------------------------


@given(tlvs)
def test_tlvs_round_trip(t: tuple[Any, ...]) -> None:
    raw = encode_tlvs(t)
    assert len(raw) % 4 == 0
    assert decode_tlvs(Reader(raw, "t"), TLVS) == t


@given(objects)
def test_objects_round_trip(obj: object) -> None:
    raw = obj.encode()  # type: ignore[attr-defined]
    assert len(raw) % 4 == 0 and int.from_bytes(raw[2:4], "big") == len(raw)
    assert decode_objects(Reader(raw, "o")) == [obj]


@given(subobjects)
def test_route_subobjects_round_trip(subs: tuple[Any, ...]) -> None:
    e = O.Ero(subs)
    assert decode_objects(Reader(e.encode(), "o")) == [e]


@given(messages)
def test_messages_round_trip(msg: object) -> None:
    raw = msg.encode()  # type: ignore[attr-defined]
    assert M.decode_message(raw) == msg
    assert M.decode_message(raw).encode() == raw


@given(st.lists(messages, min_size=1, max_size=4), st.integers(1, 64))
def test_framer_reassembles_any_split(msgs: list[Any], chunk: int) -> None:
    stream = b"".join(m.encode() for m in msgs)
    f = M.Framer()
    frames: list[bytes] = []
    for i in range(0, len(stream), chunk):
        frames.extend(f.feed(stream[i : i + chunk]))
    assert [M.decode_message(x) for x in frames] == msgs
    assert f.pending == 0


# golden bytes ----------------------------------------------------------------------------


def test_open_golden() -> None:
    assert M.Open(O.OpenObject(30, 120, 1)).encode() == bytes.fromhex("2001000c01100008201e7801")


def test_keepalive_golden() -> None:
    assert M.Keepalive().encode() == bytes.fromhex("20020004")


def test_paper_pcreq_golden() -> None:
    """RP(1, P) + END-POINTS 10.1.1.1 → 10.1.1.5 + four float32 QE metrics (Fig. 8), each
    with the P flag set (0x12: object type 1, P)."""
    raw = ex.paper_pcreq().encode()
    assert raw == bytes.fromhex(
        "2003004c"
        "0212000c"
        "00000000"
        "00000001"
        "0412000c"
        "0a010101"
        "0a010105"
        "0612000c"
        "000000ff"
        "42000000"  # 255 key length 32.0
        "0612000c"
        "000000fe"
        "40000000"  # 254 layer 2.0
        "0612000c"
        "000000fd"
        "41200000"  # 253 algorithm 10.0
        "0612000c"
        "000000fc"
        "447a0000"  # 252 refresh 1000.0
    )


def test_paper_pcrep_fig9_bytes() -> None:
    qe_body = bytes([103, 76, 0, 0]) + bytes(64) + bytes([2, 10, 0, 32, 1, 0, 0x03, 0xE8])
    label = bytes.fromhex("03080002") + ero.lambda_label(1).to_bytes(4, "big")

    def unn(n: int, i: int) -> bytes:
        return bytes.fromhex("040c0000") + bytes([10, 1, 1, n]) + i.to_bytes(4, "big")

    subs = unn(1, 1) + qe_body + label + unn(2, 1) + label + unn(3, 3) + label + unn(4, 3) + label
    subs += bytes.fromhex("01080a01010520 00".replace(" ", "")) + qe_body
    expected_ero = bytes.fromhex("071000f4") + subs
    assert len(expected_ero) == 244
    raw = ex.paper_pcrep().encode()
    assert (
        raw == bytes.fromhex("20040104") + bytes.fromhex("0212000c0000000000000001") + expected_ero
    )
    assert ero.lambda_label(1) == 0x22000001  # DWDM grid, 100 GHz, n = 1 (RFC 6205)


# grammar (RFC 5440 §6) -------------------------------------------------------------------


def _frame(mtype: int, body: bytes) -> bytes:
    return bytes([0x20, mtype]) + (4 + len(body)).to_bytes(2, "big") + body


EP = O.EndPointsIpv4(IP("10.1.1.1"), IP("10.1.1.5"))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (O.RP(1).encode(), (6, 3)),  # without END-POINTS
        (O.RP(1).encode() + O.Metric(2, 1.0).encode(), (6, 3)),
        (O.RP(1, p=False).encode() + EP.encode(), (10, 1)),
        (O.RP(1).encode() + O.EndPointsIpv4(EP.source, EP.destination, p=False).encode(), (10, 1)),
    ],
    ids=["no-end-points", "metric-no-end-points", "rp-without-p", "end-points-without-p"],
)
def test_malformed_request_set_aside(body: bytes, code: tuple[int, int]) -> None:
    """A request that breaks the grammar is set aside with its code and its RP; the
    well-formed request after it is decoded (RFC 5440 §6.4, one PCReq, two requests)."""
    good = O.RP(2).encode() + EP.encode()
    msg = M.decode_message(_frame(3, body + good))
    assert isinstance(msg, M.PCReq)
    assert [(r.rp.request_id, r.code) for r in msg.rejected] == [(1, code)]
    assert [r.rp.request_id for r in msg.requests] == [2]
    assert msg.requests[0].endpoints == EP


@pytest.mark.parametrize(
    ("mtype", "body", "code"),
    [
        (3, EP.encode(), (6, 1)),  # PCReq without RP
        (3, b"", (6, 1)),
        (4, O.NoPath().encode(), (6, 1)),  # PCRep without RP
        (1, b"", (1, 1)),  # Open without OPEN
        (1, O.RP(1).encode(), (1, 1)),
        (1, bytes.fromhex("01100008401e7801"), (1, 1)),  # OPEN with version 2
    ],
)
def test_mandatory_objects(mtype: int, body: bytes, code: tuple[int, int]) -> None:
    with pytest.raises(DecodeError) as e:
        M.decode_message(_frame(mtype, body))
    assert e.value.code == code


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x20\x02\x00",  # truncated header
        b"\x40\x02\x00\x04",  # version 2
        b"\x20\x02\x00\x03",  # length < 4
        b"\x20\x02\x00\x08\x00\x00\x00\x00",  # object length 0
        b"\x20\x02\x00\x08\x01\x10\x00\x06",  # object length not 4n
        b"\x20\x02\x00\x08\x01\x10\x00\x0c",  # object longer than message
        b"\x20\x02\x00\x05\x00",  # trailing byte no object
        _frame(6, b""),  # PCErr without PCEP-ERROR
        _frame(5, O.RP(1).encode()),  # PCNtf without NOTIFICATION
        _frame(7, b""),  # Close without CLOSE
        _frame(3, O.RP(1).encode()[:-4] + EP.encode()),  # RP shortened: body too short
        # RP whose TLV claims 8 bytes with none left in the object
        _frame(3, bytes.fromhex("02120010") + bytes(8) + bytes.fromhex("00010008") + EP.encode()),
        # ERO with a subobject of length 2
        _frame(4, O.RP(1).encode() + bytes.fromhex("07100008") + bytes.fromhex("04020000")),
    ],
)
def test_malformed_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        M.decode_message(raw)


def test_length_mismatch_and_framer_errors() -> None:
    with pytest.raises(DecodeError):
        M.decode_message(M.Keepalive().encode() + b"\x00")
    with pytest.raises(DecodeError):
        M.Framer().feed(b"\x60\x02\x00\x04")


def test_tlv_zero_length_advances_and_padding_is_checked() -> None:
    assert decode_tlvs(Reader(bytes.fromhex("0007000000080000"), "t"), TLVS) == (
        decode_tlvs(Reader(bytes.fromhex("00070000"), "t"), TLVS)[0],
        decode_tlvs(Reader(bytes.fromhex("00080000"), "t"), TLVS)[0],
    )
    with pytest.raises(DecodeError):
        decode_tlvs(Reader(bytes.fromhex("00070001aa"), "t"), TLVS)  # padding missing
    with pytest.raises(DecodeError):
        decode_tlvs(Reader(bytes.fromhex("00010002aaaa"), "t"), TLVS)  # NO-PATH-VECTOR too short


def test_request_order_lenient_and_others_kept() -> None:
    unk = O.UnknownObject(200, 1, b"abcd", p=True)
    body = O.RP(7).encode() + O.Metric(2, 3.0).encode() + unk.encode() + EP.encode()
    msg = M.decode_message(_frame(3, body))
    assert isinstance(msg, M.PCReq)
    (req,) = msg.requests
    assert req.endpoints == EP and req.metrics == (O.Metric(2, 3.0),) and req.others == (unk,)
    assert req.unprocessable() == (3, 1)


def test_pcrep_attributes_go_to_the_right_path() -> None:
    body = (
        O.RP(1).encode()
        + O.NoPath(tlvs=(T.NoPathVectorTlv(2),)).encode()
        + O.Metric(2, 5.0).encode()
        + O.Ero(()).encode()
        + O.Metric(2, 7.0).encode()
    )
    msg = M.decode_message(_frame(4, body))
    assert isinstance(msg, M.PCRep)
    r = msg.responses[0]
    assert r.no_path is not None and r.no_path.vector == 2
    assert r.attributes.metrics == (O.Metric(2, 5.0),)
    assert r.paths[0].attributes.metrics == (O.Metric(2, 7.0),)


def test_unknown_message_kept() -> None:
    raw = _frame(13, b"\x01\x02\x03\x04")  # StartTLS (RFC 8253): not implemented
    assert M.decode_message(raw) == M.UnknownMessage(13, b"\x01\x02\x03\x04")


def test_pcerr_of_clears_p_flag_and_close() -> None:
    e = M.PCErr.of((6, 3), rps=(O.RP(9),))
    assert e.blocks[0].rps[0].p is False and e.codes == [(6, 3)]
    assert M.decode_message(e.encode()) == e
    assert M.decode_message(M.Close().encode()) == M.Close()


# P-flag rules (RFC 5440 §7.2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (O.UnknownObject(200, 1, b"", p=True), (3, 1)),  # unknown class
        (O.UnknownObject(6, 5, b"", p=True), (3, 2)),  # known class (METRIC), unknown type
        (O.UnknownObject(14, 1, bytes(8), p=True), (4, 1)),  # LOAD-BALANCING: not supported
        (O.UnknownObject(200, 1, b"", p=False), None),  # optional: ignored
        (O.Metric(2, 1.0, p=True), None),
    ],
)
def test_unprocessable(obj: object, code: tuple[int, int] | None) -> None:
    assert O.unprocessable(obj) == code  # type: ignore[arg-type]


# QE metrics (docs/design.md#qe-metric-types) ---------------------------------------------


@given(
    st.builds(
        qe.QeParams,
        st.integers(1, 0xFFFF),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 0xFFFF),
        st.integers(0, 2),
    ),
    st.booleans(),
)
def test_qe_metrics_round_trip(p: qe.QeParams, always: bool) -> None:
    ms = Q.qe_metrics(p, always_refresh_type=always)
    assert Q.qe_params_from_metrics([O.Metric(2, 10.0), *ms]) == p


def test_qe_metrics_p_flag_configurable() -> None:
    """The QE METRIC objects go out with the P flag (a PCE must not ignore them, RFC 5440
    §7.2) unless configured off in gmpls.qe."""
    assert all(m.p for m in Q.qe_metrics(ex.PAPER_QE))
    try:
        qe.configure(metric_p_flag=False)
        assert not any(m.p for m in Q.qe_metrics(ex.PAPER_QE))
    finally:
        qe.configure(metric_p_flag=True)


def test_qe_metrics_paper_and_absent() -> None:
    assert [m.metric_type for m in Q.qe_metrics(ex.PAPER_QE)] == [255, 254, 253, 252]
    assert Q.qe_params_from_metrics(Q.qe_metrics(ex.PAPER_QE)) == ex.PAPER_QE
    assert Q.qe_params_from_metrics([O.Metric(2, 1.0)]) is None


@pytest.mark.parametrize(
    "ms",
    [
        [O.Metric(255, 32.5), O.Metric(254, 2), O.Metric(253, 10), O.Metric(252, 1)],
        [O.Metric(255, -1), O.Metric(254, 2), O.Metric(253, 10), O.Metric(252, 1)],
        [O.Metric(255, float("inf")), O.Metric(254, 2), O.Metric(253, 10), O.Metric(252, 1)],
        [
            O.Metric(255, 32),
            O.Metric(255, 32),
            O.Metric(254, 2),
            O.Metric(253, 10),
            O.Metric(252, 1),
        ],
        [O.Metric(255, 32), O.Metric(253, 10), O.Metric(252, 1)],  # no layer
        [O.Metric(255, 32), O.Metric(254, 2), O.Metric(253, 10)],  # no refresh value
    ],
)
def test_qe_metrics_invalid(ms: list[O.Metric]) -> None:
    with pytest.raises(DecodeError):
        Q.qe_params_from_metrics(ms)


def test_qe_refresh_none_needs_no_value() -> None:
    p = Q.qe_params_from_metrics(
        [O.Metric(255, 32), O.Metric(254, 1), O.Metric(253, 1), O.Metric(251, 0)]
    )
    assert p == qe.QeParams(32, 1, 1, 0, 0)


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        M.Request(O.RP(1), EP, rro_bandwidth=O.Bandwidth(1.0)).objects()
    with pytest.raises(EncodeError):
        O.UnknownObject(200, 1, b"abc").encode()
    with pytest.raises(EncodeError):
        O.UnknownObject(200, 16, b"").encode()


@given(requests())
def test_request_objects_p_flags(req: M.Request) -> None:
    assert req.rp.p and req.endpoints.p
