"""The TED (pce/ted.py) from OSPF LSAs: ours, decoded from their wire bytes, FRR's layout,
incremental install/flush, and liveness from the control-plane graph."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from gmpls.ospf import examples as oex
from gmpls.ospf.constants import INITIAL_SEQUENCE, MAX_AGE, LsType
from gmpls.ospf.lsa import LSA, LSAKey
from gmpls.ospf.te import Link, LinkId, LinkType, RouterAddress, TeLSA, TeMetric, te_lsa_id
from gmpls.topology import load
from pce.synth import topology_lsas
from pce.ted import Ted
from tests.support.pce_graphs import OPTS, graph, lan, ri, rid, te_link

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"


def paper_ted(root: IPv4Address | None = None) -> Ted:
    ted = Ted(root)
    # as received from the wire: encoded, then decoded with checksum verification
    for lsa in topology_lsas(load(PAPER)):
        ted.install(LSA.decode(lsa.encode()))
    return ted


def test_paper_ted_from_wire_bytes() -> None:
    ted = paper_ted()
    nodes = ted.nodes()
    assert [str(n) for n in nodes] == [f"10.1.1.{i}" for i in range(1, 6)]
    assert [str(n) for n, v in nodes.items() if v.qe] == ["10.1.1.1", "10.1.1.5"]
    assert all(v.te for v in nodes.values())
    links = ted.links()
    assert len(links) == 10  # 5 TE links, both directions
    tn2 = {lk.local_id: lk for lk in nodes[IPv4Address("10.1.1.2")].links}
    assert tn2[3].remote_router == IPv4Address("10.1.1.4") and tn2[3].remote_id == 1
    assert tn2[3].metric == 30 and tn2[1].metric == 10
    assert tn2[1].channels == tuple(range(1, 9))
    assert tn2[1].max_bandwidth == pytest.approx(100e9 / 8, rel=1e-7)  # float32 on the wire
    js = ted.as_json()
    assert len(js["nodes"]) == 5 and js["usable_links"] == 10


def test_ospf_examples_and_frr_layout() -> None:
    """The OSPF helper's example LSAs, and FRR's several-TLVs-in-one-LSA layout with a
    numbered link (no local/remote identifiers) that an unnumbered TED skips."""
    ted = Ted()
    for lsa in (oex.ri_lsa(), oex.te_router_lsa(), oex.te_link_lsa(), oex.te_combined_lsa()):
        assert ted.install(LSA.decode(lsa.encode()))
    numbered = Link((LinkType(1), LinkId(IPv4Address("10.9.9.9")), TeMetric(5)))
    frr = TeLSA((RouterAddress(IPv4Address("10.0.9.9")), numbered))
    ted.install(LSA.build(10, te_lsa_id(7), "10.0.9.9", INITIAL_SEQUENCE, frr, options=OPTS))
    nodes = ted.nodes()
    assert nodes[oex.TN1].qe and nodes[oex.TN1].router_address == oex.TN1
    assert len(nodes[oex.TN1].links) == 2  # link 1 twice (link LSA and combined LSA)
    frr_node = nodes[IPv4Address("10.0.9.9")]
    assert frr_node.te and not frr_node.qe and frr_node.links == ()
    assert ted.links() == []  # tn2 never advertised the reverse direction


def test_incremental_install_flush_and_maxage() -> None:
    ted = graph(
        {1: True, 2: False, 3: True}, [(1, 1, 2, 1, 10, range(1, 9)), (2, 2, 3, 1, 10, [1])]
    )
    v = ted.version
    assert len(ted.links()) == 4
    # same content again: no change, no version bump
    assert not ted.install(te_link(1, 1, 2, 1))
    assert ted.version == v
    # a new instance with fewer channels replaces the old one
    assert ted.install(te_link(1, 1, 2, 1, channels=[3], seq=INITIAL_SEQUENCE + 1))
    link = next(lk for lk in ted.links() if lk.router == rid(1))
    assert link.channels == (3,)
    # flush by key: one direction gone, so the link is unusable both ways
    key = LSAKey(LsType.OPAQUE_AREA, te_lsa_id(1), rid(1))
    assert ted.flush(key) and not ted.flush(key)
    assert len(ted.links()) == 2
    # a MaxAge instance is a flush; QE bit withdrawn by a new RI instance
    assert ted.install(te_link(2, 2, 3, 1, channels=[1]).with_age(MAX_AGE))
    assert ted.links() == []
    ted.install(ri(3, False, seq=INITIAL_SEQUENCE + 1))
    assert not ted.nodes()[rid(3)].qe
    assert ted.flushes == 2


def test_every_te_lsa_instance_stamps_its_links() -> None:
    """The stamp the lambda ledger compares (pce/lspdb.py): a new one for each TE LSA
    instance describing or withdrawing the link, the same content or not; the reverse
    direction as the LSA names it."""
    ted = graph({1: True, 2: True}, [(1, 1, 2, 1, 10, range(1, 9))])
    a, b = (rid(1), 1), (rid(2), 1)
    assert ted.reverse_of(a) == b and ted.reverse_of(b) == a and ted.reverse_of((rid(3), 1)) is None
    s = ted.te_stamp(a)
    assert s > 0 and ted.te_stamp((rid(3), 1)) == 0
    assert not ted.install(te_link(1, 1, 2, 1, seq=INITIAL_SEQUENCE + 1))  # no change...
    assert ted.te_stamp(a) > s  # ...but a newer instance
    s, other = ted.te_stamp(a), ted.te_stamp(b)
    assert ted.flush(LSAKey(LsType.OPAQUE_AREA, te_lsa_id(1), rid(1)))
    assert ted.te_stamp(a) > s and ted.te_stamp(b) == other


def test_liveness_from_router_and_network_lsas() -> None:
    """With a root (the PCE's router ID), a node the DR's Network LSA no longer lists is
    not alive, even though its own LSAs are still in the database."""
    pce = rid(200)
    ted = graph({1: True, 2: False, 3: False}, [(1, 1, 2, 1, 10, [1]), (2, 2, 3, 1, 10, [1])])
    ted.root = pce
    assert ted.nodes() == {}  # no control-plane LSAs yet: nothing reachable
    ted.load(lan([pce, rid(1), rid(2), rid(3)], dr=rid(1)))
    assert list(ted.nodes()) == [rid(1), rid(2), rid(3)]
    # node 3 stops: the DR re-originates its Network LSA without it
    (net,) = (x for x in lan([pce, rid(1), rid(2)], dr=rid(1)) if x.header.ls_type == 2)
    ted.install(LSA.build(2, rid(1), rid(1), INITIAL_SEQUENCE + 1, net.body, options=OPTS))
    assert list(ted.nodes()) == [rid(1), rid(2)]
    assert len(ted.links()) == 2


def test_a_dr_change_keeps_every_live_node() -> None:
    """The DR (node 3) dies: the new DR (node 2) originates its Network LSA, the routers
    re-originate their Router LSAs naming it one by one, and the dead DR's Network LSA
    stays in the database. Throughout, node 3 goes and nobody else does (the failure of
    docs/qe-service.md#a-node-dies: the whole TED gone for a second)."""
    pce = rid(200)
    ted = graph(
        {1: True, 2: False, 3: False, 4: True},
        [
            (1, 1, 2, 1, 10, [1]),
            (2, 2, 3, 1, 10, [1]),
            (3, 2, 4, 1, 10, [1]),
            (2, 3, 4, 2, 30, [1]),
        ],
    )
    ted.root = pce
    ted.load(lan([pce, rid(1), rid(2), rid(3), rid(4)], dr=rid(3)))
    assert list(ted.nodes()) == [rid(1), rid(2), rid(3), rid(4)]
    after = {x.key: x for x in lan([pce, rid(1), rid(2), rid(4)], dr=rid(2))}
    new_net = next(x for x in after.values() if x.header.ls_type == LsType.NETWORK)
    seen = []
    for r in (pce, rid(2), rid(1)):  # node 4's Router LSA still names the dead DR
        ted.install(_newer(after[LSAKey(LsType.ROUTER, r, r)]))
        seen.append(list(ted.nodes()))
    ted.install(new_net)
    seen.append(list(ted.nodes()))
    live = [rid(1), rid(2), rid(4)]
    # until the PCE's own Router LSA names the new DR (and its Network LSA has come), the
    # LAN is the old DR's: node 3 is still there; after that, only node 3 is gone
    assert seen == [[rid(1), rid(2), rid(3), rid(4)]] * 3 + [live]
    ted.install(_newer(after[LSAKey(LsType.ROUTER, rid(4), rid(4))]))
    assert list(ted.nodes()) == live and len(ted.links()) == 4


def _newer(lsa: LSA) -> LSA:
    h = lsa.header
    return LSA.build(h.ls_type, h.ls_id, h.adv_router, h.seq + 1, lsa.body, options=h.options)
