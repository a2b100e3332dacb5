"""Random and mutated input never raises anything but DecodeError (h11-style fuzzing).

bench/fuzz_codecs.py runs the same mutations a million times; these are the quick ones.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.errors import DecodeError
from gmpls.ospf import examples as ex
from gmpls.ospf import lsa as L
from gmpls.ospf import packet as P
from tests.support import ospf_strategies as S

VALID = [p.encode() for p in (ex.hello(), ex.dd(), ex.ls_request(), ex.ls_update(), ex.ls_ack())]


def _decode_both(data: bytes) -> None:
    """Decode as a packet and as an LSA, and read every LSA body (decoded lazily: reading
    it must never raise, a body that does not decode becomes a MalformedBody)."""
    for verify in (True, False):
        with contextlib.suppress(DecodeError):
            p = P.decode(data, verify_checksum=verify)
            if isinstance(p.body, P.LSUpdate):
                _ = [a.body for a in p.body.lsas]
    with contextlib.suppress(DecodeError):
        _ = L.LSA.decode(data, verify=False).body


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _decode_both(data)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_random_bytes_behind_a_valid_header(tail: bytes) -> None:
    for head in VALID:
        _decode_both(head[:24] + tail)
        _decode_both(head[24:44] + tail)


@settings(max_examples=500)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 2000),
)
def test_mutated_valid_packets(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, val in flips:
        data[pos % len(data)] = val
    _decode_both(bytes(data))
    _decode_both(bytes(data[: cut % (len(data) + 1)]))


@settings(max_examples=200)
@given(S.packet, st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_generated_packets(p: P.Packet, pos: int, val: int) -> None:
    data = bytearray(p.encode())
    data[pos % len(data)] = val
    _decode_both(bytes(data))
