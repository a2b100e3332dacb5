"""The QKD site graph of the TED (pce/ted.py): QKD-link TLVs from the wire, both ends
merged, updates, flushes, liveness, malformed TLVs, and the TE graph left alone."""

from __future__ import annotations

from ipaddress import IPv4Address

from gmpls import qe
from gmpls.ospf.constants import INITIAL_SEQUENCE, MAX_AGE, LsType
from gmpls.ospf.lsa import LSA
from gmpls.ospf.qkdlink import qkd_lsa_id
from gmpls.ospf.te import TeLSA
from gmpls.tlv import UnknownTlv
from pce.keyroute import link_key
from pce.ted import Ted
from tests.support.pce_graphs import OPTS, lan, qkd_links, qkd_lsa, ri, rid, te_link

RING = [(1, 2), (2, 3), (3, 1)]


def wire(lsa: LSA) -> LSA:
    return LSA.decode(lsa.encode())


def test_graph_from_both_ends() -> None:
    ted = Ted()
    for lsa in qkd_links(RING, rate=2000, stock=5000):
        assert ted.install(wire(lsa))
    g = ted.qkd_graph()
    assert g.sites == {rid(1), rid(2), rid(3)}
    lk = g.links[link_key(rid(1), rid(2))]
    assert (lk.up, lk.two_way) == (True, True)
    for end in (rid(1), rid(2)):
        d = lk.draw(end)
        assert (d.rate_bps, d.stock_bits, d.buffer_bits) == (2000, 5000, 100_000)
    assert ted.nodes() == {}  # QKD-link LSAs make no TE node


def test_update_down_and_flush() -> None:
    ted = Ted()
    ted.load(wire(lsa) for lsa in qkd_links(RING))
    seq = INITIAL_SEQUENCE + 1
    ted.install(wire(qkd_lsa(1, 2, 0, rate=500, stock=10, seq=seq)))
    lk = ted.qkd_graph().links[link_key(rid(1), rid(2))]
    assert (lk.draw(rid(1)).rate_bps, lk.draw(rid(1)).stock_bits) == (500, 10)  # 1's direction
    assert lk.draw(rid(2)).rate_bps != 500  # 2's is its own
    ted.install(wire(qkd_lsa(2, 1, 0, up=False, seq=seq)))
    assert not ted.qkd_graph().links[link_key(rid(1), rid(2))].usable
    assert ted.install(qkd_lsa(2, 1, 0, seq=seq + 1).with_age(MAX_AGE))
    assert not ted.qkd_graph().links[link_key(rid(1), rid(2))].two_way


def test_flush_removes_the_advertisement() -> None:
    ted = Ted()
    lsas = qkd_links([(1, 2)])
    ted.load(lsas)
    assert ted.flush(lsas[0].key)
    assert not ted.qkd_graph().links[link_key(rid(1), rid(2))].two_way
    assert ted.flush(lsas[1].key)
    assert ted.qkd_graph().links == {}


def test_only_alive_routers_count() -> None:
    ted = Ted(root=rid(1))
    ted.load(lan([rid(1), rid(2)], dr=rid(1)))
    ted.load(qkd_links([(1, 2), (2, 3)]))  # 3 is not reachable: its ads do not count
    g = ted.qkd_graph()
    assert g.links[link_key(rid(1), rid(2))].usable
    assert not g.links[link_key(rid(2), rid(3))].two_way


def test_malformed_qkd_tlv_is_counted_and_skipped() -> None:
    bad = TeLSA((UnknownTlv(qe.CODEPOINTS.te_qkd_link, b"\x00\x01\x00\x04\x0a\x00\x00\x01"),))
    lsa = LSA.build(LsType.OPAQUE_AREA, qkd_lsa_id(0), rid(1), INITIAL_SEQUENCE, bad, options=OPTS)
    ted = Ted()
    ted.install(lsa)
    assert ted.unusable >= 1 and ted.qkd_graph().links == {}


def test_te_graph_unchanged_by_qkd_lsas() -> None:
    ted = Ted()
    ted.load([ri(1, True), ri(2, True), te_link(1, 1, 2, 1), te_link(2, 1, 1, 1)])
    before = (ted.nodes(), ted.links(), ted.version)
    ted.load(qkd_links([(1, 2)]))
    assert (ted.nodes(), ted.links(), ted.version) == before
    assert ted.qkd_version == 2
    assert ted.qkd_graph().sites == {IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")}
