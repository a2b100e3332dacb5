"""The data-plane core without sockets: golden bytes, replay, tamper, rekey without loss,
key derivation, and a fuzzed decoder (only :class:`Dropped` may escape)."""

from __future__ import annotations

import contextlib
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls.core import Tick
from gmpls.dataplane import events as E
from gmpls.dataplane.core import MAX_KEYS, DataplaneEnd, Dropped
from gmpls.dataplane.crypto import CipherKeyError, ReplayWindow, cipher_key
from gmpls.dataplane.frame import (
    ETHERTYPE,
    HEADER_LEN,
    TAG_LEN,
    Header,
    decode_header,
    eth_header,
    nonce,
)
from gmpls.errors import DecodeError, EncodeError

KEY0 = bytes(range(32))
KEY1 = bytes(range(100, 132))
FRAME = bytes.fromhex("ffffffffffff0200000000010806") + b"qkdnet-plaintext-marker" * 3


def pair(alg: int = 10, **kw: float) -> tuple[DataplaneEnd, DataplaneEnd]:
    head = DataplaneEnd(service_id="1", head=True, algorithm=alg, **kw)
    tail = DataplaneEnd(service_id="10.1.1.1:1", head=False, algorithm=alg, **kw)
    return head, tail


def keyed(alg: int = 10, key: bytes = KEY0, **kw: float) -> tuple[DataplaneEnd, DataplaneEnd]:
    head, tail = pair(alg, **kw)
    for end in (head, tail):
        end.handle(E.InstallKey(0, key), 0.0)
    return head, tail


def deliver(actions: list[E.Action], to: DataplaneEnd, now: float) -> None:
    for a in actions:
        if isinstance(a, E.Send):
            assert to.open(a.pdu) is None  # announcements deliver nothing


# --- the frame ----------------------------------------------------------------------


def test_header_golden_bytes() -> None:
    h = Header(direction=1, algorithm=12, key_index=0x01020304, rx_index=5, pn=0x1122334455667788)
    wire = h.encode()
    assert wire.hex() == "180c01020304000000051122334455667788"
    assert len(wire) == HEADER_LEN
    assert decode_header(wire + bytes(TAG_LEN)) == h
    a = Header(0, 10, 0, 0, 1, announce=True).encode()
    assert a.hex() == "140a00000000000000000000000000000001"


