"""gmpls/wire.py: the 64-bit field the QKD codecs carry key IDs and sequence numbers in."""

from __future__ import annotations

import pytest

from gmpls.errors import DecodeError
from gmpls.wire import Reader, u64


def test_u64_round_trip_and_truncation() -> None:
    data = u64(0x0123456789ABCDEF) + u64(2**64 - 1)
    assert data[:8] == bytes.fromhex("0123456789abcdef")
    r = Reader(data, "t")
    assert (r.u64("a"), r.u64("b")) == (0x0123456789ABCDEF, 2**64 - 1) and r.at_end()
    with pytest.raises(DecodeError) as e:
        Reader(bytes(7), "t").u64("key_id")
    assert e.value.field == "t.key_id"
