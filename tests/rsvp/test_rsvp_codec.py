"""RSVP-TE codec: round trips for every object and message, golden layout of the paper's
Path/Resv, and the RFC 2205 §3.10 / RFC 3209 error rules."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls import ero
from gmpls.checksum import inet_checksum
from gmpls.errors import DecodeError, EncodeError
from gmpls.rsvp import examples as ex
from gmpls.rsvp import objects as O
from gmpls.rsvp.constants import ClassNum, MsgType
from gmpls.rsvp.message import Message, decode
from gmpls.wire import Reader
from tests.support import rsvp_strategies as S


def _obj_roundtrip(obj: O.RsvpObject) -> None:
    data = O.encode_object(obj)
    assert len(data) % 4 == 0
    r = Reader(data, "t")
    assert O.decode_object(r, 0) == obj
    assert r.at_end()


@pytest.mark.parametrize("cls", list(S.OBJECTS), ids=lambda c: c.__name__)
@settings(max_examples=60)
@given(data=st.data())
def test_object_roundtrip(cls: type, data: st.DataObject) -> None:
    _obj_roundtrip(data.draw(S.OBJECTS[cls]))


@pytest.mark.parametrize("t", list(MsgType), ids=lambda t: t.name)
@settings(max_examples=60)
@given(data=st.data())
def test_message_roundtrip(t: MsgType, data: st.DataObject) -> None:
    m = data.draw(S.message(t))
    wire = m.encode()
    assert decode(wire) == m
    assert decode(wire).encode() == wire
    assert inet_checksum(wire) == 0  # the checksum field makes the whole message sum to 0


def test_paper_messages_roundtrip_and_layout() -> None:
    for m in ex.all_examples().values():
        wire = m.encode()
        assert decode(wire) == m
        assert wire[0] == 0x10 | m.flags and wire[1] == m.msg_type
        assert struct.unpack("!H", wire[6:8])[0] == len(wire)
    path = ex.paper_path().encode()
    # SESSION first: length 16, class 1, C-Type 7, endpoint 10.1.1.5, tunnel 1, ext 10.1.1.1
    assert path[8:24] == bytes.fromhex("001001070a010105000000010a010101")
    # the QE subobject of tn5 with the filled session ID is the ERO's last subobject
    route = decode(path).get(O.ExplicitRoute)
    assert route is not None
    last = route.subobjects[-1]
    assert isinstance(last, ero.QeSubobject) and last.session_id == ex.SESSION_ID
    assert last.has_session


def test_zero_checksum_means_none() -> None:
    wire = bytearray(ex.paper_resv().encode())
    wire[2:4] = b"\x00\x00"
    assert decode(bytes(wire)) == ex.paper_resv()


def test_bad_checksum_rejected() -> None:
    wire = bytearray(ex.paper_resv().encode())
    wire[3] ^= 0x01
    with pytest.raises(DecodeError, match="checksum"):
        decode(bytes(wire))


def _with_object(m: Message, raw: bytes) -> bytes:
    """``m`` encoded with ``raw`` (an encoded object) appended, checksum left zero."""
    wire = m.encode() + raw
    return wire[:2] + b"\x00\x00" + wire[4:6] + struct.pack("!H", len(wire)) + wire[8:]


def _raw_obj(class_num: int, c_type: int, body: bytes) -> bytes:
    return struct.pack("!HBB", 4 + len(body), class_num, c_type) + body


def test_unknown_class_0bbbbbbb_rejected_with_13() -> None:
    with pytest.raises(DecodeError) as e:
        decode(_with_object(ex.paper_path(), _raw_obj(50, 1, b"abcd")))
    assert e.value.code == (13, (50 << 8) | 1)


def test_unknown_class_10bbbbbb_ignored_and_dropped() -> None:
    m = decode(_with_object(ex.paper_path(), _raw_obj(0x90, 1, b"abcd")))
    assert m == ex.paper_path()


def test_unknown_class_11bbbbbb_forwarded_unchanged() -> None:
    raw = _raw_obj(0xE0, 9, b"abcdefgh")
    wire = _with_object(ex.paper_path(), raw)
    m = decode(wire)
    assert m.objects[-1] == O.UnknownObject(0xE0, 9, b"abcdefgh")
    assert m.encode().endswith(raw)


def test_unknown_ctype_of_known_class_14() -> None:
    with pytest.raises(DecodeError) as e:
        decode(_with_object(ex.paper_path(), _raw_obj(ClassNum.LABEL, 99, b"abcd")))
    assert e.value.code == (14, (16 << 8) | 99)


def test_bad_ero_gives_routing_problem_bad_explicit_route() -> None:
    # a subobject of length 3 (not a multiple of 4)
    with pytest.raises(DecodeError) as e:
        decode(_with_object(ex.paper_path(), _raw_obj(20, 1, b"\x04\x03\x00\x00")))
    assert e.value.code == (24, 1)
    # a QE subobject of the wrong length
    with pytest.raises(DecodeError) as e:
        decode(_with_object(ex.paper_path(), _raw_obj(20, 1, b"\x67\x08" + bytes(6))))
    assert e.value.code == (24, 1)


def test_bad_tspec_gives_traffic_control_error() -> None:
    nan_tspec = bytes.fromhex("00000007 01000006 7f000005") + struct.pack(
        "!fffII", float("nan"), 1.0, 1.0, 0, 0
    )
    with pytest.raises(DecodeError) as e:
        decode(_with_object(ex.paper_path(), _raw_obj(12, 2, nan_tspec)))
    assert e.value.code == (21, 4)
    odd_service = bytes.fromhex("00000007 07000006 7f000005") + bytes(20)
    with pytest.raises(DecodeError) as e:
        decode(_with_object(ex.paper_resv(), _raw_obj(9, 2, odd_service)))
    assert e.value.code == (21, 2)


def test_missing_mandatory_object_has_no_code() -> None:
    m = ex.paper_path()
    stripped = Message(m.msg_type, tuple(o for o in m.objects if o.class_num != 5))
    with pytest.raises(DecodeError, match="TIME_VALUES") as e:
        decode(stripped.encode())
    assert e.value.code is None


@pytest.mark.parametrize(
    "raw",
    [
        _raw_obj(5, 1, b""),  # TIME_VALUES too short
        struct.pack("!HBB", 0, 5, 1),  # zero length: must not loop
        struct.pack("!HBB", 6, 5, 1) + b"\x00\x00",  # not a multiple of 4
        struct.pack("!HBB", 40, 5, 1) + bytes(4),  # longer than the message
        _raw_obj(3, 3, bytes(8) + struct.pack("!HH", 3, 0)),  # IF_ID TLV length 0
        _raw_obj(3, 3, bytes(8) + struct.pack("!HH", 3, 8) + bytes(4)),  # IF_INDEX short
        _raw_obj(207, 7, b"\x07\x07\x00\x09abc"),  # name longer than the object
        _raw_obj(207, 7, b"\x07\x07\x00\x01a" + bytes(7)),  # too much name padding
        _raw_obj(16, 2, bytes(8)),  # 64-bit generalized label
    ],
)
def test_malformed_objects_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(_with_object(ex.paper_path(), raw))


def test_header_errors() -> None:
    wire = ex.paper_resv().encode()
    for bad in (
        b"\x20" + wire[1:],  # version 2
        wire[:1] + b"\x63" + wire[2:],  # unknown message type
        wire + b"\x00\x00\x00\x00",  # trailing bytes
        wire[:7],  # truncated header
    ):
        with pytest.raises(DecodeError):
            decode(bad)
    for n in range(len(wire)):
        with pytest.raises(DecodeError):
            decode(wire[:n])


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        Message(99, ()).encode()
    with pytest.raises(EncodeError):
        O.encode_object(O.Flowspec(O.TokenBucket(1, 1, 1), service=7))
    with pytest.raises(EncodeError):
        O.encode_object(O.SessionAttribute("x" * 256))
    with pytest.raises(EncodeError):
        O.IfIdTlv(3, IPv4Address("1.2.3.4")).encode()


def test_if_id_hop_names_the_data_interface() -> None:
    hop = ex.paper_path().get(O.RsvpHopIfId)
    assert hop is not None and hop.data_interface() == (IPv4Address("10.1.1.1"), 1)
    assert O.RsvpHopIfId(IPv4Address("10.1.1.1")).data_interface() is None