def test_eth_header_and_nonce() -> None:
    assert eth_header(b"\xff" * 6, bytes(6)).hex() == "ffffffffffff00000000000088b5"
    assert ETHERTYPE == 0x88B5
    assert nonce(0, 1).hex() == "000000000000000000000001"
    assert nonce(1, 1).hex() == "000000010000000000000001"
    with pytest.raises(EncodeError):
        eth_header(b"\x00", bytes(6))


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (Header(0, 10, 0, 0, 1).encode()[:10], "dataplane.length"),
        (bytes([0x20]) + Header(0, 10, 0, 0, 1).encode()[1:] + bytes(16), "dataplane.version"),
        (bytes([0x11]) + Header(0, 10, 0, 0, 1).encode()[1:] + bytes(16), "dataplane.flags"),
        (Header(0, 10, 0, 0, 1).encode()[:10] + bytes(8) + bytes(16), "dataplane.pn"),
    ],
)
def test_decoder_names_the_bad_field(bad: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode_header(bad)
    assert e.value.field == field


def test_encoder_refuses_out_of_range() -> None:
    for h in (Header(2, 10, 0, 0, 1), Header(0, 10, -1, 0, 1), Header(0, 10, 0, 0, 0)):
        with pytest.raises(EncodeError):
            h.encode()


def test_sealed_frame_golden_bytes_and_independent_decrypt() -> None:
    head, tail = keyed()
    pdu = head.seal(FRAME)
    hdr = pdu[:HEADER_LEN]
    # the first PN of key 0 went to the announcement: this frame is PN 2, D=0, AES-256-GCM
    assert hdr.hex() == "100a00000000000000000000000000000002"
    ct = AESGCM(KEY0).encrypt(bytes(4) + (2).to_bytes(8, "big"), FRAME, hdr)
    assert pdu[HEADER_LEN:] == ct
    assert len(pdu) == HEADER_LEN + len(FRAME) + TAG_LEN
    assert b"plaintext-marker" not in pdu
    assert tail.open(pdu) == FRAME
    assert tail.counters["frames_decrypted"] == 1
    assert head.counters["bytes_encrypted"] == len(FRAME)


@pytest.mark.parametrize("alg", [10, 11, 12])
def test_both_directions_every_algorithm(alg: int) -> None:
    head, tail = keyed(alg)
    for i in range(50):
        f = FRAME + bytes([i])
        assert tail.open(head.seal(f)) == f
        assert head.open(tail.seal(f)) == f


def test_directions_never_share_a_nonce() -> None:
    """Both directions start at PN 1 under one key: the D bit keeps the nonces apart, and a
    frame reflected back to its sender is refused."""
    head, tail = keyed()
    a, b = head.seal(FRAME), tail.seal(FRAME)
    assert a[2:] != b[2:] and a[10:18] == b[10:18]  # same PN, different ciphertext
    with pytest.raises(Dropped) as e:
        head.open(a)
    assert e.value.reason == "malformed"


# --- refusing frames --------------------------------------------------------------------


def test_replay_is_dropped_and_counted() -> None:
    head, tail = keyed()
    pdus = [head.seal(FRAME) for _ in range(5)]
    for p in pdus:
        tail.open(p)
    for p in (pdus[0], pdus[3]):
        with pytest.raises(Dropped) as e:
            tail.open(p)
        assert e.value.reason == "replays"
    assert tail.counters["replays"] == 2
    assert tail.counters["frames_decrypted"] == 5


def test_reordered_frames_inside_the_window_pass() -> None:
    head, tail = keyed()
    pdus = [head.seal(FRAME) for _ in range(20)]
    random.Random(4).shuffle(pdus)
    for p in pdus:
        assert tail.open(p) == FRAME


def test_replay_window_slides() -> None:
    w = ReplayWindow(8)
    for pn in (1, 2, 5):
        assert w.fresh(pn)
        w.accept(pn)
    assert not w.fresh(2) and w.fresh(3) and w.fresh(4)
    w.accept(20)
    assert not w.fresh(12) and w.fresh(13) and not w.fresh(20) and w.fresh(21)
    w.accept(1000)
    assert w.bits == 1 and not w.fresh(992) and w.fresh(993)


def test_flipped_bit_anywhere_is_an_auth_failure_and_never_moves_the_window() -> None:
    head, tail = keyed()
    pdu = head.seal(FRAME)
    for bit in range(0, len(pdu) * 8, 7):
        bad = bytearray(pdu)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(Dropped) as e:
            tail.open(bytes(bad))
        assert e.value.reason in ("auth_failures", "malformed", "unknown_key")
    assert tail.counters["auth_failures"] > 0
    assert tail.open(pdu) == FRAME  # the genuine frame still passes


def test_unknown_key_and_no_key() -> None:
    head, tail = pair()
    with pytest.raises(Dropped) as e:
        head.seal(FRAME)
    assert e.value.reason == "no_key" and head.counters["no_key"] == 1
    head.handle(E.InstallKey(0, KEY0), 0)
    with pytest.raises(Dropped) as e:
        tail.open(head.seal(FRAME))
    assert e.value.reason == "unknown_key"


def test_wrong_key_is_an_auth_failure() -> None:
    head, tail = pair()
    head.handle(E.InstallKey(0, KEY0), 0)
    tail.handle(E.InstallKey(0, KEY1), 0)
    with pytest.raises(Dropped) as e:
        tail.open(head.seal(FRAME))
    assert e.value.reason == "auth_failures"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_fuzzed_pdus_raise_only_dropped(data: bytes) -> None:
    _head, tail = keyed()
    with contextlib.suppress(Dropped):
        tail.open(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60), st.integers(0, 255))
def test_fuzzed_genuine_pdus_with_one_byte_changed(pos: int, value: int) -> None:
    head, tail = keyed()
    pdu = bytearray(head.seal(FRAME))
    changed = pdu[pos] != value
    pdu[pos] = value
    try:
        assert tail.open(bytes(pdu)) == FRAME and not changed
    except Dropped:
        assert changed


# --- keys ------------------------------------------------------------------------------


def test_cipher_key_derivation() -> None:
    assert cipher_key(10, KEY0, 3) == KEY0  # the right length: the key itself
    k128 = cipher_key(11, KEY0, 3)  # longer: HKDF-SHA256, bound to algorithm and index
    assert len(k128) == 16 and k128 != KEY0[:16] and k128 != cipher_key(11, KEY0, 4)
    assert len(cipher_key(10, KEY0 + KEY1, 0)) == 32
    with pytest.raises(CipherKeyError, match="too short"):
        cipher_key(10, KEY0[:16], 0)
    with pytest.raises(CipherKeyError, match="no data plane"):
        cipher_key(3, KEY0, 0)


def test_short_key_is_refused_clearly_and_counted() -> None:
    head, _ = pair()
    out = head.handle(E.InstallKey(0, bytes(8)), 0)
    assert head.tx is None and head.counters["key_errors"] == 1
    assert "too short" in head.error and isinstance(out[0], E.Log) and out[0].warning
    assert "00000000" not in repr(out)


