"""The sans-I/O OSPF core: N routers wired in memory under a virtual clock."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import networkx as nx
import pytest

from gmpls.core import Tick
from gmpls.ospf import examples as ex
from gmpls.ospf.constants import INITIAL_SEQUENCE, LS_REFRESH_TIME, MAX_AGE, LsType
from gmpls.ospf.events import AuthConfig, FlushOpaque, LsdbChanged, OriginateOpaque
from gmpls.ospf.fsm import IfState, NbrState
from gmpls.ospf.lsa import LSAKey
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.router import OspfRouter, _elect
from tests.support.ospf_lab import Lab


def lan_lab(n: int, prios: list[int] | None = None, **kw: object) -> tuple[Lab, list[OspfRouter]]:
    lab = Lab(**kw)  # type: ignore[arg-type]
    rs = []
    for i in range(1, n + 1):
        r = lab.router(f"10.1.1.{i}")
        prio = prios[i - 1] if prios else 1
        lab.connect("ctrl", r, f"10.1.1.{i}/24", priority=prio)
        rs.append(r)
    return lab, rs


def converged_lan(
    n: int, prios: list[int] | None = None, **kw: object
) -> tuple[Lab, list[OspfRouter]]:
    """:func:`lan_lab` started and run until every LSDB is the same (within 60 s)."""
    lab, rs = lan_lab(n, prios, **kw)
    lab.start()
    lab.run_until_converged(60)
    return lab, rs


def _ri(**caps: bool) -> OriginateOpaque:
    """The origination of a router information LSA (instance 0) with these capabilities."""
    return OriginateOpaque(10, ri_lsa_id(0), RouterInfoLSA((capabilities(**caps),)))


def iface(r: OspfRouter, name: str = "ctrl"):  # type: ignore[no-untyped-def]
    return r.interfaces[name]


def test_paper_lan_reaches_full_with_dr_and_bdr() -> None:
    lab, rs = lan_lab(5)
    lab.start()
    t = lab.run_until_converged(60)
    assert t < 15
    ip = IPv4Address
    for r in rs:
        assert iface(r).dr == ip("10.1.1.5") and iface(r).bdr == ip("10.1.1.4")
    assert iface(rs[4]).state == IfState.DR and iface(rs[3]).state == IfState.BACKUP
    assert {iface(r).state for r in rs[:3]} == {IfState.DROTHER}
    # DROthers are Full with DR and BDR, 2-Way with each other
    states = {n.router_id: n.state for _, n in rs[0].neighbors()}
    assert states == {
        ip("10.1.1.2"): NbrState.TWO_WAY,
        ip("10.1.1.3"): NbrState.TWO_WAY,
        ip("10.1.1.4"): NbrState.FULL,
        ip("10.1.1.5"): NbrState.FULL,
    }
    assert all(n.state == NbrState.FULL for _, n in rs[4].neighbors())
    # identical LSDBs: 5 router LSAs and the DR's network LSA
    assert lab.synchronised()
    keys = sorted(rs[0].lsdb)
    assert [k.ls_type for k in keys] == [1] * 5 + [2]
    net = rs[0].lsdb.get(LSAKey(2, ip("10.1.1.5"), ip("10.1.1.5")))
    assert net is not None
    assert sorted(net.lsa.body.routers) == [ip(f"10.1.1.{i}") for i in range(1, 6)]
    # routing: the LAN is directly attached everywhere
    for r in rs:
        route = r.routes[IPv4Network("10.1.1.0/24")]
        assert route.cost == 10 and route.directly_attached


def test_opaque_lsas_flood_to_everyone() -> None:
    lab, rs = converged_lan(4)
    body = RouterInfoLSA((capabilities(te=True, qe_capable=True),))
    lab.feed(rs[0], OriginateOpaque(10, ri_lsa_id(0), body))
    lab.feed(rs[1], OriginateOpaque(10, ex.te_link_lsa().header.ls_id, ex.te_link_lsa().body))
    lab.run_until_converged(lab.now + 30)
    key = LSAKey(10, ri_lsa_id(0), rs[0].router_id)
    for r in rs:
        e = r.lsdb.get(key)
        assert e is not None and e.lsa.body.qe_capable
        assert e.lsa.encode()[-4:] == b"\x12\x00\x00\x00"


def test_dr_bdr_tie_breaks() -> None:
    ip = IPv4Address
    # priority beats router ID; priority 0 is never elected
    lab, rs = converged_lan(4, prios=[3, 2, 0, 1])
    for r in rs:
        assert (iface(r).dr, iface(r).bdr) == (ip("10.1.1.1"), ip("10.1.1.2"))
    assert iface(rs[2]).state == IfState.DROTHER
    # a higher-priority router joining later does not preempt the DR (RFC 2328 §9.4)
    r5 = lab.router("10.1.1.9")
    lab.connect("ctrl", r5, "10.1.1.9/24", priority=10)
    lab.start(r5)
    lab.run_until_converged(lab.now + 60)
    for r in [*rs, r5]:
        assert (iface(r).dr, iface(r).bdr) == (ip("10.1.1.1"), ip("10.1.1.2"))


def test_election_function_equal_priorities_and_declarations() -> None:
    ip = IPv4Address
    z = ip(0)
    me = (ip("1.1.1.1"), ip("10.0.0.1"), 1, z, z)
    others = [(ip("2.2.2.2"), ip("10.0.0.2"), 1, z, z), (ip("3.3.3.3"), ip("10.0.0.3"), 1, z, z)]
    # nobody declared: the highest router ID becomes BDR then DR; step 4 reruns for "me"
    assert _elect(me, others) == (ip("10.0.0.3"), ip("10.0.0.3"))
    # the existing DR/BDR declarations are respected
    others = [
        (ip("2.2.2.2"), ip("10.0.0.2"), 1, ip("10.0.0.2"), ip("10.0.0.3")),
        (ip("3.3.3.3"), ip("10.0.0.3"), 1, ip("10.0.0.2"), ip("10.0.0.3")),
    ]
    assert _elect(me, others) == (ip("10.0.0.2"), ip("10.0.0.3"))


def test_dr_loss_bdr_takes_over() -> None:
    ip = IPv4Address
    lab, rs = converged_lan(5)
    dr = rs[4]
    lab.kill(dr)
    lab.sim.run(5)  # dead interval 4 s
    lab.run_until_converged(lab.now + 60)
    for r in rs[:4]:
        assert iface(r).dr == ip("10.1.1.4") and iface(r).bdr == ip("10.1.1.3")
        assert dr.router_id not in iface(r).neighbors
    assert iface(rs[3]).state == IfState.DR
    # the new DR originated its network LSA, listing the four survivors
    net = rs[0].lsdb.get(LSAKey(2, ip("10.1.1.4"), ip("10.1.1.4")))
    assert net is not None and len(net.lsa.body.routers) == 4
    # the dead DR's router LSA is no longer reachable: SPF ignores it (no transit link back)
    for r in rs[:4]:
        assert r.routes[IPv4Network("10.1.1.0/24")].cost == 10


def test_a_deferred_origination_happens_at_its_deadline_whatever_the_rounding() -> None:
    """The origination deferred by MinLSInterval is due at ``last + 5``; at exactly that
    time it happens (``now - last`` may round to 4.999...: the timer must not stay due)."""
    r = OspfRouter("10.1.1.1")
    key = LSAKey(10, ri_lsa_id(0), r.router_id)
    last = 5.344167231320889  # 10.344167231320888 - last == 4.999999999999999
    r.handle(_ri(qe_capable=False), last)
    r.handle(_ri(qe_capable=True), last + 1)
    due = r.next_timer()
    assert due == last + 5
    r.handle(Tick(), due)
    e = r.lsdb.get(key)
    assert e is not None and e.lsa.header.seq == INITIAL_SEQUENCE + 1
    assert r.next_timer() != due


def test_newer_sequence_replaces_old_everywhere() -> None:
    lab, rs = converged_lan(4)
    origin = rs[2]
    key = LSAKey(10, ri_lsa_id(0), origin.router_id)
    lab.feed(origin, _ri(qe_capable=False))
    lab.run_until_converged(lab.now + 30)
    seqs = {r.lsdb.get(key).lsa.header.seq for r in rs}  # type: ignore[union-attr]
    assert seqs == {INITIAL_SEQUENCE}
    lab.sim.run(6)  # beyond MinLSInterval
    lab.feed(origin, _ri(qe_capable=True))
    lab.run_until_converged(lab.now + 30)
    for r in rs:
        e = r.lsdb.get(key)
        assert e is not None
        assert e.lsa.header.seq == INITIAL_SEQUENCE + 1
        assert e.lsa.body.qe_capable


def test_min_ls_interval_defers_a_second_origination() -> None:
    lab, rs = converged_lan(2)
    r = rs[0]
    key = LSAKey(10, ri_lsa_id(0), r.router_id)
    lab.feed(r, _ri(qe_capable=False))
    lab.sim.run(1)  # 1 s after the first origination
    lab.feed(r, _ri(qe_capable=True))
    assert rs[0].lsdb.get(key).lsa.header.seq == INITIAL_SEQUENCE  # type: ignore[union-attr]
    lab.sim.run(3.9)  # 4.9 s after it
    assert rs[1].lsdb.get(key).lsa.header.seq == INITIAL_SEQUENCE  # type: ignore[union-attr]
    lab.sim.run(0.6)  # 5.5 s after it
    assert rs[1].lsdb.get(key).lsa.header.seq == INITIAL_SEQUENCE + 1  # type: ignore[union-attr]


def test_maxage_flush_removes_everywhere() -> None:
    lab, rs = converged_lan(4)
    origin = rs[1]
    key = LSAKey(10, ri_lsa_id(0), origin.router_id)
    lab.feed(origin, _ri())
    lab.run_until_converged(lab.now + 30)
    assert all(key in r.lsdb for r in rs)
    removed: list[IPv4Address] = []
    for r in rs:
        r.add_lsdb_listener(
            lambda k, lsa, r=r: removed.append(r.router_id) if lsa is None and k == key else None
        )
    lab.feed(origin, FlushOpaque(10, ri_lsa_id(0)))
    lab.sim.run(10)
    assert all(key not in r.lsdb for r in rs)
    assert sorted(removed) == sorted(r.router_id for r in rs)


def test_lsas_of_a_dead_router_age_out_and_own_lsas_are_refreshed() -> None:
    lab, rs = converged_lan(3)
    dead = rs[0]
    own_key = LSAKey(1, rs[1].router_id, rs[1].router_id)
    seq0 = rs[1].lsdb.get(own_key).lsa.header.seq  # type: ignore[union-attr]
    lab.kill(dead)
    lab.sim.run(LS_REFRESH_TIME + 10)
    # refreshed at LSRefreshTime with the next sequence number (at least once)
    assert rs[2].lsdb.get(own_key).lsa.header.seq > seq0  # type: ignore[union-attr]
    dead_key = LSAKey(1, dead.router_id, dead.router_id)
    assert dead_key in rs[1].lsdb
    lab.sim.run(MAX_AGE)
    assert dead_key not in rs[1].lsdb and dead_key not in rs[2].lsdb
    assert lab.synchronised()


def ring_lab(n: int) -> tuple[Lab, list[OspfRouter], nx.Graph]:
    lab = Lab()
    rs = [lab.router(f"192.0.2.{i + 1}") for i in range(n)]
    g = nx.Graph()
    for i in range(n):
        j = (i + 1) % n
        cost = 10 + i  # distinct costs so shortest paths are unique
        seg = f"l{i}"
        lab.connect(
            seg, rs[i], f"10.9.{i}.1/30", ifname=f"e{i}", network_type="point-to-point", cost=cost
        )
        lab.connect(
            seg, rs[j], f"10.9.{i}.2/30", ifname=f"w{i}", network_type="point-to-point", cost=cost
        )
        g.add_edge(i, j, weight=cost, net=IPv4Network(f"10.9.{i}.0/30"))
    return lab, rs, g


def test_point_to_point_ring_spf_matches_networkx() -> None:
    lab, rs, g = ring_lab(7)
    lab.start()
    lab.run_until_converged(120)
    for i, r in enumerate(rs):
        dist = nx.single_source_dijkstra_path_length(g, i)
        for a, b, data in g.edges(data=True):
            route = r.routes[data["net"]]
            # the stub of link a-b is reached at the nearer end, plus that end's link cost
            want = min(dist[a], dist[b]) + data["weight"]
            assert route.cost == want, (i, a, b)
            if i in (a, b):
                assert route.directly_attached


def test_bad_input_is_counted_never_raised() -> None:
    lab, rs = converged_lan(2)
    r = rs[0]
    good = ex.hello(IPv4Address("10.1.1.2")).encode()
    lab.inject(r, "ctrl", good[:30], "10.1.1.2", "224.0.0.5")
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    lab.inject(r, "ctrl", bytes(bad), "10.1.1.2", "224.0.0.5")
    from dataclasses import replace

    from gmpls.ospf.packet import Auth

    wrong_area = replace(ex.hello(IPv4Address("10.1.1.2")), area_id=IPv4Address("0.0.0.1"))
    lab.inject(r, "ctrl", wrong_area.encode(), "10.1.1.2", "224.0.0.5")
    wrong_auth = replace(ex.hello(IPv4Address("10.1.1.2")), auth=Auth.simple(b"x"))
    lab.inject(r, "ctrl", wrong_auth.encode(), "10.1.1.2", "224.0.0.5")
    lab.inject(r, "ctrl", b"\xff" * 64, "10.1.1.2", "224.0.0.5")
    c = iface(r).counters
    assert c["truncated"] == 1
    assert c["bad_checksum"] == 1
    assert c["wrong_area"] == 1
    assert c["auth_mismatch"] == 1
    assert c["bad_version"] == 1
    lab.sim.run(5)
    assert lab.all_full()


def test_md5_authentication_between_cores() -> None:
    auth = AuthConfig(autype=2, key=b"quantum", key_id=7)
    lab, rs = converged_lan(3, auth=auth)
    # a router with another key cannot join
    other = lab.router("10.1.1.9")
    lab.connect("ctrl", other, "10.1.1.9/24", auth=AuthConfig(autype=2, key=b"classic", key_id=7))
    lab.start(other)
    lab.sim.run(10)
    assert not other.neighbors()
    assert iface(rs[0]).counters["auth_mismatch"] > 0


def test_lsdb_changed_actions_report_keys() -> None:
    lab, rs = lan_lab(2)
    seen: list[LSAKey] = []
    orig = lab._apply

    def spy(r: OspfRouter, actions: list[object]) -> None:
        for a in actions:
            if isinstance(a, LsdbChanged) and r is rs[1]:
                seen.extend(a.keys)
        orig(r, actions)

    lab._apply = spy  # type: ignore[method-assign]
    lab.start()
    lab.run_until_converged(60)
    assert LSAKey(LsType.ROUTER, rs[0].router_id, rs[0].router_id) in seen


@pytest.mark.parametrize("n", [2, 6])
def test_restart_of_a_router_resynchronises(n: int) -> None:
    """A router that restarts (empty LSDB, sequence numbers from scratch) catches up and
    bumps its own LSAs over the stale copies the others still hold (§13.4)."""
    lab, rs = converged_lan(n)
    victim = rs[0]
    key = LSAKey(1, victim.router_id, victim.router_id)
    before = rs[-1].lsdb.get(key).lsa.header.seq  # type: ignore[union-attr]
    lab.kill(victim)
    lab.sim.run(1)
    fresh = OspfRouter(victim.router_id)
    lab.routers[fresh.router_id] = fresh
    lab.dead.discard(fresh.router_id)
    for seg in lab.segments.values():
        for p in seg.ports:
            if p.router is victim:
                p.router = fresh
    lab.connect("dummy", fresh, "10.200.0.1/24")  # registers a pending config
    fresh._lab_pending = [  # type: ignore[attr-defined]
        c
        for c in fresh._lab_pending
        if c.name == "dummy"  # type: ignore[attr-defined]
    ]
    from gmpls.ospf.events import InterfaceConfig

    fresh._lab_pending.insert(  # type: ignore[attr-defined]
        0, InterfaceConfig("ctrl", victim.interfaces["ctrl"].config.address, **lab.if_defaults)
    )
    lab._seg_of[(fresh.router_id, "ctrl")] = lab.segments["ctrl"]
    lab.start(fresh)
    lab.run_until_converged(lab.now + 60)
    after = rs[-1].lsdb.get(key).lsa.header.seq  # type: ignore[union-attr]
    assert after > before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_lan_converges_by_retransmission(seed: int) -> None:
    """20% of deliveries lost: DD, LSR and LSU retransmissions still synchronise every
    LSDB, including opaque LSAs that DROthers only get through the DR."""
    lab, rs = lan_lab(5, loss=0.2, seed=seed)
    lab.start()
    for r in rs:
        lab.feed(r, _ri())
    lab.run_until_converged(300)
    assert all(len(r.lsdb) == 11 for r in rs)  # 5 router, 1 network, 5 RI
