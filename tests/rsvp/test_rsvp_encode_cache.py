"""gmpls/rsvp/message.py encodes the objects of a message once while the same tuple is
sent again (refreshes), and gmpls/rsvp/objects.py decodes the same object bytes once and
encodes the same object once: the bytes are always those of a fresh encode, the objects
those of a fresh decode."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gmpls.errors import DecodeError
from gmpls.rsvp import examples as ex
from gmpls.rsvp import message as M
from gmpls.rsvp import objects as O
from gmpls.rsvp.objects import encode_object
from gmpls.wire import Reader


def fresh(msg: M.Message) -> bytes:
    """The message encoded without the cache."""
    M._ENCODED.clear()
    return msg.encode()


def test_the_same_objects_with_other_header_fields() -> None:
    path = ex.paper_path()
    first = fresh(path)
    assert path.encode() == first
    flagged = replace(path, flags=1, send_ttl=7)  # the same objects tuple
    assert flagged.objects is path.objects
    again = flagged.encode()
    assert again[8:] == first[8:] and again[:8] != first[:8]
    assert again == fresh(flagged) and M.decode(again) == flagged


def test_equal_objects_in_another_tuple_and_a_list() -> None:
    resv = ex.paper_resv()
    want = fresh(resv)
    copy = M.Message(resv.msg_type, tuple(resv.objects))
    assert copy.encode() == want
    as_list = M.Message(resv.msg_type, list(resv.objects))  # type: ignore[arg-type]
    assert as_list.encode() == want
    assert not any(objs is as_list.objects for objs, _ in M._ENCODED.values())


def test_bounded() -> None:
    M._ENCODED.clear()
    for i in range(M._ENCODED_MAX + 10):
        m = M.Message(ex.hello().msg_type, tuple(ex.hello().objects), send_ttl=i % 255 + 1)
        m.encode()
        assert len(M._ENCODED) <= M._ENCODED_MAX
    body = b"".join(encode_object(o) for o in ex.paper_path().objects)
    assert ex.paper_path().encode()[8:] == body


def test_objects_decoded_once_by_their_bytes() -> None:
    """The same object bytes give the same (immutable) object; what failed to decode is
    not kept, and fails again."""
    O._DECODED.clear()
    raw = ex.paper_path().encode()
    first = M.decode(raw)
    again = M.decode(raw)
    assert again == first and all(a is b for a, b in zip(again.objects, first.objects, strict=True))
    assert len(O._DECODED) == len(first.objects)
    # a TIME_VALUES whose length says 12 with a body of 4: an error, each time
    bad = bytearray(encode_object(O.TimeValues(30000)))
    bad[0:2] = (12).to_bytes(2, "big")
    for _ in range(2):
        with pytest.raises(DecodeError):
            O.decode_object(Reader(bytes(bad) + bytes(4), "t"), 0)
        assert bytes(bad) + bytes(4) not in O._DECODED


def test_decoded_objects_bounded() -> None:
    O._DECODED.clear()
    for i in range(O._DECODED_MAX + 10):
        O.decode_object(Reader(encode_object(O.TimeValues(i + 1)), "t"), 0)
        assert len(O._DECODED) <= O._DECODED_MAX


def test_objects_encoded_once_by_identity() -> None:
    """An object sent again is encoded once; an equal object of its own is encoded for
    itself; the bytes are always those of a fresh encode; bounded."""
    O._ENCODED_OBJ.clear()
    tv = O.TimeValues(30000)
    wire = encode_object(tv)
    assert O._ENCODED_OBJ[id(tv)] == (tv, wire) and encode_object(tv) is wire
    other = O.TimeValues(30000)
    assert encode_object(other) == wire and O._ENCODED_OBJ[id(other)][0] is other
    for i in range(O._ENCODED_OBJ_MAX + 10):
        assert encode_object(O.TimeValues(i)) == bytes.fromhex("00080501") + i.to_bytes(4, "big")
        assert len(O._ENCODED_OBJ) <= O._ENCODED_OBJ_MAX
