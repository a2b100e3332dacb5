"""The proxy's northbound side, cores wired in memory (issue 12, items 6-9 and 11): who may
open, per-client session limits, idle sessions, keys bound as asked, a simultaneous OPEN
of one handle, the per-client response cache, bounded CONNECT_BLOCKING waits, and the
status codes of ETSI GS QKD 004 V1.1.1."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv4Address

import pytest

from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd.etsi004 import Status
from qkd_proxy.core import ProxyCore
from qkd_proxy.events import Channel, Datagram, Send
from tests.support.qkd_net import TN1, TN1_QA, TN5, TN5_QB, Net, proxy_configs

A1, B1 = (TN1_QA, 1000), (TN5_QB, 2000)
TN1_OTHER = ("10.1.1.1", 3000)  # another address of tn1: served, owns nothing
STRANGER = ("10.9.9.9", 4000)  # no node of the topology
RID = itertools.count(1)


def _open(
    net: Net,
    addr: tuple[str, int],
    handle: bytes = etsi.ZERO_HANDLE,
    side: str = "A",
    expect: Status = Status.SUCCESSFUL,
    **qos: int,
) -> bytes:
    dest = TN5 if side == "A" else TN1
    r = net.call(side, addr, etsi.Open(next(RID), dest, etsi.QoS(**qos), handle))
    assert isinstance(r, etsi.OpenReply)
    assert r.status == expect, r
    return r.key_handle


def _get(net: Net, side: str, addr: tuple[str, int], h: bytes) -> tuple[Status, int, bytes]:
    r = net.call(side, addr, etsi.GetKey(next(RID), h))
    assert isinstance(r, etsi.GetKeyReply)
    return r.status, r.index, r.key


def _answers(net: Net, addr: tuple[str, int]) -> dict[int, etsi.Reply]:
    return {m.request_id: m for m in net.inbox.get(addr, [])}


def _north(core: ProxyCore, msg: etsi.Request, addr: tuple[str, int], now: float) -> list:
    out = core.handle(Datagram(Channel.NORTH, etsi.encode(msg), addr), now)
    return [etsi.decode(a.data) for a in out if isinstance(a, Send) and a.channel is Channel.NORTH]


# --- item 6: access control, limits, idle sessions, keys bound as asked ---------------------


def test_an_address_the_proxy_does_not_serve_is_refused_and_counted() -> None:
    net = Net()
    h = bytes([3]) * 64
    before = len(net.wire)  # the proxies' start-up greetings on the sync channel
    for msg in (
        etsi.Open(next(RID), TN5, etsi.QoS(32)),
        etsi.Open(next(RID), TN5, etsi.QoS(32), h),
        etsi.ConnectNonblock(next(RID), h),
        etsi.ConnectBlocking(next(RID), h, 1000),
        etsi.GetKey(next(RID), h),
        etsi.Close(next(RID), h),
    ):
        r = net.call("A", STRANGER, msg)
        assert r.status == Status.NO_QKD_CONNECTION and type(r) is type(etsi.status_reply(msg, 0))
    core = net.proxy["A"]
    assert core.counters["refused"] == 6
    assert not core.sessions and not net.proxy["B"].sessions and not core.pending_north
    assert len(core.cache) == 0  # a refusal costs nothing to keep
    # nothing toward the peer or the device
    assert {ch for ch, _ in net.wire[before:]} == {Channel.NORTH}


def test_an_open_flood_from_many_addresses_leaves_nothing_behind() -> None:
    core = Net().proxy["A"]
    first = IPv4Address("10.200.0.0")
    for i in range(5000):
        addr = (str(first + i), 5424 + i % 7)
        (r,) = _north(core, etsi.Open(i, TN5, etsi.QoS(32)), addr, 0.001 * i)
        assert r.status == Status.NO_QKD_CONNECTION
    assert core.counters["refused"] == 5000
    assert not core.sessions and not core.pending_north and len(core.cache) == 0
    assert not core.sync_tx and not core.south_tx and core.next_timer() is None


def test_sessions_per_client_address_are_limited() -> None:
    net = Net(proxy_kw={"max_sessions_per_client": 3})
    hs = [_open(net, A1) for _ in range(3)]
    _open(net, A1, expect=Status.NO_QKD_CONNECTION)
    _open(net, (TN1_QA, 1001), expect=Status.NO_QKD_CONNECTION)  # a client is its address
    assert net.proxy["A"].counters["session_limit"] == 2
    _open(net, TN1_OTHER)  # another address has its own allowance
    assert net.call("A", A1, etsi.Close(next(RID), hs[0])).status == Status.SUCCESSFUL
    net.sim.run(0.1)
    _open(net, A1)
    assert net.proxy["A"].sessions_of == {TN1_QA: 3, TN1_OTHER[0]: 1}


def test_opens_draw_no_key_and_a_get_key_binds_a_bounded_few() -> None:
    net = Net()
    handles = [_open(net, A1) for _ in range(20)]
    assert not [d for ch, d in net.wire if ch is Channel.SOUTH]  # the device was not asked
    a = net.proxy["A"]
    assert all(a.sessions[h].bound_upto == 0 for h in handles)
    h = handles[0]
    assert _get(net, "A", A1, h)[:2] == (Status.SUCCESSFUL, 0)
    first = a.cfg.bind_first
    assert a.sessions[h].bound_upto <= first + 2 * first  # its first binding and the next
    assert all(a.sessions[x].bound_upto == 0 for x in handles[1:])
    for _ in range(300):
        _get(net, "A", A1, h)
    s = a.sessions[h]
    assert s.bound_upto - s.next_index <= 2 * a.cfg.bind_block


def test_a_session_not_open_at_both_ends_expires_when_idle_at_both_proxies() -> None:
    net = Net(proxy_kw={"session_idle": 5.0})
    a, b = net.proxy["A"], net.proxy["B"]
    h = _open(net, A1)
    assert _get(net, "A", A1, h)[0] == Status.SUCCESSFUL  # B holds that key for tn5 now
    assert b.sessions[h].keys
    net.sim.run(30.0)  # tn5 never joins
    assert h not in a.sessions and h not in b.sessions
    assert a.counters["sessions_expired"] + b.counters["sessions_expired"] >= 1
    assert a.sessions_of == {} and not a.pending_north
    assert _get(net, "A", A1, h)[0] == Status.NO_QKD_CONNECTION


def test_a_session_open_at_both_ends_does_not_expire() -> None:
    net = Net(proxy_kw={"session_idle": 5.0})
    h = _open(net, A1)
    _open(net, B1, h, side="B")
    net.sim.run(60.0)
    assert h in net.proxy["A"].sessions and h in net.proxy["B"].sessions
    a, b = _get(net, "A", A1, h), _get(net, "B", B1, h)
    assert a[:2] == b[:2] == (Status.SUCCESSFUL, 0) and a[2] == b[2]


# --- item 7: simultaneous OPEN of one handle ------------------------------------------------


def _warm_both_pools(net: Net) -> None:
    """Each proxy allocates one session first, so both hold device keys in their pool."""
    for side, addr in (("A", A1), ("B", B1)):
        h = _open(net, addr, side=side)
        assert _get(net, side, addr, h)[0] == Status.SUCCESSFUL


@pytest.mark.parametrize("gets", [1, 3, 70])
def test_simultaneous_open_and_get_key_before_the_answer_give_equal_keys(gets: int) -> None:
    net = Net()
    _warm_both_pools(net)
    h = bytes([7]) * 64
    net.sae_send("A", A1, etsi.Open(next(RID), TN5, etsi.QoS(32), h))
    net.sae_send("B", B1, etsi.Open(next(RID), TN1, etsi.QoS(32), h))
    for _ in range(gets):  # sent before either OPEN is answered
        net.sae_send("A", A1, etsi.GetKey(next(RID), h))
        net.sae_send("B", B1, etsi.GetKey(next(RID), h))
    net.sim.run(1.0)
    keys: dict[str, dict[int, bytes]] = {}
    for side, addr in (("A", A1), ("B", B1)):
        replies = net.inbox[addr]
        assert [m.status for m in replies if isinstance(m, etsi.OpenReply)][-1] == 0
        got = [m for m in replies if isinstance(m, etsi.GetKeyReply)]
        assert [m.status for m in got] == [Status.SUCCESSFUL] * gets
        keys[side] = {m.index: m.key for m in got}
    assert sorted(keys["A"]) == list(range(gets))
    assert keys["A"] == keys["B"]  # equal at every index
    assert net.proxy["A"].sessions[h].master != net.proxy["B"].sessions[h].master
    more = [(_get(net, "A", A1, h), _get(net, "B", B1, h)) for _ in range(10)]
    assert all(x == y and x[0] == Status.SUCCESSFUL for x, y in more)


# --- item 8: the response cache, per client and by content ----------------------------------


def test_another_client_cannot_flush_an_answer_so_a_repeat_never_costs_a_key() -> None:
    net = Net()
    core = net.proxy["A"]
    h = _open(net, A1)
    assert _get(net, "A", A1, h)[1] == 0
    ask = etsi.GetKey(next(RID), h)
    (first,) = _north(core, ask, A1, net.now)  # and suppose this answer is lost
    assert isinstance(first, etsi.GetKeyReply) and first.index == 1
    flood = etsi.encode(etsi.GetKey(0, bytes(64)))
    for i in range(70_000):  # more than the old shared cache held: 65,536
        data = flood[:4] + i.to_bytes(4, "big") + flood[8:]
        core.handle(Datagram(Channel.NORTH, data, (TN1_OTHER[0], 1 + i % 60000)), net.now)
    assert _north(core, ask, A1, net.now) == [first]  # the repeat: the same key, index 1
    assert _get(net, "A", A1, h)[1] == 2  # and no index skipped
    assert len(core.cache) <= 2 * core.cfg.cache_per_client


def test_a_request_id_reused_for_another_request_is_a_new_request() -> None:
    net = Net()
    h = _open(net, A1)
    rid = next(RID)
    r = net.call("A", A1, etsi.GetKey(rid, h))
    assert isinstance(r, etsi.GetKeyReply) and r.index == 0
    again = net.call("A", A1, etsi.ConnectNonblock(rid, h))
    assert isinstance(again, etsi.ConnectNonblockReply)
    assert again.status == Status.PEER_NOT_CONNECTED


# --- item 9: CONNECT_BLOCKING bounded, waiters in a heap, answered on CLOSE ----------------


def test_connect_blocking_of_2_to_the_32_ms_is_answered_at_the_configured_max() -> None:
    net = Net()
    h = _open(net, A1)
    rid = next(RID)
    net.sae_send("A", A1, etsi.ConnectBlocking(rid, h, 0xFFFFFFFF))
    net.sim.run(net.proxy["A"].cfg.connect_max_wait + 1.0)
    r = _answers(net, A1)[rid]
    assert isinstance(r, etsi.ConnectBlockingReply) and r.status == Status.TIMEOUT
    assert not net.proxy["A"].pending_north


def test_connect_blocking_is_bounded_by_the_qos_timeout_of_the_open() -> None:
    net = Net()
    h = _open(net, A1, timeout_ms=500)
    rid = next(RID)
    net.sae_send("A", A1, etsi.ConnectBlocking(rid, h, 20_000))
    net.sim.run(0.45)
    assert rid not in _answers(net, A1)
    net.sim.run(0.1)
    assert _answers(net, A1)[rid].status == Status.TIMEOUT


def test_close_answers_the_calls_waiting_on_the_session() -> None:
    net = Net()
    core = net.proxy["A"]
    h = _open(net, A1)
    rids = [next(RID) for _ in range(3)]
    for rid in rids:
        net.sae_send("A", A1, etsi.ConnectBlocking(rid, h, 20_000))
    net.sim.run(0.01)
    assert len(core.pending_north) == 3
    assert net.call("A", A1, etsi.Close(next(RID), h)).status == Status.SUCCESSFUL
    got = _answers(net, A1)
    assert [got[r].status for r in rids] == [Status.NO_QKD_CONNECTION] * 3
    assert not core.pending_north
    net.sim.run(1.0)
    assert h not in core.sessions


def test_many_waiters_are_answered_at_their_deadlines_in_order() -> None:
    net = Net()
    core = net.proxy["A"]
    handles = [_open(net, A1) for _ in range(5)]
    rng = random.Random(5)
    start = net.now
    due: dict[int, float] = {}
    for i in range(3000):
        rid, ms = 10_000 + i, rng.randint(1, 3000)
        assert _north(core, etsi.ConnectBlocking(rid, handles[i % 5], ms), A1, start) == []
        due[rid] = start + ms / 1000
    order: list[int] = []
    while (at := core.next_timer()) is not None and at <= start + 4:
        for r in _north_tick(core, at):
            assert r.status == Status.TIMEOUT and due[r.request_id] == pytest.approx(at)
            order.append(r.request_id)
    assert sorted(order) == sorted(due) and order == sorted(order, key=lambda r: (due[r], r))
    assert not core.pending_north and len(core._timeq) <= len(handles) + 1


def _north_tick(core: ProxyCore, at: float) -> list[etsi.Reply]:
    out = core.handle(Tick(), at)
    return [etsi.decode(a.data) for a in out if isinstance(a, Send) and a.channel is Channel.NORTH]


def test_outstanding_requests_are_resent_in_time_order_and_fail_at_their_deadline() -> None:
    """A proxy whose peer never answers: every OPEN's sync request is resent on its own
    doubling schedule until its deadline, and the next timer is always the earliest of
    all outstanding requests and waiters (one heap, not a scan of them)."""
    cfg, _ = proxy_configs()
    rng = random.Random(7)
    core = ProxyCore(cfg, rng.randbytes, 0.0)
    t = 0.0
    for i in range(200):
        t += rng.uniform(0, 0.003)
        assert _north(core, etsi.Open(50_000 + i, TN5, etsi.QoS(32)), A1, t) == []
    opened = len(core.sync_tx)
    assert opened >= 200  # the OPENs and the start-up HELLO
    resent = 0
    while (at := core.next_timer()) is not None and at < cfg.sync_deadline + 1:
        txs = [*core.sync_tx.values(), *core.south_tx.values()]
        waiters = [e[0] for e in core._timeq if not getattr(e[2], "done", False)]
        assert at == min([tx.next_at for tx in txs] + waiters)
        due = [tx for tx in txs if tx.next_at <= at and at < tx.deadline]
        before = core.counters["sync_retransmits"]
        core.handle(Tick(), at)
        assert core.counters["sync_retransmits"] - before == len(due)
        assert all(tx.next_at > at for tx in due)
        resent += len(due)
    assert not core.sync_tx and resent >= opened * 3


# --- item 11: the status codes of V1.1.1 -----------------------------------------------------


def test_replies_use_v1_status_codes_only() -> None:
    assert [int(s) for s in Status] == list(range(7))  # no V2.1.1 value (7, 8)
    bad = bytearray(etsi.encode(etsi.OpenReply(1, Status.SUCCESSFUL)))
    bad[8:12] = (7).to_bytes(4, "big")
    with pytest.raises(DecodeError):
        etsi.decode(bytes(bad))
    net = Net()
    _open(net, A1, requested_length=4096, expect=Status.NO_QKD_CONNECTION)


def test_status_5_answers_open_only() -> None:
    net = Net()
    h = _open(net, A1)
    for msg in (
        etsi.ConnectNonblock(next(RID), h),
        etsi.ConnectBlocking(next(RID), h, 10),
        etsi.GetKey(next(RID), h),
        etsi.Close(next(RID), h),
    ):
        assert net.call("A", TN1_OTHER, msg).status == Status.NO_QKD_CONNECTION
    _open(net, TN1_OTHER, h, expect=Status.HANDLE_IN_USE)
    assert _get(net, "A", A1, h)[:2] == (Status.SUCCESSFUL, 0)