def test_rekey_without_loss_both_ways_interleaved() -> None:
    """Key 1 reaches the head 30 ms before the tail; traffic flows both ways all along;
    nothing is lost, the old key retires after the grace period, both end on key 1."""
    head, tail = keyed(rx_grace=0.5, tx_fallback=0.5)
    t = 0.0
    lost = 0

    def exchange(now: float) -> None:
        nonlocal lost
        head.handle(Tick(), now)
        tail.handle(Tick(), now)
        for src, dst in ((head, tail), (tail, head)):
            try:
                assert dst.open(src.seal(FRAME)) == FRAME
            except Dropped:
                lost += 1

    for _ in range(10):
        t += 0.01
        exchange(t)
    deliver(head.handle(E.InstallKey(1, KEY1), t), tail, t)
    assert head.tx_index == 0  # the tail cannot receive key 1 yet
    for _ in range(3):
        t += 0.01
        exchange(t)
    deliver(tail.handle(E.InstallKey(1, KEY1), t), head, t)  # the tail's announcement
    assert head.tx_index == 1  # moved on the tail's receive index
    for _ in range(5):
        t += 0.01
        exchange(t)
    assert tail.tx_index == 1 and lost == 0
    assert head.counters["rekeys"] == 1 and tail.counters["rekeys"] == 1
    t += 0.6
    head.handle(Tick(), t)
    tail.handle(Tick(), t)
    assert sorted(head.keys) == [1] and sorted(tail.keys) == [1]


def test_frames_in_flight_under_the_old_key_pass_within_the_grace() -> None:
    head, tail = keyed()
    late = [head.seal(FRAME) for _ in range(3)]  # key 0, still on the wire
    deliver(head.handle(E.InstallKey(1, KEY1), 0.1), tail, 0.1)  # tail lacks key 1: dropped?
    deliver(tail.handle(E.InstallKey(1, KEY1), 0.1), head, 0.1)
    assert tail.open(head.seal(FRAME)) == FRAME  # key 1 now
    for p in late:
        assert tail.open(p) == FRAME
    tail.handle(Tick(), 0.11 + tail.rx_grace + 0.01)
    assert 0 not in tail.keys


def test_announcement_under_a_key_the_peer_lacks_is_unknown_key_not_loss() -> None:
    head, _tail = keyed()
    head.handle(E.InstallKey(1, KEY1), 0)
    head.handle(E.InstallKey(2, bytes(32)), 0)
    out = head.handle(E.InstallKey(3, bytes(range(1, 33))), 0)
    assert isinstance(out[0], E.Send) and decode_header(out[0].pdu).key_index == 0


def test_fallback_moves_the_sender_when_the_peer_is_silent() -> None:
    head, tail = keyed(tx_fallback=0.5)
    head.handle(E.InstallKey(1, KEY1), 1.0)  # the announcement is lost
    tail.handle(E.InstallKey(1, KEY1), 1.0)
    assert head.tx_index == 0 and head.next_timer() == pytest.approx(1.5)
    head.handle(Tick(), 1.5)
    assert head.tx_index == 1
    assert tail.open(head.seal(FRAME)) == FRAME


def test_at_most_max_keys_are_held() -> None:
    head, _ = keyed()
    for i in range(1, 10):
        head.handle(E.InstallKey(i, bytes([i]) * 32), 0)
    assert len(head.keys) <= MAX_KEYS and head.tx is not None and head.tx.index in head.keys


def test_stale_or_repeated_install_is_ignored() -> None:
    head, _ = keyed()
    head.handle(E.InstallKey(2, KEY1), 0)
    assert head.handle(E.InstallKey(1, KEY0), 0) == [] and 1 not in head.keys
    assert head.handle(E.InstallKey(2, KEY0), 0) == []


def test_traffic_is_reported_in_batches() -> None:
    head, tail = keyed(report_every=0.1)
    head.handle(Tick(), 1.0)
    tail.handle(Tick(), 1.0)
    for _ in range(4):
        tail.open(head.seal(FRAME))
    assert head.next_timer() == pytest.approx(1.1)
    assert head.handle(Tick(), 1.05) == []
    assert head.handle(Tick(), 1.1) == [E.Traffic(4 * len(FRAME))]
    assert tail.handle(Tick(), 1.2) == [E.Traffic(4 * len(FRAME))]
    assert head.handle(Tick(), 1.3) == [] and head.next_timer() is None


def test_stop_forgets_keys_and_flushes_traffic() -> None:
    head, tail = keyed()
    tail.open(head.seal(FRAME))
    assert head.handle(E.Stop(), 0.01) == [E.Traffic(len(FRAME))]
    assert head.keys == {} and head.tx is None
    with pytest.raises(Dropped):
        head.seal(FRAME)


def test_frames_work_at_the_time_of_the_last_control_event() -> None:
    """seal and open take no time: the shell ticks the core before each batch; a Tick
    never moves the core's time back."""
    head, tail = keyed(report_every=0.1)
    head.handle(Tick(), 5.0)
    head.handle(Tick(), 4.0)
    tail.open(head.seal(FRAME))
    assert head.next_timer() == pytest.approx(5.1)
    with pytest.raises(TypeError):
        head.handle(object(), 5.0)  # type: ignore[arg-type]


def test_status_shows_no_key_bytes() -> None:
    head, _ = keyed()
    s = head.status()
    assert s["key_index"] == 0 and s["rx_keys"] == [0]
    assert KEY0.hex() not in repr(s) and KEY0.hex() not in repr(head.keys)
