"""The key manager (qkd_proxy.km) wired in memory: several sites, one emulator pair per QKD
link, direct sessions and trusted-node relay through one and two trusted sites."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address

from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import kmstatus as ks
from gmpls.qkd import sync
from gmpls.qkd.etsi004 import Status
from qkd_proxy.events import Channel
from tests.support.km_net import KmNet, fingerprint, north, site

RID = itertools.count(1)
OK = Status.SUCCESSFUL


def _session(
    net: KmNet, head: int, tail: int, n: int, relay: tuple[int, ...] = ()
) -> list[tuple[int, int, bytes, bytes]]:
    path = tuple(site(i) for i in relay)
    ra = net.call(head, etsi.Open(next(RID), site(tail), etsi.QoS(32), relay=path))
    assert isinstance(ra, etsi.OpenReply) and ra.status == OK, ra
    h = ra.key_handle
    rb = net.call(tail, etsi.Open(next(RID), site(head), etsi.QoS(32), h))
    assert isinstance(rb, etsi.OpenReply) and rb.status == OK, rb
    out = []
    for _ in range(n):
        ka = net.call(head, etsi.GetKey(next(RID), h))
        kb = net.call(tail, etsi.GetKey(next(RID), h))
        assert isinstance(ka, etsi.GetKeyReply) and isinstance(kb, etsi.GetKeyReply)
        assert ka.status == OK and kb.status == OK, (ka, kb)
        out.append((ka.index, kb.index, ka.key, kb.key))
    return out


def _no_key_in_logs(net: KmNet, keys: list[bytes]) -> None:
    text = repr([(x.event, dict(x.fields)) for x in net.logs])
    for k in keys:
        assert k.hex() not in text and fingerprint(k) not in text


def test_direct_session_between_adjacent_sites() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    got = _session(net, 1, 2, 4)
    assert [(a, b) for a, b, _, _ in got] == [(i, i) for i in range(4)]
    assert all(ka == kb and len(ka) == 32 for _, _, ka, kb in got)
    assert net.used("km1-km2", (1, 2)) == [4 * 256, 4 * 256]
    assert net.used("km2-km3", (2, 3)) == [0, 0]


def test_relay_through_one_trusted_site() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    got = _session(net, 1, 3, 5)
    assert [(a, b) for a, b, _, _ in got] == [(i, i) for i in range(5)]
    assert all(ka == kb for _, _, ka, kb in got)
    assert len({ka for _, _, ka, _ in got}) == 5
    net.sim.run(0.5)
    # every hop consumed the key length per key, at both of its ends
    assert net.used("km1-km2", (1, 2)) == [5 * 256] * 2
    assert net.used("km2-km3", (2, 3)) == [5 * 256] * 2
    assert net.km[1].all_counters()["relays_opened"] == 1
    roles = [net.km[i].show_relays()[0] for i in (1, 2, 3)]
    assert [x["role"] for x in roles] == ["head", "trusted", "tail"]
    assert roles[1]["path"] == ["10.1.1.1", "10.1.1.2", "10.1.1.3"]
    assert roles[1]["up_link"] == "km1-km2" and roles[1]["down_link"] == "km2-km3"
    assert roles[2]["keys"] == 5 and roles[2]["node_joined"]
    _no_key_in_logs(net, [k for _, _, k, _ in got])
    # the KM channels carry key IDs and one-time-padded payloads, never a key
    frames = [d for ch, d in net.wire if ch is Channel.SYNC]
    assert not any(k in f for _, _, k, _ in got for f in frames)


def test_relay_through_two_trusted_sites_on_the_given_path() -> None:
    # a line 1-2-3-4 and a chord 1-3; the head asks for 1-2-3-4 (two trusted sites)
    net = KmNet(4, [(1, 2), (2, 3), (3, 4), (1, 3)])
    got = _session(net, 1, 4, 3, relay=(1, 2, 3, 4))
    assert all(ka == kb and a == b for a, b, ka, kb in got)
    net.sim.run(0.5)
    for name, ends in (("km1-km2", (1, 2)), ("km2-km3", (2, 3)), ("km3-km4", (3, 4))):
        assert net.used(name, ends) == [3 * 256] * 2, name
    assert net.used("km1-km3", (1, 3)) == [0, 0]
    # without a path the KM takes the fewest hops: 1-3-4
    got = _session(net, 1, 4, 2)
    assert all(ka == kb for _, _, ka, kb in got)
    net.sim.run(0.5)
    assert net.used("km1-km3", (1, 3)) == [2 * 256] * 2
    _no_key_in_logs(net, [k for _, _, k, _ in got])


def test_relay_close_tears_down_every_hop() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    ra = net.call(1, etsi.Open(next(RID), site(3), etsi.QoS(32)))
    h = ra.key_handle  # type: ignore[union-attr]
    net.call(3, etsi.Open(next(RID), site(1), etsi.QoS(32), h))
    assert all(len(net.km[i].relays) == 1 for i in (1, 2, 3))
    assert net.call(1, etsi.Close(next(RID), h)).status == OK  # type: ignore[union-attr]
    net.sim.run(1.0)
    assert all(len(net.km[i].relays) == 0 for i in (1, 2, 3))
    assert all(not net.km[i].links[n].core.sessions for i, n in ((1, "km1-km2"), (3, "km2-km3")))
    r = net.call(3, etsi.GetKey(next(RID), h))
    assert r.status == Status.NO_QKD_CONNECTION  # type: ignore[union-attr]


def test_link_down_fails_the_relay_visibly() -> None:
    net = KmNet(3, [(1, 2), (2, 3)], km_kw={"dead_after": 2.5})
    h = _session(net, 1, 3, 1)
    assert h
    # the emulator of km2's end of km2-km3 stops answering
    net.down_devices.add(net.km[2].links["km2-km3"].core.cfg.idq)
    net.sim.run(4.0)
    rows = {r["name"]: r for r in net.km[2].show_links()}
    assert rows["km2-km3"]["up"] is False and rows["km1-km2"]["up"] is True
    r = net.call(1, etsi.Open(next(RID), site(3), etsi.QoS(32)))
    # km1 still sees its own link up: km2 refuses the next hop, km1 answers status 4
    assert r.status == Status.NO_QKD_CONNECTION  # type: ignore[union-attr]
    assert net.km[2].all_counters()["relays_failed"] >= 1


def test_silent_peer_km_fails_the_open() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    net.silent.add(2)  # km1 still thinks its link up: the hop session is not answered
    r = net.call(1, etsi.Open(next(RID), site(3), etsi.QoS(32)), deadline=60.0)
    assert r.status == Status.NO_QKD_CONNECTION  # type: ignore[union-attr]


def test_replayed_and_forged_relay_frames_are_rejected_and_counted() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    _session(net, 1, 3, 2)
    frames = [d for ch, d in net.wire if ch is Channel.SYNC and d[3] == sync.SyncType.RELAY_KEY]
    assert frames
    km2 = net.km[2]
    link = km2.links["km1-km2"].core
    link3 = net.km[3].links["km2-km3"].core
    before = dict(link.sync.counters)
    before3 = dict(link3.sync.counters)
    keys_before = km2.counters["relay_keys"]
    for f in frames:  # every relay key frame, replayed to both km2 and km3
        net.inject(2, Channel.SYNC, f, ("10.12.0.1", 5626))
        net.inject(3, Channel.SYNC, f, ("10.12.0.2", 5626))
    forged = bytearray(frames[0])
    forged[40] ^= 1
    net.inject(2, Channel.SYNC, bytes(forged), ("10.12.0.1", 5626))

    # the frames of hop 1 are replays at km2 and do not verify at km3 (made for km2), and
    # the other way round for hop 2: every one is rejected, and counted, at both
    def rejected(after: dict[str, int], before: dict[str, int]) -> int:
        return sum(after[k] - before[k] for k in ("replayed", "bad_mac", "stale"))

    assert rejected(link.sync.counters, before) == len(frames) + 1
    assert rejected(link3.sync.counters, before3) == len(frames)
    assert link.sync.counters["replayed"] > before["replayed"]
    assert link3.sync.counters["replayed"] > before3["replayed"]
    assert km2.counters["relay_keys"] == keys_before  # nothing relayed again


def test_kmstatus_serves_only_served_nodes() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    _session(net, 1, 3, 2)
    net.send(2, (north(2), 40001), Channel.STATUS, ks.encode(ks.LinksRequest(7)))
    net.send(2, (north(1), 40001), Channel.STATUS, ks.encode(ks.LinksRequest(8)))
    net.send(2, (north(2), 40001), Channel.STATUS, b"\x01\x01")
    net.sim.run(0.1)
    (raw,) = net.inbox[(north(2), 40001)]
    reply = ks.decode(raw)
    assert isinstance(reply, ks.LinksReply) and reply.request_id == 7
    by = {x.name: x for x in reply.links}
    assert set(by) == {"km1-km2", "km2-km3"}
    assert by["km1-km2"].far_site == IPv4Address("10.1.1.1") and by["km1-km2"].up
    assert by["km1-km2"].used_bits == 2 * 256 and by["km1-km2"].stock_bits > 0
    assert by["km2-km3"].services >= 1
    assert (north(1), 40001) not in net.inbox
    c = net.km[2].counters
    assert c["status_refused"] == 1 and c["status_malformed"] == 1 and c["status_requests"] == 1


def test_relay_with_loss_keeps_indexes_and_keys_equal() -> None:
    # 10 % of every datagram between KMs, devices and SAEs is lost: retransmissions on every
    # hop, answers from caches, no key skipped or used twice
    net = KmNet(4, [(1, 2), (2, 3), (3, 4)], loss=0.1, seed=5)
    got = _session(net, 1, 4, 30)
    assert [(a, b) for a, b, _, _ in got] == [(i, i) for i in range(30)]
    assert all(ka == kb for _, _, ka, kb in got)
    assert len({ka for _, _, ka, _ in got}) == 30
    net.loss = 0.0
    net.sim.run(2.0)
    for name, ends in (("km1-km2", (1, 2)), ("km2-km3", (2, 3)), ("km3-km4", (3, 4))):
        assert net.used(name, ends) == [30 * 256] * 2, name


def test_a_relay_the_tail_never_joins_expires_at_every_site() -> None:
    net = KmNet(3, [(1, 2), (2, 3)], km_kw={"relay_idle": 5.0})
    ra = net.call(1, etsi.Open(next(RID), site(3), etsi.QoS(32)))
    assert ra.status == OK  # type: ignore[union-attr]
    assert all(len(net.km[i].relays) == 1 for i in (1, 2, 3))
    net.sim.run(8.0)
    assert all(len(net.km[i].relays) == 0 for i in (1, 2, 3))
    assert all(not ln.core.sessions for i in (1, 2, 3) for ln in net.km[i].links.values())


def test_a_slow_hop_delays_the_relay_and_an_empty_one_fails_it_visibly() -> None:
    # hop 2 makes 2 keys of 256 bits a second: the tail's keys come at that pace, equal
    net = KmNet(3, [(1, 2), (2, 3)], rates={(2, 3): 512.0}, buffer_bits=1024)
    start = net.now
    got = _session(net, 1, 3, 8)
    assert all(ka == kb and a == b for a, b, ka, kb in got)
    assert net.now - start > 2.0  # waited for hop 2's key
    # hop 2 makes no key at all: km2 asks again for get_deadline, then the relay fails
    # with status 2 at both ends
    net = KmNet(3, [(1, 2), (2, 3)], rates={(2, 3): 0.0})
    ra = net.call(1, etsi.Open(next(RID), site(3), etsi.QoS(32)))
    h = ra.key_handle  # type: ignore[union-attr]
    net.call(3, etsi.Open(next(RID), site(1), etsi.QoS(32), h))
    assert net.call(1, etsi.GetKey(next(RID), h)).status == OK  # type: ignore[union-attr]
    r = net.call(3, etsi.GetKey(next(RID), h))
    assert r.status == Status.INSUFFICIENT_KEY  # type: ignore[union-attr]
    r = net.call(1, etsi.GetKey(next(RID), h))
    assert r.status == Status.INSUFFICIENT_KEY  # type: ignore[union-attr]
    assert not net.km[2].relays and net.km[2].counters["relays_failed"] == 1
    # a direct session over an empty link: status 2 at once
    net2 = KmNet(2, [(1, 2)], rate_bps=0.0)
    ra = net2.call(1, etsi.Open(next(RID), site(2), etsi.QoS(32)))
    r = net2.call(1, etsi.GetKey(next(RID), ra.key_handle))  # type: ignore[union-attr]
    assert r.status == Status.INSUFFICIENT_KEY  # type: ignore[union-attr]


def test_a_hop_device_lost_mid_relay_fails_it_at_both_ends() -> None:
    net = KmNet(3, [(1, 2), (2, 3)])
    ra = net.call(1, etsi.Open(next(RID), site(3), etsi.QoS(32)))
    h = ra.key_handle  # type: ignore[union-attr]
    net.call(3, etsi.Open(next(RID), site(1), etsi.QoS(32), h))
    assert net.call(1, etsi.GetKey(next(RID), h)).status == OK  # type: ignore[union-attr]
    assert net.call(3, etsi.GetKey(next(RID), h)).status == OK  # type: ignore[union-attr]
    for i in (2, 3):  # both emulators of km2-km3 stop answering
        net.down_devices.add(net.km[i].links["km2-km3"].core.cfg.idq)
    # the keys the KMs hold already still pass; then the tail's KM cannot get hop 2's key
    statuses = []
    for _ in range(300):
        net.call(1, etsi.GetKey(next(RID), h))
        statuses.append(net.call(3, etsi.GetKey(next(RID), h)).status)  # type: ignore[union-attr]
        if statuses[-1] != OK:
            break
    assert statuses[-1] == Status.NO_QKD_CONNECTION, statuses[-3:]
    r = net.call(1, etsi.GetKey(next(RID), h))
    assert r.status == Status.NO_QKD_CONNECTION  # type: ignore[union-attr]
    assert any(x.event == "relay failed" for x in net.logs)
    assert net.call(1, etsi.Close(next(RID), h)).status == OK  # type: ignore[union-attr]
    assert net.call(3, etsi.Close(next(RID), h)).status == OK  # type: ignore[union-attr]
    assert not any(net.km[i].relays for i in (1, 2, 3))


def test_each_end_tells_its_own_stream() -> None:
    """A KM tells its site node (KM status) and its CLI the figures of its own end's key
    stream, what the sessions it opens draw from: the device's STATUS answer (half the
    link's rate and buffer with the emulators), the topology's halved until then."""
    net = KmNet(2, [(1, 2)], rate_bps=4000.0, buffer_bits=1 << 16)
    for i in (1, 2):
        (st,) = net.km[i].link_status()
        assert (st.rate_bps, st.buffer_bits) == (2000, 1 << 15), st  # the device said so
        (row,) = net.km[i].show_links()
        assert (row["rate_bps"], row["link_rate_bps"]) == (2000, 1000)  # topology: 1000
    fresh = net.km[1].links["km1-km2"]
    fresh.emu_rate = fresh.emu_buffer = None  # no STATUS answer yet
    assert fresh.stream() == (500, 1 << 19)  # the topology's 1000 b/s and 1 Mib, halved


def test_a_get_key_repeated_after_its_open_gets_the_answer_it_got_before() -> None:
    """A GET_KEY that overtook its session's OPEN (the OPEN lost on the way, as a burst
    that fills the key manager's socket buffer can do, then resent) is answered status 4
    by the key manager; its repeat, once the OPEN is in, must get that same answer and not
    the session's first key: the client took the status 4 and asks again under a new
    request ID, which would then get index 1 (seen under 200 setups at once: "key index
    1, expected 0")."""
    net = KmNet(2, [(1, 2)])
    h = bytes(range(1, 65))
    src = (north(1), 50000)
    get = etsi.encode(etsi.GetKey(12, h))
    net.send(1, src, Channel.NORTH, get)
    net.sim.run(0.01)
    net.send(1, src, Channel.NORTH, etsi.encode(etsi.Open(11, site(2), etsi.QoS(32), h)))
    net.sim.run(0.3)
    net.send(1, src, Channel.NORTH, get)  # the client's retransmission
    net.sim.run(0.3)
    first, opened, again = (etsi.decode(r) for r in net.inbox.pop(src))
    assert isinstance(opened, etsi.OpenReply) and opened.status == OK
    assert first == again and again.status == Status.NO_QKD_CONNECTION
    assert net.km[1].all_counters()["north_duplicates"] == 1
    r = net.call(1, etsi.GetKey(13, h))
    assert isinstance(r, etsi.GetKeyReply) and (r.status, r.index) == (OK, 0)
