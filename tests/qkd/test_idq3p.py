"""IDQ3P emulator: codec, key store, response cache, rate model (pure parts)."""

from __future__ import annotations

import pytest

from gmpls.errors import DecodeError
from gmpls.qkd import idq3p as codec
from idq3p_emulator import model
from idq3p_emulator.core import Idq3pServer
from idq3p_emulator.events import Addr, Datagram
from idq3p_emulator.store import (
    FileSource,
    IntervalSet,
    KeyStore,
    SeedSource,
    key_id,
    make_keyfile,
    parse_keyfile,
)

MSGS: list[codec.AnyMessage] = [
    codec.GetNextKey(1, 32, 10),
    codec.GetKeyById(2, 16, (0, key_id(1, 64), 5)),
    codec.StatusRequest(3, 32),
    codec.Keys(4, codec.Status.OK, 4, (codec.Key(7, b"abcd"), codec.Key(11, b"efgh"))),
    codec.Keys(5, codec.Status.INSUFFICIENT_KEY, 32),
    codec.StatusReply(6, codec.Status.OK, 32, 3, 800, 6_850_000, 1 << 25, 9),
    codec.Error(0xFFFFFFFF),
]


@pytest.mark.parametrize("msg", MSGS, ids=lambda m: type(m).__name__)
def test_round_trip(msg: codec.AnyMessage) -> None:
    assert codec.decode(codec.encode(msg)) == msg


def test_golden_get_next_key() -> None:
    assert codec.encode(codec.GetNextKey(0x01020304, 32, 2)) == bytes.fromhex(
        "495101010102030400200002"
    )


