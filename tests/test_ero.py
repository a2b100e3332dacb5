"""The shared ERO/RRO subobject codec and the QE subobject (docs/design.md#the-qe-ero-subobject)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmpls import ero, qe
from gmpls.errors import DecodeError

IP = ipaddress.IPv4Address

ipv4 = st.builds(IP, st.integers(0, 2**32 - 1))
subobjects = st.one_of(
    st.builds(ero.Ipv4Prefix, ipv4, st.integers(0, 32), st.booleans(), st.integers(0, 255)),
    st.builds(
        ero.Ipv6Prefix,
        st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)),
        st.integers(0, 128),
        st.booleans(),
        st.integers(0, 255),
    ),
    st.builds(
        ero.Label,
        st.integers(0, 2**32 - 1),
        st.integers(0, 255),
        st.booleans(),
        st.integers(0, 255),
    ),
    st.builds(ero.Unnumbered, ipv4, st.integers(0, 2**32 - 1), st.booleans(), st.integers(0, 255)),
    st.builds(ero.AsNumber, st.integers(0, 65535), st.booleans()),
    st.builds(
        ero.QeSubobject,
        st.binary(min_size=64, max_size=64),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 65535),
        st.integers(0, 255),
        st.integers(0, 65535),
        st.booleans(),
        st.integers(0, 65535),
    ),
    st.builds(
        ero.UnknownSubobject,
        st.sampled_from([5, 6, 33, 64, 100, 127]),
        st.integers(0, 30).flatmap(lambda n: st.binary(min_size=4 * n + 2, max_size=4 * n + 2)),
        st.booleans(),
    ),
)


@given(st.lists(subobjects, max_size=12))
def test_round_trip(objs: list[ero.Subobject]) -> None:
    data = ero.encode_subobjects(objs)
    assert ero.decode_subobjects(data, "ero") == objs
    assert ero.encode_subobjects(ero.decode_subobjects(data, "ero")) == data


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        objs = ero.decode_subobjects(data, "ero")
    except DecodeError:
        return
    assert ero.encode_subobjects(objs) == data


def test_qe_subobject_golden_bytes() -> None:
    sub = ero.QeSubobject(session_id=bytes(range(64)))
    data = sub.encode()
    assert len(data) == 76
    assert data[:4] == bytes([103, 76, 0, 0])
    assert data[4:68] == bytes(range(64))
    # layer 2, AES-256-GCM (10), key length 32, refresh type 1 (time), reserved, 1000 ms
    assert data[68:] == bytes([2, 10, 0, 32, 1, 0, 0x03, 0xE8])


def test_qe_subobject_with_zero_session_and_params() -> None:
    p = qe.QeParams(key_length=32, enc_layer=2, algorithm=10, refresh_value=1000)
    sub = ero.QeSubobject.from_params(p)
    assert not sub.has_session and sub.params() == p


def test_unnumbered_golden_bytes() -> None:
    assert ero.Unnumbered(IP("10.1.1.1"), 1).encode() == bytes.fromhex("040c00000a01010100000001")


def test_ipv4_prefix_golden_bytes() -> None:
    assert ero.Ipv4Prefix(IP("10.1.1.5")).encode() == bytes.fromhex("01080a0101052000")


@pytest.mark.parametrize(
    "data, field",
    [
        (bytes([4, 0]), "[0].length"),  # zero length must not loop
        (bytes([4, 2]), "[0].length"),
        (bytes([4, 6, 0, 0, 0, 0]), "[0].length"),  # not a multiple of 4
        (bytes([4, 12, 0, 0]), "[0]"),  # truncated body
        (bytes([1, 8, 10, 1, 1, 5, 33, 0]), "prefix_length"),
        (bytes([103, 12]) + bytes(10), "length"),
        (bytes([1, 12]) + bytes(10), "length"),  # IPv4 prefix with extra bytes
    ],
)
def test_malformed_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as ei:
        ero.decode_subobjects(data, "ero")
    assert field in ei.value.field


def test_qe_subobject_type_is_configurable() -> None:
    old = qe.CODEPOINTS
    try:
        qe.configure(ero_subobject=104)
        data = ero.QeSubobject().encode()
        assert data[0] == 104
        assert isinstance(ero.decode_subobjects(data, "ero")[0], ero.QeSubobject)
        assert isinstance(
            ero.decode_subobjects(bytes([103, 4, 0, 0]), "ero")[0], ero.UnknownSubobject
        )
    finally:
        qe.CODEPOINTS = old


def test_lambda_labels() -> None:
    label = ero.lambda_label(1)
    assert label == 0x22000001
    assert ero.lambda_channel(label) == 1
    assert ero.lambda_frequency_thz(label) == 193.2
    assert ero.lambda_channel(ero.lambda_label(-4)) == -4
    assert ero.lambda_frequency_thz(ero.lambda_label(-4)) == 192.7


def test_ri_masks() -> None:
    assert qe.CODEPOINTS.ri_qe_mask == 0x02000000
    assert qe.CODEPOINTS.ri_te_mask == 0x10000000
    assert (qe.CODEPOINTS.ri_qe_mask | qe.CODEPOINTS.ri_te_mask) >> 24 == 0x12


def test_qe_params_problems() -> None:
    assert qe.QeParams().problems() == []
    assert "unknown encryption algorithm 99" in qe.QeParams(algorithm=99).problems()
    assert "unknown encryption layer 7" in qe.QeParams(enc_layer=7).problems()
