"""ETSI 004 codec, sync channel (HMAC, replay) and the proxy core wired in memory."""

from __future__ import annotations

import hashlib
import hmac
import random
from ipaddress import IPv4Address

import pytest

from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import sync
from gmpls.qkd.etsi004 import Status
from qkd_proxy.events import Channel, Datagram, Send
from tests.support.qkd_net import (
    B_SYNC,
    TN1,
    TN1_QA,
    TN5,
    TN5_QB,
    Net,
    file_source,
    fingerprint,
)

H = bytes(range(64))
ETSI_MSGS: list[etsi.Message] = [
    etsi.Open(1, IPv4Address("10.1.1.5"), etsi.QoS(32, 1000, 2, 500)),
    etsi.Open(2, IPv4Address("10.1.1.1"), etsi.QoS(), H),
    etsi.ConnectNonblock(3, H),
    etsi.ConnectBlocking(4, H, 2500),
    etsi.GetKey(5, H),
    etsi.Close(6, H),
    etsi.OpenReply(7, Status.SUCCESSFUL, H, etsi.QoS(32)),
    etsi.ConnectNonblockReply(8, Status.PEER_NOT_CONNECTED, H),
    etsi.ConnectBlockingReply(9, Status.TIMEOUT, H),
    etsi.GetKeyReply(10, Status.SUCCESSFUL, 41, bytes(32)),
    etsi.GetKeyReply(11, Status.INSUFFICIENT_KEY),
    etsi.CloseReply(12, Status.SUCCESSFUL, H),
]


@pytest.mark.parametrize("msg", ETSI_MSGS, ids=lambda m: type(m).__name__)
def test_etsi_round_trip(msg: etsi.Message) -> None:
    data = etsi.encode(msg)
    assert etsi.decode(data) == msg
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            etsi.decode(data[:n])
    with pytest.raises(DecodeError):
        etsi.decode(data + b"\x00")


def test_etsi_golden_get_key() -> None:
    assert etsi.encode(etsi.GetKey(0x0A0B0C0D, H)) == bytes.fromhex("010400000a0b0c0d") + H


def test_etsi_unknown_status_and_type() -> None:
    bad = bytearray(etsi.encode(etsi.CloseReply(1, Status.SUCCESSFUL, H)))
    bad[8:12] = (99).to_bytes(4, "big")
    with pytest.raises(DecodeError) as e:
        etsi.decode(bytes(bad))
    assert e.value.field == "etsi004.CLOSE_REPLY.status"
    with pytest.raises(DecodeError) as e:
        etsi.decode(b"\x01\x09\x00\x00\x00\x00\x00\x01")
    assert e.value.field == "etsi004.type"


def test_get_key_reply_repr_hides_key() -> None:
    assert "aa" * 4 not in repr(etsi.GetKeyReply(1, Status.SUCCESSFUL, 0, b"\xaa" * 32))