@pytest.mark.parametrize(
    "data, field",
    [
        (b"IQ\x01", "idq3p.type"),
        (b"XX\x01\x01\x00\x00\x00\x01\x00\x20\x00\x01", "idq3p.magic"),
        (b"IQ\x02\x01\x00\x00\x00\x01\x00\x20\x00\x01", "idq3p.version"),
        (b"IQ\x01\x07\x00\x00\x00\x01", "idq3p.type"),
        (b"IQ\x01\x01\x00\x00\x00\x01\x00\x20\x00\x01\x00", "idq3p.GET_NEXT_KEY.end"),
        (b"IQ\x01\x01\x00\x00\x00\x01\x00\x00\x00\x01", "idq3p.GET_NEXT_KEY.key_bytes"),
        (b"IQ\x01\x02\x00\x00\x00\x01\x00\x20\x00\x02" + bytes(8), "idq3p.GET_KEY_BY_ID.key_id[1]"),
    ],
)
def test_malformed_names_field(data: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as e:
        codec.decode(data)
    assert e.value.field == field


def test_every_truncation_is_a_decode_error() -> None:
    for msg in MSGS:
        data = codec.encode(msg)
        for n in range(len(data)):
            with pytest.raises(DecodeError):
                codec.decode(data[:n])


def test_key_repr_hides_material() -> None:
    assert "abcd" not in repr(codec.Key(1, b"abcd")) and "61626364" not in repr(
        codec.Key(1, b"abcd")
    )


# --- key store ---------------------------------------------------------------------------
def test_rate_and_buffer_with_injected_clock() -> None:
    s = KeyStore(SeedSource(b"s"), 0, rate_bps=2 * 256 * 8, buffer_bits=2 * 1024 * 8, start=10.0)
    assert s.next_keys(32, 1, 10.0) == []  # empty at start
    assert len(s.next_keys(32, 100, 11.0)) == 8  # 256 bytes/s of own stream in 1 s
    assert s.next_keys(32, 1, 11.0) == []
    # after a long time the buffer caps what is there: 1024 bytes = 32 keys
    assert len(s.next_keys(32, 1000, 1000.0)) == 32
    assert s.status(1000.0).bits_available == 0


def test_pair_holds_the_same_keys_and_a_delivered_key_is_deleted() -> None:
    src = SeedSource(b"shared")
    a = KeyStore(src, 0, 1e6, 1 << 20, 0.0)
    b = KeyStore(SeedSource(b"shared"), 1, 1e6, 1 << 20, 0.0)
    keys = a.next_keys(32, 5, 1.0)
    assert len({k for _, k in keys}) == 5
    for kid, material in keys:
        assert b.key_by_id(kid, 32, 1.0) == material
        assert b.key_by_id(kid, 32, 1.0) is None  # deleted once delivered
    # own keys are never handed out by ID, and the streams of the two devices differ
    assert a.key_by_id(keys[0][0], 32, 1.0) is None
    assert b.next_keys(32, 1, 1.0)[0][1] not in {k for _, k in keys}


def test_overlapping_by_id_requests_are_refused() -> None:
    b = KeyStore(SeedSource(b"x"), 1, 1e6, 1 << 20, 0.0)
    assert b.key_by_id(key_id(0, 0), 32, 1.0) is not None
    assert b.key_by_id(key_id(0, 16), 32, 1.0) is None  # shares bytes 16..31


def test_key_file_is_finite() -> None:
    data = make_keyfile(bytes(range(256)) * 2)
    assert parse_keyfile(data) == bytes(range(256)) * 2
    a = KeyStore(FileSource.from_file_bytes(data), 0, 1e9, 1 << 30, 0.0)
    assert len(a.next_keys(32, 100, 5.0)) == 8  # 256 bytes per stream
    assert a.next_keys(32, 1, 50.0) == []
    with pytest.raises(ValueError):
        parse_keyfile(b"IDQ3PKEY" + (10).to_bytes(8, "big") + b"short")


def test_interval_set_merges() -> None:
    s = IntervalSet()
    s.add(10, 20)
    s.add(30, 40)
    s.add(20, 30)
    assert len(s) == 1
    assert s.overlaps(15, 16) and s.overlaps(39, 50) and not s.overlaps(40, 50)
    assert not s.overlaps(0, 10)


def answer(srv: Idq3pServer, data: bytes, addr: Addr, now: float) -> bytes | None:
    """The server's one answer to ``data`` from ``addr`` (None: no answer)."""
    actions = srv.handle(Datagram(data, addr), now)
    assert len(actions) <= 1 and all(a.addr == addr for a in actions)
    return actions[0].data if actions else None


def test_server_answers_a_repeat_from_its_cache() -> None:
    srv = Idq3pServer(KeyStore(SeedSource(b"s"), 0, 1e6, 1 << 20, 0.0))
    req = codec.encode(codec.GetNextKey(9, 32, 3))
    first = answer(srv, req, ("10.0.0.1", 1), 1.0)
    again = answer(srv, req, ("10.0.0.1", 1), 1.0)
    assert first == again
    assert srv.counters["duplicates"] == 1 and srv.store.delivered_keys == 3
    other = answer(srv, req, ("10.0.0.2", 1), 1.0)  # another client, same ID: new keys
    assert other != first and srv.store.delivered_keys == 6


def test_server_answers_insufficient_and_bad_requests() -> None:
    srv = Idq3pServer(KeyStore(SeedSource(b"s"), 0, 0.0, 1 << 20, 0.0))
    r = codec.decode(answer(srv, codec.encode(codec.GetNextKey(1, 32)), ("a", 1), 5.0) or b"")
    assert isinstance(r, codec.Keys) and r.status == codec.Status.INSUFFICIENT_KEY
    bad = answer(srv, b"IQ\x01\x01\x00\x00\x00\x02\x00", ("a", 1), 5.0)
    assert codec.decode(bad or b"") == codec.Error(2)
    assert answer(srv, b"garbage", ("a", 1), 5.0) is None
    assert srv.counters["malformed"] == 2


def test_status_reports_keys_bits_rate() -> None:
    srv = Idq3pServer(KeyStore(SeedSource(b"s"), 0, 8000, 1 << 20, 0.0))
    r = codec.decode(answer(srv, codec.encode(codec.StatusRequest(1, 32)), ("a", 1), 2.0) or b"")
    assert isinstance(r, codec.StatusReply)
    assert (r.keys_available, r.bits_available, r.rate_bps) == (31, 8000, 4000)


# --- rate model ----------------------------------------------------------------------------
def test_model_is_calibrated_on_the_published_point() -> None:
    _label, km, db, rate = model.PUBLISHED[0]
    assert model.rate_for(km, db) == pytest.approx(rate, rel=1e-9)


def test_model_falls_with_distance_and_reaches_zero() -> None:
    rates = [model.rate_for(km) for km in (0, 10, 25, 50, 100, 200)]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0] / 1000
    assert model.rate_for(400) == 0.0
    assert model.h2(0.5) == pytest.approx(1.0) and model.h2(0) == 0.0


def test_model_second_published_point_within_factor_two() -> None:
    # documented in docs/qkd-rate-model.md: one-parameter fit, older detector generation
    _, km, db, rate = model.PUBLISHED[1]
    assert rate / 2 < model.rate_for(km, db) < rate * 2
