"""The relay messages of the KM channel (gmpls/qkd/sync.py RELAY_*): golden bodies, sealed
round trips, and the checks of their fields."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmpls.errors import DecodeError
from gmpls.qkd import sync

H = bytes(range(64))
G = bytes(range(64, 128))
S = [IPv4Address(f"10.1.1.{i}") for i in (1, 2, 3)]


def test_relay_open_golden() -> None:
    msg = sync.RelayOpen(7, H, G, S[0], S[2], 32, tuple(S))
    body = (
        bytes.fromhex("00000007")
        + H
        + G
        + bytes.fromhex("0a0101010a01010300200a0101010a0101020a010103")
    )
    assert msg.encode_body() == body
    assert msg.TYPE == 10


def test_relay_key_resp_ack_close_opened_golden() -> None:
    assert sync.RelayKey(1, H, 5, b"\xaa\xbb").encode_body() == (
        bytes.fromhex("00000001") + H + bytes.fromhex("000000050002aabb")
    )
    assert sync.RelayKey(1, H, 5).encode_body() == bytes.fromhex("00000001") + H + bytes.fromhex(
        "000000050000"
    )
    assert sync.RelayResp(2, H, sync.Result.NO_QKD_CONNECTION).encode_body() == (
        bytes.fromhex("00000002") + H + b"\x07"
    )
    assert sync.RelayAck(3, H).encode_body() == bytes.fromhex("00000003") + H + b"\x00"
    assert sync.RelayClose(4, H, sync.Result.INSUFFICIENT_KEY).encode_body() == (
        bytes.fromhex("00000004") + H + b"\x05"
    )
    assert sync.RelayOpened(5, H).encode_body() == bytes.fromhex("00000005") + H
    assert [m.TYPE for m in (sync.RelayResp, sync.RelayKey, sync.RelayAck)] == [11, 12, 13]
    assert [sync.RelayClose.TYPE, sync.RelayOpened.TYPE] == [14, 15]


def test_relay_key_repr_hides_the_payload() -> None:
    assert "aa" not in repr(sync.RelayKey(1, H, 5, b"\xaa" * 32))


def _pair() -> tuple[sync.SyncCodec, sync.SyncCodec]:
    return sync.SyncCodec(b"s" * 32, "km1", "km2", 1), sync.SyncCodec(b"s" * 32, "km2", "km1", 2)


def _sealed(mtype: int, body: bytes) -> bytes:
    """A genuine frame (right key, epochs, counter) of type ``mtype`` around ``body``."""
    head = bytearray(_pair()[0].seal(sync.Hello(), 2))
    head[3] = mtype
    data = bytes(head) + body
    key = sync.direction_key(b"s" * 32, "km1", "km2")
    return data + hmac.new(key, data, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("mtype", "bad"),
    [
        (10, bytes.fromhex("00000007") + H + G + bytes.fromhex("0a0101010a01010300200a01")),
        (12, bytes.fromhex("00000001") + H + bytes.fromhex("000000050003aabb")),
        (12, bytes.fromhex("00000001") + H + bytes.fromhex("000000050401") + bytes(1025)),
        (11, bytes.fromhex("00000002") + H + b"\x63"),
        (15, bytes.fromhex("00000002") + H + b"\x00"),
        (16, bytes.fromhex("00000002") + H),
    ],
)
def test_malformed_relay_bodies(mtype: int, bad: bytes) -> None:
    b = _pair()[1]
    with pytest.raises(DecodeError):
        b.open(_sealed(mtype, bad))
    assert b.counters["malformed"] == 1


u32 = st.integers(0, 0xFFFFFFFF)
handles = st.binary(min_size=64, max_size=64)
ipv4 = st.integers(0, 0xFFFFFFFF).map(IPv4Address)
results = st.sampled_from(sync.Result)
relay_msgs = st.one_of(
    st.builds(
        sync.RelayOpen,
        u32,
        handles,
        handles,
        ipv4,
        ipv4,
        st.integers(0, 0xFFFF),
        st.lists(ipv4, max_size=16).map(tuple),
    ),
    st.builds(sync.RelayResp, u32, handles, results),
    st.builds(sync.RelayKey, u32, handles, u32, st.binary(max_size=1024)),
    st.builds(sync.RelayAck, u32, handles, results),
    st.builds(sync.RelayClose, u32, handles, results),
    st.builds(sync.RelayOpened, u32, handles),
)


@given(relay_msgs)
def test_relay_round_trip(msg: sync.SyncMessage) -> None:
    a, b = _pair()
    assert b.open(a.seal(msg, 2)) == msg
