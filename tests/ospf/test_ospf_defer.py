"""Deferred LS Updates (``OspfRouter.defer_updates``, the shell of a busy pack): RFC 2328
§13 as LSAs arrive for what the database already answers, the rest later
(:class:`ProcessUpdates`), a copy of an instance already waiting never processed twice,
and no acknowledgment for an instance that is not installed (docs/ospf.md)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.ospf import examples as ex
from gmpls.ospf import packet as P
from gmpls.ospf.constants import INITIAL_SEQUENCE, PacketType
from gmpls.ospf.events import OriginateOpaque, ProcessUpdates, Received, Send
from gmpls.ospf.fsm import NbrState
from gmpls.ospf.lsa import LSA, LSAKey
from gmpls.ospf.router import OspfRouter
from tests.support.ospf_lab import Lab

PHANTOM = IPv4Address("10.9.9.9")  # an advertising router that is not in the lab
A, B = "10.0.0.1", "10.0.0.2"


def pair(**lab_kw: Any) -> tuple[Lab, OspfRouter, OspfRouter]:
    """Two routers on a point-to-point link, Full; ``a`` defers its updates."""
    lab = Lab(**lab_kw)
    a, b = lab.router("10.255.0.1"), lab.router("10.255.0.2")
    lab.connect("l", a, f"{A}/30", network_type="point-to-point")
    lab.connect("l", b, f"{B}/30", network_type="point-to-point")
    lab.start()
    lab.run_until_converged(30)
    a.defer_updates = True
    return lab, a, b


def ri(seq: int = INITIAL_SEQUENCE) -> LSA:
    return LSA.build(10, ex.ri_lsa().key.ls_id, PHANTOM, seq, ex.ri_lsa(PHANTOM).body)


def from_b(lab: Lab, a: OspfRouter, b: OspfRouter, *lsas: LSA) -> list[Any]:
    """``a`` receives an LS Update from ``b`` holding ``lsas``: the actions it returns
    (carried out too)."""
    data = P.Packet(b.router_id, ex.AREA0, P.LSUpdate(lsas)).encode()
    acts = a.handle(Received("l", data, IPv4Address(B), IPv4Address("224.0.0.5")), lab.now)
    lab._apply(a, acts)
    return acts


def feed(lab: Lab, a: OspfRouter, event: Any) -> list[Any]:
    acts = a.handle(event, lab.now)
    lab._apply(a, acts)
    return acts


def acked(actions: list[Any]) -> list[LSAKey]:
    """The keys of the LSA headers in the LS Acks among ``actions``."""
    keys = []
    for act in actions:
        if isinstance(act, Send) and act.data[1] == PacketType.LS_ACK:
            keys += [h.key for h in P.decode(act.data).body.headers]
    return keys


def seq(r: OspfRouter, key: LSAKey) -> int | None:
    """The sequence number of the instance ``r`` holds (None: none)."""
    e = r.lsdb.get(key)
    return None if e is None else e.lsa.header.seq


def installs(r: OspfRouter) -> list[LSAKey]:
    seen: list[LSAKey] = []
    r.add_lsdb_listener(lambda key, lsa: seen.append(key) if lsa is not None else None)
    return seen


def test_a_copy_of_an_instance_already_waiting_is_processed_once() -> None:
    lab, a, b = pair()
    seen = installs(a)
    lsa = ri()
    assert acked(from_b(lab, a, b, lsa)) == []  # deferred: not installed, not acknowledged
    assert a.updates_waiting() == 1 and lsa.key not in a.lsdb
    assert acked(from_b(lab, a, b, lsa)) == []  # the retransmitted copy: dropped
    assert a.updates_waiting() == 1 and a.lsu_counters["dropped_waiting"] == 1
    feed(lab, a, ProcessUpdates(16))
    assert a.updates_waiting() == 0
    assert seen == [lsa.key] and seq(a, lsa.key) == INITIAL_SEQUENCE
    # one delayed acknowledgment of the installed instance
    assert [x.key for x in a.interfaces["l"].acks] == [lsa.key]


def test_the_copy_of_an_instance_held_is_acknowledged_as_it_arrives() -> None:
    """§13 (7): a retransmission of an instance in the database gets its direct ack at
    once, ahead of what waits (a busy router's neighbour stops retransmitting)."""
    lab, a, b = pair()
    held = ri()
    from_b(lab, a, b, held)
    feed(lab, a, ProcessUpdates(1))
    waiting = ex.te_link_lsa(PHANTOM)
    from_b(lab, a, b, waiting)
    assert a.updates_waiting() == 1
    assert acked(from_b(lab, a, b, held)) == [held.key]
    assert a.updates_waiting() == 1 and waiting.key not in a.lsdb


def test_a_newer_instance_replaces_the_waiting_one() -> None:
    lab, a, b = pair()
    seen = installs(a)
    from_b(lab, a, b, ri(INITIAL_SEQUENCE))
    from_b(lab, a, b, ri(INITIAL_SEQUENCE + 1))
    assert a.updates_waiting() == 2 and a.lsu_counters["superseded"] == 1
    feed(lab, a, ProcessUpdates(1))  # the first group has nothing left: it does not count
    assert a.updates_waiting() == 0
    assert seen == [ri().key] and seq(a, ri().key) == INITIAL_SEQUENCE + 1


def test_an_older_copy_than_the_waiting_instance_is_dropped() -> None:
    lab, a, b = pair()
    from_b(lab, a, b, ri(INITIAL_SEQUENCE + 1))
    assert acked(from_b(lab, a, b, ri(INITIAL_SEQUENCE))) == []
    feed(lab, a, ProcessUpdates(16))
    assert seq(a, ri().key) == INITIAL_SEQUENCE + 1


def test_a_flush_behind_a_waiting_instance_is_compared_with_it_first() -> None:
    """The neighbour's order is kept: its flush (MaxAge, same sequence number) replaces the
    instance waiting from it, and is then answered as for an LSA we do not hold (§13
    (4): acknowledged, not installed), so the waiting instance is never installed."""
    lab, a, b = pair()
    seen = installs(a)
    lsa = ri()
    from_b(lab, a, b, lsa)
    flush = lsa.with_age(3600)
    assert acked(from_b(lab, a, b, flush)) == [lsa.key]
    assert a.lsu_counters["superseded"] == 1
    feed(lab, a, ProcessUpdates(16))
    assert seen == [] and lsa.key not in a.lsdb and a.updates_waiting() == 0


def test_nothing_is_acknowledged_for_an_instance_dropped_before_it_was_installed() -> None:
    """The adjacency goes down with the LSA waiting: it is never installed, so it is never
    acknowledged (the neighbour keeps it to retransmit, or resynchronises)."""
    lab, a, b = pair()
    lsa = ri()
    sent = from_b(lab, a, b, lsa)
    n = a.interfaces["l"].neighbors[b.router_id]
    lab.kill(b)
    lab.sim.run(5)  # dead interval 4 s
    assert n.state == NbrState.DOWN and not n.pending
    sent += feed(lab, a, ProcessUpdates(16))
    sent += feed(lab, a, Tick())
    assert lsa.key not in a.lsdb and lsa.key not in acked(sent)
    assert a.interfaces["l"].acks == []


def test_without_deferring_every_lsa_is_processed_at_once() -> None:
    lab, a, b = pair()
    a.defer_updates = False
    lsa = ri()
    from_b(lab, a, b, lsa)
    assert lsa.key in a.lsdb and a.updates_waiting() == 0
    assert acked(from_b(lab, a, b, lsa)) == [lsa.key]  # §13 (7): a direct ack


def busy_grid(defer: bool) -> tuple[Lab, list[OspfRouter]]:
    """A 3 x 3 grid of routers that work off one LS Update every 0.1 virtual seconds."""
    lab = Lab(service=0.1)
    rs = [lab.router(f"10.255.1.{i + 1}", defer_updates=defer) for i in range(9)]
    link = 0
    for i in range(9):
        for j in (i + 1, i + 3):
            if (j == i + 1 and j % 3 == 0) or j >= 9:
                continue
            for r, host in ((rs[i], 1), (rs[j], 2)):
                addr = f"10.0.{link}.{host}/30"
                lab.connect(f"l{link}", r, addr, ifname=f"p{link}", network_type="point-to-point")
            link += 1
    lab.start()
    for r in rs:
        feed(lab, r, OriginateOpaque(10, ri().key.ls_id, ri().body))
    return lab, rs


def test_a_busy_lab_converges_and_retransmits_less_when_deferring() -> None:
    old_lab, old = busy_grid(False)
    old_lab.run_until_converged(120)
    lab, rs = busy_grid(True)
    lab.run_until_converged(120)
    assert lab.synchronised() and len(rs[0].lsdb) == len(old[0].lsdb) == 18
    dropped = sum(r.lsu_counters["dropped_waiting"] for r in rs)
    retransmitted = sum(r.lsu_counters["retransmitted"] for r in rs)
    old_retransmitted = sum(r.lsu_counters["retransmitted"] for r in old)
    assert dropped > 0
    assert retransmitted < old_retransmitted
