"""Random and mutated input never raises anything but DecodeError (h11-style fuzzing).

bench/fuzz_codecs.py runs the same kind of mutations a million times; these are quick.
"""

from __future__ import annotations

import contextlib

import rsvp_strategies as S
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.errors import DecodeError
from gmpls.rsvp import examples as ex
from gmpls.rsvp.message import Message, decode

VALID = [m.encode() for m in ex.all_examples().values()]


def _fix_checksum_off(data: bytes) -> bytes:
    """Zero the checksum so a mutation reaches the object parsers."""
    return data[:2] + b"\x00\x00" + data[4:] if len(data) >= 4 else data


def _decode(data: bytes) -> None:
    for d in (data, _fix_checksum_off(data)):
        with contextlib.suppress(DecodeError):
            m = decode(d)
            assert isinstance(m, Message)
            # whatever decodes re-encodes and decodes to the same message
            assert decode(m.encode()) == m


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _decode(data)


@settings(max_examples=500)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_paper_messages(base: bytes, flips: list[tuple[int, int]]) -> None:
    buf = bytearray(base)
    for pos, val in flips:
        buf[pos % len(buf)] = val
    _decode(bytes(buf))


@settings(max_examples=300)
@given(S.message(), st.integers(0, 2000), st.binary(max_size=8))
def test_mutated_random_messages(m: Message, pos: int, junk: bytes) -> None:
    wire = m.encode()
    p = pos % (len(wire) + 1)
    _decode(wire[:p] + junk + wire[p + len(junk) :])
    _decode(wire[:p])
