"""Random and mutated input never raises anything but DecodeError (h11-style fuzzing).

bench/fuzz_codecs.py runs the same kind of mutations a million times; these are quick.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.errors import DecodeError
from gmpls.rsvp import examples as ex
from gmpls.rsvp.message import Message, decode
from tests.support import rsvp_strategies as S

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


def _seeds() -> list[bytes]:
    from tests.support.rsvp_net import Net

    net = Net(hello_ms=1000)
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    net.delete("tn1", 1)
    return [m.encode() for _, _, m in net.sent]


SEEDS = _seeds()


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(8, 400), st.integers(0, 255)), max_size=4),
    st.sampled_from(["tn1", "tn2", "tn3", "tn4", "tn5"]),
    st.sampled_from(["10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5", "10.9.9.9"]),
    st.sampled_from([0.0, 1.0, 5.0, 31.0]),
)
def test_core_never_raises_on_mutated_messages(
    seed: bytes, flips: list[tuple[int, int]], node: str, src: str, later: float
) -> None:
    """Whatever arrives, the core answers with actions (h11-style: bad input is the
    remote's fault, never an exception), with an LSP up and after time passes."""
    from ipaddress import IPv4Address

    from gmpls.rsvp import events as E
    from tests.support.rsvp_net import Net

    net = Net(hello_ms=1000)
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    buf = bytearray(_fix_checksum_off(seed))
    for pos, val in flips:
        buf[pos % len(buf)] = val
    net.apply(node, net.cores[node].handle(E.Received(IPv4Address(src), bytes(buf)), net.now))
    net.run()
    net.advance(later)
    # invariant: a lambda is held on a link exactly when some LSP here uses it (no leak)
    from gmpls import ero

    for n, c in net.cores.items():
        used: dict[int, set[int]] = {i: set() for i in c.links}
        for p in c.psbs.values():
            for i, label in (
                (p.in_if, p.in_label),
                (p.out_if, p.out_label),
                (p.in_if, p.in_up_label),
                (p.out_if, p.out_up_label),
            ):
                if i is not None and label is not None:
                    used[i].add(ero.lambda_channel(label))
        for i, link in c.links.items():
            assert set(link.lambdas) - set(c.free_lambdas(i)) == used[i], (n, i)
