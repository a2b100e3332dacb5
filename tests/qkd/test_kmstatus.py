"""The KM status codec (gmpls/qkd/kmstatus.py): golden bytes, round trips, and no input
raising anything but DecodeError."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.errors import DecodeError, EncodeError
from gmpls.qkd import kmstatus as ks

LINK = ks.LinkStatus(IPv4Address("10.1.1.2"), "km1-km2", True, 2000, 5, 1 << 20, 256, 3)
GOLDEN_LINK = (
    "0a010102"  # far site
    "000007d0"  # rate 2000
    "0000000000000005"  # stock
    "0000000000100000"  # buffer
    "0000000000000100"  # used
    "0003"  # services
    "01"  # up
    "07" + b"km1-km2".hex() + "00" * 25  # name length
)


def test_request_golden() -> None:
    assert ks.encode(ks.LinksRequest(0x01020304)) == bytes.fromhex("0101000001020304")
    assert ks.decode(bytes.fromhex("0101000001020304")) == ks.LinksRequest(0x01020304)


def test_reply_golden() -> None:
    wire = bytes.fromhex("01810000000000070001" + GOLDEN_LINK)
    msg = ks.LinksReply(7, (LINK,))
    assert ks.encode(msg) == wire
    assert len(wire) == 8 + 2 + ks.LINK_LEN
    assert ks.decode(wire) == msg
    assert ks.encode(ks.LinksReply(7)) == bytes.fromhex("01810000000000070000")


@pytest.mark.parametrize(
    ("hexdata", "where"),
    [
        ("0201000000000001", "kmstatus.version"),
        ("0107000000000001", "kmstatus.type"),
        ("0101000000000001ff", "LINKS_REQUEST.end"),
        ("018100000000000100", "LINKS_REPLY.count"),
        ("01810000000000010041", "LINKS_REPLY.count"),
        ("01810000000000010001" + GOLDEN_LINK[:-2], "LINKS_REPLY.link"),
        ("01810000000000010001" + GOLDEN_LINK.replace("000301", "000302"), "link.up"),
        ("01810000000000010001" + GOLDEN_LINK[:-2] + "01", "link.name"),
        ("01810000000000010001" + GOLDEN_LINK.replace("0107", "0121"), "link.name"),
    ],
)
def test_malformed(hexdata: str, where: str) -> None:
    with pytest.raises(DecodeError) as e:
        ks.decode(bytes.fromhex(hexdata))
    assert where in e.value.field, e.value.field


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        ks.encode(ks.LinksReply(1, (LINK.__class__(LINK.far_site, "x" * 33, True, 1, 1, 1, 1, 1),)))
    with pytest.raises(EncodeError):
        ks.encode(ks.LinksReply(1, (LINK.__class__(LINK.far_site, "x", True, -1, 1, 1, 1, 1),)))
    with pytest.raises(EncodeError):
        ks.encode(ks.LinksRequest(1 << 32))


u64 = st.integers(0, 2**64 - 1)
links = st.builds(
    ks.LinkStatus,
    st.integers(0, 2**32 - 1).map(IPv4Address),
    st.text(max_size=8),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    u64,
    u64,
    u64,
    st.integers(0, 0xFFFF),
)


@given(st.integers(0, 2**32 - 1), st.lists(links, max_size=5).map(tuple))
def test_round_trip(rid: int, ls: tuple[ks.LinkStatus, ...]) -> None:
    assert ks.decode(ks.encode(ks.LinksReply(rid, ls))) == ks.LinksReply(rid, ls)


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(0, 199), st.integers(0, 255))
def test_decoder_raises_only_decode_error(data: bytes, pos: int, byte: int) -> None:
    good = ks.encode(ks.LinksReply(3, (LINK, LINK)))
    for s in (data, good, good[: pos % len(good)]):
        b = bytearray(s)
        if b:
            b[pos % len(b)] = byte
        with contextlib.suppress(DecodeError):
            ks.decode(bytes(b))
