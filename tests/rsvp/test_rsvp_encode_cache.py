"""gmpls/rsvp/message.py encodes the objects of a message once while the same tuple is
sent again (refreshes): the bytes are always those of a fresh encode."""

from __future__ import annotations

from dataclasses import replace

from gmpls.rsvp import examples as ex
from gmpls.rsvp import message as M
from gmpls.rsvp.objects import encode_object


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
