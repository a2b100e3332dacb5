"""RFC 2328 / RFC 5250 conformance points of issue 11 (codec and cores in memory).

Item 4: an opaque LSA whose body our decoder rejects is stored, acknowledged and flooded.
Item 7: a bad LSA checksum discards that LSA, not the LS Update (§13 step 1).
Item 8: MaxSequenceNumber is flushed before the sequence number wraps (§12.1.6).
Item 15: keyed-MD5 sequence numbers: a replay is dropped, ours follow the wall clock (§D.4.3).
Item 17: the O bit is in DD packets only (RFC 5250); the Backup DR acks only what came from
the DR (§13.5); the Available Labels sub-TLV has an experimental, configurable type.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface

from gmpls import qe
from gmpls.core import Tick
from gmpls.ospf import examples as ex
from gmpls.ospf import lsa as L
from gmpls.ospf import packet as P
from gmpls.ospf import router as R
from gmpls.ospf import te as T
from gmpls.ospf.constants import (
    INITIAL_SEQUENCE,
    LSA_HEADER_LEN,
    MAX_AGE,
    MAX_SEQUENCE,
    LsType,
    Options,
)
from gmpls.ospf.events import AuthConfig, InterfaceConfig, InterfaceUp, OriginateOpaque, Send
from gmpls.ospf.fsm import IfState, NbrState
from gmpls.ospf.lsa import LSA, LSAKey, UnknownBody
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import te_lsa_id
from gmpls.tlv import UnknownTlv, decode_tlvs
from gmpls.wire import Reader
from pce.ted import Ted
from tests.ospf.test_ospf_core import _ri, converged_lan, iface, lan_lab
from tests.support.ospf_lab import Lab

PHANTOM = IPv4Address("10.9.9.9")  # an advertising router that is not in the lab


def _bad_te_body() -> bytes:
    """A TE LSA body (RFC 3630) whose Link TLV holds a Link Type sub-TLV of length 2
    (RFC 3630 §2.5.1 says 1): our TE decoder rejects it, flooding must not care."""
    sub = struct.pack("!HH", 1, 2) + b"\x01\x00" + b"\x00\x00"
    return struct.pack("!HH", 2, len(sub)) + sub


def _bad_te_lsa(adv: IPv4Address = PHANTOM, instance: int = 7) -> LSA:
    body = UnknownBody(_bad_te_body())
    return LSA.build(LsType.OPAQUE_AREA, te_lsa_id(instance), adv, INITIAL_SEQUENCE, body)


def _corrupted(lsa: LSA) -> LSA:
    """``lsa`` with one body byte flipped after the checksum was computed."""
    raw = bytearray(lsa.encode())
    raw[LSA_HEADER_LEN + 1] ^= 0x40
    return replace(lsa, wire=bytes(raw))


# ---------------------------------------------------------------- item 4


def test_lsu_keeps_an_opaque_lsa_whose_body_is_malformed() -> None:
    bad = _bad_te_lsa()
    raw = P.Packet(ex.TN2, ex.AREA0, P.LSUpdate((ex.ri_lsa(), bad))).encode()
    got = P.decode(raw).body.lsas
    assert [a.key for a in got] == [ex.ri_lsa().key, bad.key]
    assert got[1].decoded is L._UNDECODED  # bodies are decoded when first read
    assert got[0].usable and got[0].body == ex.ri_lsa().body
    assert isinstance(got[1].body, L.MalformedBody) and not got[1].usable
    assert "link" in got[1].body.reason
    assert got[1].checksum_ok and got[1].encode() == bad.encode()  # flooded unchanged
    ted = Ted()
    assert not ted.install(got[1]) and ted.unusable == 1  # the PCE counts it, uses it not


def test_a_neighbour_holding_an_undecodable_lsa_still_reaches_full() -> None:
    """A router whose database holds a TE LSA our decoder rejects: the others request it,
    install it, acknowledge it and flood it on; no one stays in Loading."""
    lab = Lab()
    holder, *others = [lab.router(f"10.1.1.{i}") for i in (1, 2, 3)]
    for r in (holder, *others):
        lab.connect("ctrl", r, f"{r.router_id}/24")
    lab.start(holder)
    lab.feed(holder, OriginateOpaque(10, te_lsa_id(7), UnknownBody(_bad_te_body())))
    lab.sim.run(1)
    for r in others:
        lab.start(r)
    lab.run_until_converged(60)
    key = LSAKey(10, te_lsa_id(7), holder.router_id)
    for r in others:
        e = r.lsdb.get(key)
        assert e is not None and not e.lsa.usable
        assert all(n.state >= NbrState.TWO_WAY for _, n in r.neighbors())
        assert not any(n.rxmt for _, n in r.neighbors())
    assert not any(n.rxmt for _, n in holder.neighbors())  # acknowledged


def test_an_undecodable_router_lsa_is_flooded_counted_and_left_out_of_spf() -> None:
    lab, rs = converged_lan(2)
    routes = dict(rs[0].routes)
    raw = struct.pack("!BBH", 0, 0, 1)  # one link announced, none there
    bad = LSA.build(LsType.ROUTER, PHANTOM, PHANTOM, INITIAL_SEQUENCE, UnknownBody(raw))
    lsu = P.Packet(rs[1].router_id, ex.AREA0, P.LSUpdate((bad,)))
    lab.inject(rs[0], "ctrl", lsu.encode(), "10.1.1.2", "224.0.0.5")
    assert bad.key in rs[0].lsdb and iface(rs[0]).counters["unusable_lsa"] == 1
    lab.sim.run(3)
    assert rs[0].routes == routes


# ---------------------------------------------------------------- item 7


def test_lsu_with_a_bad_lsa_checksum_still_decodes() -> None:
    lsas = (ex.ri_lsa(), _corrupted(ex.te_link_lsa()))
    got = P.decode(P.Packet(ex.TN1, ex.AREA0, P.LSUpdate(lsas)).encode()).body.lsas
    assert [a.checksum_ok for a in got] == [True, False]


def test_one_bad_lsa_checksum_discards_that_lsa_only() -> None:
    lab, rs = converged_lan(2)
    good, bad = ex.ri_lsa(PHANTOM), _corrupted(ex.te_link_lsa(PHANTOM))
    lsu = P.Packet(rs[1].router_id, ex.AREA0, P.LSUpdate((bad, good)))
    lab.record = True
    lab.inject(rs[0], "ctrl", lsu.encode(), "10.1.1.2", "224.0.0.5")
    assert good.key in rs[0].lsdb and bad.key not in rs[0].lsdb
    assert iface(rs[0]).counters["bad_lsa_checksum"] == 1
    lab.sim.run(3)
    acked = [
        h.key
        for _, rid, s in lab.sent
        if rid == rs[0].router_id and isinstance(b := P.decode(s.data).body, P.LSAck)
        for h in b.headers
    ]
    assert acked == [good.key]  # the good one acknowledged, the bad one not


# ---------------------------------------------------------------- item 8


def _sent_instances(lab: Lab, rid: IPv4Address, key: LSAKey) -> list[tuple[int, int]]:
    """(age, sequence) of every instance of ``key`` that ``rid`` sent, in order."""
    out = []
    for _, who, s in lab.sent:
        body = P.decode(s.data).body if who == rid else None
        if isinstance(body, P.LSUpdate):
            out += [(a.header.age, a.header.seq) for a in body.lsas if a.key == key]
    return out


def test_max_sequence_number_is_flushed_before_the_wrap() -> None:
    """Our RI LSA comes back with MaxSequenceNumber (§13.4: re-originate above it). RFC
    2328 §12.1.6: flood that instance with MaxAge first, and only once it is acknowledged
    and removed originate again with InitialSequenceNumber."""
    lab, rs = converged_lan(2)
    me, other = rs
    lab.feed(me, _ri())
    lab.run_until_converged(lab.now + 30)
    key = LSAKey(10, _ri().ls_id, me.router_id)
    at_max = LSA.build(10, key.ls_id, me.router_id, MAX_SEQUENCE, _ri().body, options=0x42)
    lab.record = True
    lsu = P.Packet(other.router_id, ex.AREA0, P.LSUpdate((at_max,)))
    lab.inject(me, "ctrl", lsu.encode(), str(iface(other).ip), "224.0.0.5")
    lab.sim.run(0.1)  # the flood pacing interval
    assert _sent_instances(lab, me.router_id, key) == [(MAX_AGE, MAX_SEQUENCE)]
    lab.run_until_converged(lab.now + 30)
    sent = _sent_instances(lab, me.router_id, key)
    first_initial = next(i for i, (_, seq) in enumerate(sent) if seq == INITIAL_SEQUENCE)
    assert all(seq == MAX_SEQUENCE for _, seq in sent[:first_initial])
    for r in rs:
        e = r.lsdb.get(key)
        assert e is not None and e.lsa.header.seq == INITIAL_SEQUENCE and e.age(lab.now) < 60


# ---------------------------------------------------------------- item 15

MD5 = AuthConfig(autype=2, key=b"quantum", key_id=7)


def test_a_replayed_md5_packet_is_dropped() -> None:
    lab, rs = lan_lab(2, auth=MD5)
    lab.record = True
    lab.start()
    lab.run_until_converged(60)
    first = next(s for _, rid, s in lab.sent if rid == rs[1].router_id)
    lab.inject(rs[0], "ctrl", first.data, "10.1.1.2", str(first.dst))
    assert iface(rs[0]).counters["auth_replay"] == 1
    lab.sim.run(5)
    assert lab.all_full() and iface(rs[0]).counters["auth_replay"] == 1


def _crypto_seqs(actions: list[object]) -> list[int]:
    return [P.decode(a.data).auth.crypto_seq for a in actions if isinstance(a, Send)]


def test_our_md5_sequence_keeps_increasing_across_a_restart() -> None:
    """RFC 2328 §D.4.3: the sequence number never decreases, also when the process
    restarts (a neighbour such as FRR drops lower ones until its dead interval ends)."""
    conf = InterfaceConfig("ctrl", IPv4Interface("10.1.1.1/24"), auth=MD5, hello_interval=1)
    wall = R.CRYPTO_EPOCH + 1_000_000.0
    r = OspfRouter("10.1.1.1", wall_clock=wall)
    seqs = _crypto_seqs(r.handle(InterfaceUp(conf), 0.0))
    for t in range(30):
        seqs += _crypto_seqs(r.handle(Tick(), float(t)))
    assert len(seqs) >= 29 and seqs == sorted(set(seqs))
    # a new process 2 s later: its own clock starts at 0 again, the wall clock does not
    fresh = OspfRouter("10.1.1.1", wall_clock=wall + 31)
    fresh.handle(InterfaceUp(conf), 0.0)
    assert _crypto_seqs(fresh.handle(Tick(), 0.0))[0] > seqs[-1]


# ---------------------------------------------------------------- item 17


def test_o_bit_in_database_description_packets_only() -> None:
    lab, _ = lan_lab(2)
    lab.record = True
    lab.start()
    lab.run_until_converged(60)
    bodies = [P.decode(s.data).body for _, _, s in lab.sent]
    hellos = [b for b in bodies if isinstance(b, P.Hello)]
    dds = [b for b in bodies if isinstance(b, P.DatabaseDescription)]
    assert hellos and all(h.options == Options.E for h in hellos)
    assert dds and all(d.options & Options.O for d in dds)


def test_backup_dr_acks_only_what_came_from_the_dr() -> None:
    """RFC 2328 §13.5: an LSA not flooded back out: the Backup DR sends a delayed ack if
    it came from the DR, otherwise nothing (the DR's flooding acknowledges it)."""
    lab, rs = converged_lan(3)
    drother, bdr, dr = rs
    assert iface(bdr).state == IfState.BACKUP and iface(dr).state == IfState.DR
    from_drother = ex.ri_lsa(PHANTOM)
    lsu = P.Packet(drother.router_id, ex.AREA0, P.LSUpdate((from_drother,)))
    lab.inject(bdr, "ctrl", lsu.encode(), "10.1.1.1", "224.0.0.6")
    assert from_drother.key in bdr.lsdb and iface(bdr).acks == []
    from_dr = ex.te_link_lsa(PHANTOM)
    lsu = P.Packet(dr.router_id, ex.AREA0, P.LSUpdate((from_dr,)))
    lab.inject(bdr, "ctrl", lsu.encode(), "10.1.1.3", "224.0.0.5")
    assert [h.key for h in iface(bdr).acks] == [from_dr.key]


def test_available_labels_sub_tlv_type_is_experimental_and_configurable() -> None:
    """RFC 3630 (IANA): sub-TLV types below 32768 are Standards Action; ours, whose value is
    not RFC 7580's, uses the experimental range and moves with ``qe.configure``."""
    al = T.AvailableLabels.from_channels([1, 2, 3])
    assert 32768 <= qe.CODEPOINTS.te_available_labels <= 32777
    assert al.encode()[:2] == qe.CODEPOINTS.te_available_labels.to_bytes(2, "big")
    old = qe.CODEPOINTS
    try:
        qe.configure(te_available_labels=32770)
        wire = al.encode()
        assert wire[:2] == b"\x80\x02"
        assert decode_tlvs(Reader(wire, "t"), T.LINK_SUBTLVS, "s") == (al,)
        legacy = UnknownTlv(35, wire[4:]).encode()  # the type we used to send
        assert decode_tlvs(Reader(legacy, "t"), T.LINK_SUBTLVS, "s") == (UnknownTlv(35, wire[4:]),)
    finally:
        qe.CODEPOINTS = old