# --- sync channel --------------------------------------------------------------------------
SECRET = b"k" * 32
SYNC_MSGS = [
    sync.Create(1, H, IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5"), 32),
    sync.CreateResp(2, H, sync.Result.JOINED),
    sync.Opened(3, H),
    sync.Bind(4, H, 64, 32, (1, 2, 1 << 63)),
    sync.Alloc(5, H, 7),
    sync.AllocResp(6, H, sync.Result.OK, 7, 32, (9,)),
    sync.Close(7, H),
    sync.Ack(8, H, sync.Result.UNKNOWN_HANDLE),
    sync.Hello(),
]


def _pair(epoch_a: int = 1, epoch_b: int = 2) -> tuple[sync.SyncCodec, sync.SyncCodec]:
    """The two ends of a channel, each already knowing the other's epoch."""
    a = sync.SyncCodec(SECRET, "etsiA", "etsiB", epoch_a)
    b = sync.SyncCodec(SECRET, "etsiB", "etsiA", epoch_b)
    a.peer_epoch, b.peer_epoch = epoch_b, epoch_a
    return a, b


@pytest.mark.parametrize("msg", SYNC_MSGS, ids=lambda m: type(m).__name__)
def test_sync_round_trip(msg: sync.SyncMessage) -> None:
    tx, rx = _pair()
    assert rx.open(tx.seal(msg)) == msg


def test_sync_golden_header_and_direction_keys() -> None:
    tx, _ = _pair(0x0102030405060708, 0x1112131415161718)
    frame = tx.seal(sync.Opened(0x0A0B0C0D, H))
    assert frame[:28] == bytes.fromhex("51530203010203040506070811121314151617180000000000000001")
    assert frame[28:-32] == bytes.fromhex("0a0b0c0d") + H
    # RFC 5869 HKDF-SHA256 of the secret, salt "qkdnet sync v2", info "sync" and the names
    ab = sync.direction_key(SECRET, "etsiA", "etsiB")
    assert ab != sync.direction_key(SECRET, "etsiB", "etsiA")
    assert ab != sync.direction_key(SECRET, "etsiA", "etsiC")
    assert frame[-32:] == hmac.new(ab, frame[:-32], hashlib.sha256).digest()


def test_sync_reflected_frame_fails_authentication() -> None:
    a, b = _pair()
    frame = a.seal(sync.Opened(1, H))
    with pytest.raises(sync.AuthError):
        a.open(frame)  # sent back to its sender: the key of the other direction
    assert a.counters["bad_mac"] == 1 and a.counters["accepted"] == 0
    assert b.open(frame) == sync.Opened(1, H)
    assert a.open(b.seal(sync.Ack(1, H))) == sync.Ack(1, H)  # a still hears b


def test_sync_forged_frames_are_rejected_and_counted() -> None:
    tx, rx = _pair()
    frame = tx.seal(sync.Opened(1, H))
    for i in range(len(frame)):
        forged = bytearray(frame)
        forged[i] ^= 0x01
        with pytest.raises(sync.AuthError):
            rx.open(bytes(forged))
    other = sync.SyncCodec(b"x" * 32, "etsiA", "etsiB", 1)  # wrong secret
    with pytest.raises(sync.AuthError):
        rx.open(other.seal(sync.Opened(1, H), 2))
    with pytest.raises(DecodeError):
        rx.open(b"short")
    assert rx.counters["bad_mac"] == len(frame) + 1 and rx.counters["malformed"] == 1
    assert rx.open(frame) == sync.Opened(1, H)  # the genuine one still passes


def test_sync_replays_are_rejected_and_counted() -> None:
    tx, rx = _pair()
    frames = [tx.seal(sync.Opened(i, H)) for i in range(10)]
    for f in reversed(frames):  # out of order is fine inside the window
        rx.open(f)
    for f in frames:
        with pytest.raises(sync.ReplayError):
            rx.open(f)
    assert rx.counters["replayed"] == 10 and rx.counters["accepted"] == 10


def test_sync_window_drops_too_old() -> None:
    tx, rx = _pair()
    old = tx.seal(sync.Opened(0, H))
    for i in range(sync.ReplayWindow().size + 1):
        rx.open(tx.seal(sync.Opened(i, H)))
    with pytest.raises(sync.ReplayError):
        rx.open(old)  # never seen, but older than the window


def test_sync_restarted_sender_any_epoch_is_accepted_after_a_hello() -> None:
    a, b = _pair(epoch_a=50, epoch_b=7)
    b.open(a.seal(sync.Opened(1, H)))
    # a restarts with a lower epoch (random epochs have no order); it has not heard b yet
    a2 = sync.SyncCodec(SECRET, "etsiA", "etsiB", 3)
    with pytest.raises(sync.StaleError) as e:
        b.open(a2.seal(sync.Opened(2, H)))
    assert e.value.sender_epoch == 3 and b.counters["stale"] == 1
    assert a2.open(b.seal(sync.Hello(), e.value.sender_epoch)) == sync.Hello()
    assert a2.peer_epoch == 7
    assert b.open(a2.seal(sync.Opened(3, H))) == sync.Opened(3, H)  # counter 2 of a new life
    assert b.peer_epoch == 3
    assert b.open(a.seal(sync.Opened(4, H))) == sync.Opened(4, H)  # a late frame of a's old life
    assert b.peer_epoch == 3  # does not turn b back to the old life


def test_sync_restarted_receiver_rejects_captured_frames() -> None:
    a, b = _pair(epoch_a=5, epoch_b=9)
    captured = [a.seal(sync.Opened(i, H)) for i in range(5)]
    for f in captured:
        b.open(f)
    b2 = sync.SyncCodec(SECRET, "etsiB", "etsiA", 10)  # restarted: a new epoch
    for f in captured:
        with pytest.raises(sync.StaleError):
            b2.open(f)
    assert b2.counters["stale"] == 5 and b2.counters["accepted"] == 0


def test_key_bytes_never_cross_the_sync_channel() -> None:
    net = Net()
    a1, b1 = (TN1_QA, 1000), (TN5_QB, 2000)
    h = _open(net, a1)
    keys = [_get(net, "A", a1, h, 100 + i)[2] for i in range(50)]
    assert _open(net, b1, h, side="B") == h
    keys += [_get(net, "B", b1, h, 100 + i)[2] for i in range(60)]
    sync_bytes = b"".join(d for ch, d in net.wire if ch is Channel.SYNC)
    assert sync_bytes and not any(k in sync_bytes for k in keys)


# --- proxy core, wired in memory -------------------------------------------------------------
RID = iter(range(1, 1 << 30))


def _open(
    net: Net,
    addr: tuple[str, int],
    handle: bytes = etsi.ZERO_HANDLE,
    side: str = "A",
    dest: IPv4Address | None = None,
    length: int = 32,
    expect: Status = Status.SUCCESSFUL,
) -> bytes:
    dest = dest or (TN5 if side == "A" else TN1)
    r = net.call(side, addr, etsi.Open(next(RID), dest, etsi.QoS(length), handle))
    assert isinstance(r, etsi.OpenReply)
    assert r.status == expect, r
    return r.key_handle


def _get(net: Net, side: str, addr: tuple[str, int], h: bytes, rid: int | None = None):
    r = net.call(side, addr, etsi.GetKey(rid if rid is not None else next(RID), h))
    assert isinstance(r, etsi.GetKeyReply)
    return r.status, r.index, r.key


A1, B1 = (TN1_QA, 1000), (TN5_QB, 2000)


def test_session_lifecycle_and_connect_statuses() -> None:
    net = Net()
    h = _open(net, A1)
    assert h != etsi.ZERO_HANDLE and len(h) == 64
    r = net.call("A", A1, etsi.ConnectNonblock(next(RID), h))
    assert r.status == Status.PEER_NOT_CONNECTED
    r = net.call("A", A1, etsi.ConnectBlocking(next(RID), h, 100))
    assert r.status == Status.TIMEOUT
    # a blocking connect is answered when the peer application opens
    rid = next(RID)
    net.sae_send("A", A1, etsi.ConnectBlocking(rid, h, 5000))
    net.sim.run(0.01)
    _open(net, B1, h, side="B")
    net.sim.run(0.05)
    (answer,) = [m for m in net.inbox[A1] if m.request_id == rid]
    assert answer.status == Status.SUCCESSFUL
    assert net.call("B", B1, etsi.ConnectNonblock(next(RID), h)).status == Status.SUCCESSFUL
    assert net.call("A", A1, etsi.Close(next(RID), h)).status == Status.SUCCESSFUL
    assert net.call("B", B1, etsi.Close(next(RID), h)).status == Status.SUCCESSFUL
    net.sim.run(1)
    assert h not in net.proxy["A"].sessions and h not in net.proxy["B"].sessions
    assert _get(net, "A", A1, h)[0] == Status.NO_QKD_CONNECTION


def test_index_binding_same_keys_same_order_either_side_first() -> None:
    net = Net()
    h = _open(net, A1)
    assert _open(net, B1, h, side="B") == h
    got: dict[str, list[tuple[int, str]]] = {"A": [], "B": []}
    order = ["B"] * 70 + ["A"] * 150 + ["B"] * 80  # the responder runs ahead first
    for side in order:
        st, idx, key = _get(net, side, A1 if side == "A" else B1, h)
        assert st == Status.SUCCESSFUL
        got[side].append((idx, fingerprint(key)))
    assert [i for i, _ in got["A"]] == list(range(150))
    assert got["A"] == got["B"][:150]


def test_an_alloc_repeated_after_its_indexes_were_pruned_is_answered() -> None:
    """The responder's Alloc of an index it lacked, sent again because the answer was late
    (a loaded machine), can reach the opener after both ends are done with that index and
    the opener has forgotten its binding: the answer starts at the first index the opener
    still holds (the responder installs only what it lacks), and nothing raises (it raised
    KeyError in the opener's core, found by 200 setups at once)."""
    net = Net()
    h = _open(net, A1)
    assert _open(net, B1, h, side="B") == h
    for _ in range(5):
        assert _get(net, "A", A1, h)[0] == Status.SUCCESSFUL
        assert _get(net, "B", B1, h)[0] == Status.SUCCESSFUL
    a = net.proxy["A"]
    s = a.sessions[h]
    assert s.master and 0 < s.pruned_upto < s.bound_upto and 0 not in s.bindings
    sent: list[sync.SyncMessage] = []
    send = a._sync_send
    a._sync_send = lambda m: (sent.append(m), send(m))[1]  # type: ignore[method-assign]
    net.inject("A", Channel.SYNC, net.proxy["B"].sync.seal(sync.Alloc(4242, h, 0)), B_SYNC)
    start = s.pruned_upto
    ids = tuple(s.bindings[i] for i in range(start, s.bound_upto))
    assert sent == [sync.AllocResp(4242, h, sync.Result.OK, start, 32, ids)]
    net.sim.run(0.1)
    assert _get(net, "B", B1, h)[1] == 5  # the responder goes on where it was


def test_duplicate_request_is_answered_from_cache_without_a_second_key() -> None:
    net = Net()
    h = _open(net, A1)
    first = _get(net, "A", A1, h, rid=777)
    again = _get(net, "A", A1, h, rid=777)
    assert first == again and first[1] == 0
    assert _get(net, "A", A1, h)[1] == 1  # no gap
    assert net.proxy["A"].counters["north_duplicates"] >= 1
    # the same request ID from another port of the same host is another request
    assert _get(net, "A", (TN1_QA, 1001), h, rid=777)[1] == 2


def test_only_the_opener_and_the_named_destination_may_use_a_handle() -> None:
    net = Net()
    h = _open(net, A1)
    # an address of tn1 that did not open the handle: status 5 is OPEN's alone (V1.1.1)
    other = ("10.1.1.1", 1000)
    assert _get(net, "A", other, h)[0] == Status.NO_QKD_CONNECTION
    assert net.call("A", other, etsi.Close(next(RID), h)).status == Status.NO_QKD_CONNECTION
    _open(net, other, h, expect=Status.HANDLE_IN_USE)
    # an address the proxy does not serve: status 4 to anything
    intruder = ("10.2.1.99", 1000)
    assert _get(net, "A", intruder, h)[0] == Status.NO_QKD_CONNECTION
    _open(net, intruder, h, expect=Status.NO_QKD_CONNECTION)
    # at the peer, only an address of tn5 (the destination) may join
    _open(net, ("10.2.2.77", 5), h, side="B", expect=Status.NO_QKD_CONNECTION)
    _open(net, B1, h, side="B", dest=IPv4Address("10.1.1.3"), expect=Status.NO_QKD_CONNECTION)
    _open(net, B1, h, side="B")
    assert _get(net, "B", ("10.1.1.5", 5), h)[0] == Status.NO_QKD_CONNECTION
    assert _get(net, "A", A1, h)[:2] == (Status.SUCCESSFUL, 0)  # the refusals cost nothing
    assert net.proxy["A"].counters["refused"] == 5


def test_no_qkd_connection_qos_and_unknown_handle() -> None:
    net = Net()
    _open(net, A1, dest=IPv4Address("10.1.1.3"), expect=Status.NO_QKD_CONNECTION)
    _open(net, A1, dest=TN1, expect=Status.NO_QKD_CONNECTION)  # not across the link
    _open(net, A1, length=4096, expect=Status.NO_QKD_CONNECTION)  # V1.1.1 has no 7
    assert _get(net, "A", A1, bytes([9]) * 64)[0] == Status.NO_QKD_CONNECTION


def test_peer_proxy_down_gives_no_qkd_connection() -> None:
    net = Net(loss=1.0)
    r = _open_lossy(net)
    assert r is not None and r.status == Status.NO_QKD_CONNECTION


def _open_lossy(net: Net) -> etsi.OpenReply | None:
    # with every datagram lost the SAE hears nothing; the core still cleans up
    rid = next(RID)
    net.proxy["A"].handle(
        Datagram(Channel.NORTH, etsi.encode(etsi.Open(rid, TN5, etsi.QoS(32))), A1), 0.0
    )
    actions = net.proxy["A"].handle(Tick(), 100.0)
    assert not net.proxy["A"].sessions
    replies = [
        etsi.decode(a.data) for a in actions if isinstance(a, Send) and a.channel is Channel.NORTH
    ]
    return replies[0] if replies else None  # type: ignore[return-value]


def test_key_exhaustion_returns_insufficient_key_at_both_ends() -> None:
    net = Net(source=file_source(2 * 32 * 40))  # 40 keys per stream
    h = _open(net, A1)
    _open(net, B1, h, side="B")
    a = [_get(net, "A", A1, h) for _ in range(41)]
    assert [s for s, _, _ in a[:40]] == [Status.SUCCESSFUL] * 40
    assert a[40][0] == Status.INSUFFICIENT_KEY
    b = [_get(net, "B", B1, h) for _ in range(41)]
    assert [fingerprint(k) for _, _, k in b[:40]] == [fingerprint(k) for _, _, k in a[:40]]
    assert b[40][0] == Status.INSUFFICIENT_KEY
    # and it says so again, without skipping an index
    assert _get(net, "A", A1, h)[0] == Status.INSUFFICIENT_KEY


def test_peer_closed_before_binding_gives_get_key_peer_not_connected() -> None:
    net = Net()
    h = _open(net, A1)
    _open(net, B1, h, side="B")
    assert net.call("A", A1, etsi.Close(next(RID), h)).status == Status.SUCCESSFUL
    net.sim.run(0.5)
    # B already holds the first bound block (the BIND came with A's first keys: none yet)
    st = _get(net, "B", B1, h)[0]
    assert st == Status.GET_KEY_PEER_NOT_CONNECTED


@pytest.mark.parametrize("seed", [1, 2])
def test_thousand_keys_match_with_twenty_percent_loss(seed: int) -> None:
    net = Net(loss=0.2, seed=seed)
    h = _open(net, A1)
    _open(net, B1, h, side="B")
    a = [_get(net, "A", A1, h) for _ in range(1000)]
    b = [_get(net, "B", B1, h) for _ in range(1000)]
    assert [i for _, i, _ in a] == list(range(1000)) == [i for _, i, _ in b]
    assert [k for _, _, k in a] == [k for _, _, k in b]
    assert len({k for _, _, k in a}) == 1000


def test_simultaneous_open_of_one_chosen_handle() -> None:
    net = Net()
    h = bytes([7]) * 64
    ra, rb = next(RID), next(RID)
    net.sae_send("A", A1, etsi.Open(ra, TN5, etsi.QoS(32), h))
    net.sae_send("B", B1, etsi.Open(rb, TN1, etsi.QoS(32), h))
    net.sim.run(0.5)
    assert [m.status for m in net.inbox[A1]] == [Status.SUCCESSFUL]
    assert [m.status for m in net.inbox[B1]] == [Status.SUCCESSFUL]
    assert net.proxy["A"].sessions[h].master != net.proxy["B"].sessions[h].master
    assert [_get(net, "A", A1, h)[2] for _ in range(5)] == [
        _get(net, "B", B1, h)[2] for _ in range(5)
    ]


def test_garbage_on_every_channel_never_raises() -> None:
    net = Net()
    h = _open(net, A1)
    rng = random.Random(3)
    core = net.proxy["A"]
    samples = [etsi.encode(m) for m in ETSI_MSGS] + [b"", b"\x01", bytes(200)]
    for _ in range(2000):
        base = bytearray(rng.choice(samples))
        for _ in range(rng.randint(0, 4)):
            if base:
                base[rng.randrange(len(base))] = rng.randrange(256)
        ch = rng.choice([Channel.NORTH, Channel.SYNC, Channel.SOUTH])  # a link core's
        src = {
            Channel.NORTH: A1,
            Channel.SYNC: ("10.11.1.15", 5626),
            Channel.SOUTH: ("10.11.2.2", 5323),
        }
        core.handle(Datagram(ch, bytes(base), src[ch]), net.now)
    assert core.sync.counters["bad_mac"] > 0
    assert _get(net, "A", A1, h)[0] == Status.SUCCESSFUL


def test_device_unreachable_gives_no_qkd_connection_then_recovers_without_gap() -> None:
    net = Net()
    h = _open(net, A1)
    _open(net, B1, h, side="B")
    net.device_down.add("B")  # B's IDQ3P box cannot be reached
    a = [_get(net, "A", A1, h) for _ in range(3)]  # the BIND reaches B, its fetch fails
    assert _get(net, "B", B1, h)[0] == Status.NO_QKD_CONNECTION
    net.device_down.clear()
    b = [_get(net, "B", B1, h) for _ in range(3)]
    assert [(i, k) for _, i, k in b] == [(i, k) for _, i, k in a]


def test_sync_keeps_windows_for_the_last_peer_epochs_only() -> None:
    _, b = _pair(epoch_a=1, epoch_b=9)
    lives = [sync.SyncCodec(SECRET, "etsiA", "etsiB", e) for e in range(100, 100 + 10)]
    frames = [a.seal(sync.Opened(1, H), 9) for a in lives]
    for f in frames:  # ten restarts of the peer during one life of b
        b.open(f)
    assert list(b.windows) == [a.epoch for a in lives[-sync.MAX_PEER_EPOCHS :]]
    assert b.peer_epoch == lives[-1].epoch
    with pytest.raises(sync.ReplayError):  # a remembered life's window still holds
        b.open(frames[-2])
    assert b.peer_epoch == lives[-1].epoch
