"""Forged, reflected and replayed input on the proxy's sync and device channels, and
restarts, on the pure cores wired in memory (tests/support/qkd_net.py): each is dropped
and counted, and the channel keeps working (docs/etsi004.md §Sync channel, §Southbound)."""

from __future__ import annotations

from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd.etsi004 import Status
from idq3p_emulator.events import Datagram
from qkd_proxy.events import Channel, Log
from tests.support.qkd_net import (
    A_SOUTH,
    A_SYNC,
    B_SYNC,
    IDQ_A,
    TN1,
    TN1_QA,
    TN5,
    TN5_QB,
    Net,
    fingerprint,
)

A1, B1 = (TN1_QA, 1000), (TN5_QB, 2000)
RID = iter(range(1, 1 << 30))


def _session(net: Net, n: int = 5) -> list[str]:
    """Open a session at both ends, take ``n`` keys at each; the fingerprints (equal)."""
    ra = net.call("A", A1, etsi.Open(next(RID), TN5, etsi.QoS(32)))
    assert isinstance(ra, etsi.OpenReply) and ra.status == Status.SUCCESSFUL, ra
    h = ra.key_handle
    rb = net.call("B", B1, etsi.Open(next(RID), TN1, etsi.QoS(32), h))
    assert rb.status == Status.SUCCESSFUL, rb
    out = {}
    for side, addr in (("A", A1), ("B", B1)):
        got = [net.call(side, addr, etsi.GetKey(next(RID), h)) for _ in range(n)]
        assert all(isinstance(g, etsi.GetKeyReply) and g.status == 0 for g in got), got
        out[side] = [(g.index, fingerprint(g.key)) for g in got]  # type: ignore[union-attr]
    assert out["A"] == out["B"]
    return [f for _, f in out["A"]]


def _sent(net: Net, mark: int, channel: Channel = Channel.SYNC) -> list[bytes]:
    return [d for ch, d in net.wire[mark:] if ch is channel]


def test_reflected_sync_frame_fails_authentication_and_the_channel_keeps_working() -> None:
    net = Net()
    mark = len(net.wire)
    _session(net)
    a_frames = _sent(net, mark)  # both ends' frames; A's own are the ones A sealed
    a = net.proxy["A"]
    accepted = a.sync.counters["accepted"]
    for f in a_frames:  # every frame on the wire, sent back to A as if from B
        net.inject("A", Channel.SYNC, f, B_SYNC)
    c = a.all_counters()
    # A's own frames fail A's receiving key; B's were already seen (replays)
    assert c["sync_bad_mac"] + c["sync_replayed"] == len(a_frames)
    assert c["sync_bad_mac"] > 0 and c["sync_accepted"] == accepted
    _session(net)  # later frames of B are still accepted


def test_sync_frames_from_another_address_or_port_are_dropped_and_counted() -> None:
    net = Net()
    mark = len(net.wire)
    _session(net)
    frames = _sent(net, mark)
    a = net.proxy["A"]
    before = a.sync.counters["accepted"]
    for f in frames:
        net.inject(
            "A", Channel.SYNC, f, (B_SYNC[0], B_SYNC[1] + 1)
        )  # the peer's host, another port
        net.inject("A", Channel.SYNC, f, ("10.11.1.99", B_SYNC[1]))  # another host
    assert a.counters["sync_foreign"] == 2 * len(frames)
    assert a.sync.counters["accepted"] == before  # not even opened
    _session(net)


def test_restarted_receiver_rejects_captured_frames_and_keeps_working() -> None:
    net = Net()
    mark = len(net.wire)
    _session(net)
    captured = _sent(net, mark)  # a capture of the sync domain (both directions)
    net.restart("B", seed=99)
    net.sim.run(0.05)  # B greets A with its new epoch
    b = net.proxy["B"]
    mark = len(net.wire)
    for f in captured:  # replayed from A's sync address: made for B's old life
        net.inject("B", Channel.SYNC, f, A_SYNC)
    # each stale frame may be answered with a HELLO, but at most one per sync_rto
    assert len(_sent(net, mark)) <= 1
    c = b.all_counters()
    assert c["sync_stale"] + c["sync_bad_mac"] == len(captured)  # B's own frames: bad_mac
    assert c["sync_stale"] > 0 and not b.sessions  # no captured CREATE took effect
    _session(net)


def test_proxy_restarted_at_once_is_accepted_by_its_peer() -> None:
    # a restart in the same second (or after the clock stepped back): only the core's
    # random source is new, the config (and any wall clock) is the same
    net = Net()
    first = _session(net)
    net.restart("A", seed=5)
    second = _session(net)  # A's frames are accepted: it greeted B with a new epoch
    assert not set(first) & set(second)
    b = net.proxy["B"]
    assert b.sync.counters["replayed"] == 0 and len(b.sync.windows) == 2
    assert any(isinstance(x, Log) and x.event == "sync peer epoch" for x in net.logs)


