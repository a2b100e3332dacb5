"""Random and mutated input never raises anything but DecodeError (h11-style fuzzing).

bench/fuzz_codecs.py (section "pcep") runs the same kind of mutations a million times.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.errors import DecodeError
from gmpls.pcep import examples as ex
from gmpls.pcep.messages import Framer, PCReq, decode_message
from gmpls.pcep.qemetrics import qe_params_from_metrics
from tests.support import pcep_strategies as S

VALID = [
    m.encode()
    for m in (
        ex.paper_open(),
        ex.paper_pcreq(),
        ex.paper_pcrep(),
        ex.paper_pcreq(7),
        ex.stateful_open(),
        ex.paper_pcrpt(),
        ex.paper_pcupd(),
        ex.paper_pcinitiate(),
    )
]


def _fix_len(b: bytes) -> bytes:
    return b[:2] + len(b).to_bytes(2, "big") + b[4:] if len(b) >= 4 else b


def _decode_all(data: bytes) -> None:
    for d in (data, _fix_len(data)):
        with contextlib.suppress(DecodeError):
            msg = decode_message(d)
            if isinstance(msg, PCReq):
                for r in msg.requests:
                    qe_params_from_metrics(r.metrics)
                    r.unprocessable()
    with contextlib.suppress(DecodeError):
        Framer().feed(data)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _decode_all(data)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_objects_behind_a_valid_header(tail: bytes) -> None:
    for mtype in range(0, 14):
        _decode_all(_fix_len(bytes([0x20, mtype, 0, 0]) + tail))


@settings(max_examples=500)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 400),
)
def test_mutated_valid_messages(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, val in flips:
        data[pos % len(data)] = val
    _decode_all(bytes(data))
    _decode_all(bytes(data[: cut % (len(data) + 1)]))


@settings(max_examples=300)
@given(S.messages, st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 10_000))
def test_mutated_generated_messages(msg: object, pos: int, val: int, cut: int) -> None:
    data = bytearray(msg.encode())  # type: ignore[attr-defined]
    data[pos % len(data)] = val
    _decode_all(bytes(data))
    _decode_all(bytes(data[: cut % (len(data) + 1)]))
    _decode_all(bytes(data) + bytes([val]))
