"""Property tests: the three codecs round-trip, and no input makes them raise anything
but DecodeError (the remote side's fault), as h11's fuzzing asks of a parser."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.errors import DecodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import sync

u32 = st.integers(0, 0xFFFFFFFF)
handles = st.binary(min_size=64, max_size=64)
ipv4 = st.integers(0, 0xFFFFFFFF).map(IPv4Address)
qos = st.builds(etsi.QoS, u32, u32, u32, u32)
relays = st.one_of(st.just(()), st.lists(ipv4, min_size=2, max_size=16).map(tuple))
etsi_msgs = st.one_of(
    st.builds(etsi.Open, u32, ipv4, qos, handles, relays),
    st.builds(etsi.ConnectNonblock, u32, handles),
    st.builds(etsi.ConnectBlocking, u32, handles, u32),
    st.builds(etsi.GetKey, u32, handles),
    st.builds(etsi.Close, u32, handles),
    st.builds(etsi.OpenReply, u32, st.sampled_from(etsi.Status), handles, qos),
    st.builds(etsi.GetKeyReply, u32, st.sampled_from(etsi.Status), u32, st.binary(max_size=1024)),
    st.builds(etsi.CloseReply, u32, st.sampled_from(etsi.Status), handles),
)
key_ids = st.lists(st.integers(0, 2**64 - 1), max_size=50).map(tuple)
sync_msgs = st.one_of(
    st.builds(sync.Create, u32, handles, ipv4, ipv4, st.integers(0, 0xFFFF)),
    st.builds(sync.CreateResp, u32, handles, st.sampled_from(sync.Result)),
    st.builds(sync.Bind, u32, handles, u32, st.integers(0, 0xFFFF), key_ids),
    st.builds(
        sync.AllocResp,
        u32,
        handles,
        st.sampled_from(sync.Result),
        u32,
        st.integers(0, 0xFFFF),
        key_ids,
    ),
    st.builds(sync.Ack, u32, handles, st.sampled_from(sync.Result)),
)
idq_msgs = st.one_of(
    st.builds(idq.GetNextKey, u32, st.integers(1, 1024), st.integers(1, 1024)),
    st.builds(
        idq.GetKeyById,
        u32,
        st.integers(1, 1024),
        st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20).map(tuple),
    ),
    st.builds(idq.StatusRequest, u32, st.integers(1, 1024)),
)


@given(etsi_msgs)
def test_etsi_round_trip(msg: etsi.Message) -> None:
    assert etsi.decode(etsi.encode(msg)) == msg


@given(sync_msgs)
def test_sync_round_trip(msg: sync.SyncMessage) -> None:
    a, b = sync.SyncCodec(b"s" * 32, "A", "B", 1), sync.SyncCodec(b"s" * 32, "B", "A", 2)
    assert b.open(a.seal(msg, 2)) == msg


@given(idq_msgs)
def test_idq_round_trip(msg: idq.AnyMessage) -> None:
    assert idq.decode(idq.encode(msg)) == msg


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(0, 199), st.integers(0, 255))
def test_decoders_raise_only_decode_error(data: bytes, pos: int, byte: int) -> None:
    # random bytes, and valid messages with one byte changed
    samples = [data, etsi.encode(etsi.GetKey(1, bytes(64))), idq.encode(idq.GetNextKey(1, 32))]
    for s in samples:
        b = bytearray(s)
        if b:
            b[pos % len(b)] = byte
        for decode in (etsi.decode, idq.decode, sync.SyncCodec(b"s" * 32, "A", "B", 1).open):
            with contextlib.suppress(DecodeError):
                decode(bytes(b))