def test_forged_keys_reply_is_dropped_and_counted() -> None:
    net = Net()
    net.device_down.add("A")  # A's requests get no answer from its device for now
    ra = net.call("A", A1, etsi.Open(next(RID), TN5, etsi.QoS(32)))
    h = ra.key_handle
    rb = net.call("B", B1, etsi.Open(next(RID), TN1, etsi.QoS(32), h))
    assert ra.status == rb.status == Status.SUCCESSFUL
    first = etsi.GetKey(next(RID), h)
    net.sae_send("A", A1, first)  # keys are drawn from the device when asked for
    net.sim.run(0.05)
    assert net.proxy["A"].south_tx  # A waits for its device's keys
    forged_key = b"\x66" * 32
    for rid in range(1, 201):  # request IDs one would guess, keys one chose
        reply = idq.Keys(rid, idq.Status.OK, 32, tuple(idq.Key(i, forged_key) for i in range(64)))
        data = idq.encode(reply)
        net.inject("A", Channel.SOUTH, data, IDQ_A)  # the device's address: IDs must match
        net.inject("A", Channel.SOUTH, data, ("10.11.2.66", IDQ_A[1]))  # another host
    c = net.proxy["A"].counters
    assert c["south_unmatched"] == 200 and c["south_foreign"] == 200
    net.device_down.discard("A")  # the device answers the retransmission
    keys = {}
    for side, addr in (("A", A1), ("B", B1)):
        asks = [first] if side == "A" else []  # A's first GET_KEY, still waiting
        asks += [etsi.GetKey(next(RID), h) for _ in range(70 - len(asks))]
        got = [net.call(side, addr, m) for m in asks]
        assert all(g.status == Status.SUCCESSFUL for g in got)  # type: ignore[union-attr]
        keys[side] = [g.key for g in got]  # type: ignore[union-attr]
    assert keys["A"] == keys["B"] and forged_key not in keys["A"]


def test_device_request_ids_are_unpredictable_and_never_reused_while_outstanding() -> None:
    net = Net()
    _session(net, 200)
    a_ids = [idq.decode(d).request_id for d in _sent(net, 0, Channel.SOUTH)]
    net2 = Net(seed=2)
    _session(net2, 200)
    b_ids = [idq.decode(d).request_id for d in _sent(net2, 0, Channel.SOUTH)]
    assert a_ids[0] not in (0, 1) and a_ids != b_ids  # not a counter from 1
    core = net.proxy["A"]
    core.random_bytes = lambda n: (5).to_bytes(n, "big")  # a source stuck on one value
    assert not core.south_tx and core._next_rid() == 5
    core.south_tx[5] = core.sync_tx[0] if core.sync_tx else None  # type: ignore[assignment]
    assert core._next_rid() == 6  # 5 is outstanding


def test_sync_flood_is_counted_exactly_and_logged_as_dropped_input() -> None:
    net = Net()
    mark = len(net.logs)
    for i in range(3000):
        net.inject("A", Channel.SYNC, b"QS\x02\x01" + i.to_bytes(4, "big"), ("10.11.1.99", 5626))
        net.inject("A", Channel.SYNC, b"QS\x02\x01" + i.to_bytes(60, "big"), B_SYNC)
    a = net.proxy["A"].all_counters()
    assert a["sync_foreign"] == 3000 and a["sync_bad_mac"] + a["sync_malformed"] == 3000
    lines = net.logs[mark:]
    assert len(lines) == 6000 and all(x.limited for x in lines)  # the shell rate-limits them
    _session(net)


def test_second_answer_to_a_retransmitted_device_request_is_late_not_unmatched() -> None:
    # on a loaded machine the device answers a request and its retransmission both: the
    # second answer is a late duplicate, counted apart from forgeries
    net = Net()
    net.device_down.add("A")
    ra = net.call("A", A1, etsi.Open(next(RID), TN5, etsi.QoS(32)))
    h = ra.key_handle
    rb = net.call("B", B1, etsi.Open(next(RID), TN1, etsi.QoS(32), h))
    assert ra.status == rb.status == Status.SUCCESSFUL
    net.sae_send("A", A1, etsi.GetKey(next(RID), h))
    net.sim.run(0.2)
    a = net.proxy["A"]
    assert a.counters["south_retransmits"] > 0
    mark = len(net.wire)
    net.device_down.discard("A")
    net.sim.run(0.5)
    assert not a.south_tx
    # the device's answer to the retransmitted request once more (it answers a repeat
    # from its cache, as a device that had answered the first copy late)
    replies = []
    for data in _sent(net, mark, Channel.SOUTH):
        if idq.decode(data).request_id in a.south_resent:
            replies += [r.data for r in net.idq["A"].handle(Datagram(data, A_SOUTH), net.now)]
    assert replies
    unmatched = a.counters["south_unmatched"]
    net.inject("A", Channel.SOUTH, replies[0], IDQ_A)
    assert a.counters["south_late"] == 1
    assert a.counters["south_unmatched"] == unmatched
