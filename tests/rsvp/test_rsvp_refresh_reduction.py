"""RFC 2961 refresh reduction and RFC 2205 §3.7 state lifetime: the Bundle, Srefresh and
MESSAGE_ID_LIST codec, then the cores of the paper chain wired in memory on a virtual
clock (tests/support/rsvp_net.py): summary refresh both ways, NACKs, Bundles received,
MESSAGE_ID_ACKs piggy-backed on other messages, and the lifetime of state by the
neighbour's refresh period."""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from gmpls import ero
from gmpls.errors import DecodeError, EncodeError
from gmpls.rsvp import events as E
from gmpls.rsvp import examples as ex
from gmpls.rsvp import objects as O
from gmpls.rsvp.constants import MsgType
from gmpls.rsvp.message import Message, bundle_parts, decode
from tests.support.rsvp_net import NODES, Net

TN = ex.TN
#: RFC 2205 §3.7 with K = 3: L = 3.5 x 1.5 x R
K_FACTOR = (3 + 0.5) * 1.5


def _raw_message(msg_type: int, body: bytes) -> bytes:
    """An RSVP message of ``body`` with a zero (absent) checksum."""
    return struct.pack("!BBHBBH", 0x11, msg_type, 0, 255, 0, 8 + len(body)) + body


def _up(net: Net, tunnel: int = 1) -> None:
    net.create("tn1", tunnel, ex.fig9_ero(), None, 10e9)
    assert net.of("tn1", E.LspUp), net.of("tn1", E.LspDown)


def _sent(net: Net, src: str, dst: str, name: str) -> list[Message]:
    return [m for s, d, m in net.sent if (s, d, m.name) == (src, dst, name)]


def _feed(net: Net, node: str, src: IPv4Address, msg: Message | bytes) -> list[E.Action]:
    data = msg if isinstance(msg, bytes) else msg.encode()
    acts = net.apply(node, net.cores[node].handle(E.Received(src, data), net.now))
    net.run()
    return acts


def _nacks(acts: list[E.Action]) -> list[O.MessageIdNack]:
    return [o for a in acts if isinstance(a, E.Send) for o in a.message.all(O.MessageIdNack)]


# --- codec ------------------------------------------------------------------------------


def test_srefresh_and_its_message_id_list_on_the_wire() -> None:
    wire = ex.srefresh().encode()
    assert wire[1] == 15
    # MESSAGE_ID_ACK (24/1) piggy-backed, then MESSAGE_ID_LIST (25/1): epoch 101, IDs 1 3 4
    assert wire[8:20] == bytes.fromhex("000c18010000006600000002")
    assert wire[20:] == bytes.fromhex("0014190100000065000000010000000300000004")
    assert decode(wire) == ex.srefresh()
    with pytest.raises(DecodeError, match="MESSAGE_ID_LIST"):
        decode(Message(MsgType.SREFRESH, (O.MessageIdAck(2, 102),)).encode())


def test_message_id_src_and_mcast_lists() -> None:
    a, b = IPv4Address("10.1.1.1"), IPv4Address("10.1.1.2")
    src = O.MessageIdSrcList((O.SrcListEntry(7, a),), 5)
    assert O.encode_object(src) == bytes.fromhex("0010190200000005000000070a010101")
    mcast = O.MessageIdMcastList((O.McastListEntry(7, a, b),), 5)
    assert O.encode_object(mcast)[12:] == a.packed + b.packed
    for lst in (src, mcast):
        m = Message(MsgType.SREFRESH, (lst,))
        assert decode(m.encode()) == m and lst.message_ids == (7,)
    # the IPv6 lists (C-Types 3, 5) are not implemented: unknown C-Type (14)
    raw = _raw_message(15, bytes.fromhex("00181903") + bytes(20))
    with pytest.raises(DecodeError) as e:
        decode(raw)
    assert e.value.code == (14, (25 << 8) | 3)


def test_bundle_round_trip_and_sub_messages() -> None:
    b = ex.bundle()
    wire = b.encode()
    assert wire[1] == 12 and decode(wire) == b
    parts = bundle_parts(wire)
    assert parts == [p.encode() for p in b.parts]
    assert wire[8:] == b"".join(parts)


def test_bundle_framing_errors() -> None:
    path, hello = ex.paper_path().encode(), ex.hello().encode()
    for body in (
        b"",  # no sub-message
        hello[:6],  # a truncated sub-message header
        hello + bytes(4),  # 4 bytes that are no sub-message
        hello[:6] + struct.pack("!H", 4) + hello[8:],  # sub-message length < 8
        hello[:6] + struct.pack("!H", len(hello) + 4) + hello[8:],  # past the end
    ):
        with pytest.raises(DecodeError):
            bundle_parts(_raw_message(12, body))
        with pytest.raises(DecodeError):
            decode(_raw_message(12, body))
    nested = _raw_message(12, _raw_message(12, hello))
    assert bundle_parts(nested) == [_raw_message(12, hello)]
    with pytest.raises(DecodeError, match="Bundle inside a Bundle"):
        decode(nested)
    # a bad sub-message spoils decoding the whole, not the cutting into parts
    bad = path[:-4] + bytes(4)
    assert bundle_parts(_raw_message(12, bad + hello)) == [bad, hello]
    with pytest.raises(DecodeError):
        bundle_parts(path)
    for m in (
        Message(MsgType.BUNDLE, ()),
        Message(MsgType.BUNDLE, (O.TimeValues(1),), parts=(ex.hello(),)),
        Message(MsgType.BUNDLE, (), parts=(ex.bundle(),)),
        Message(MsgType.PATH, ex.paper_path().objects, parts=(ex.hello(),)),
    ):
        with pytest.raises(EncodeError):
            m.encode()


# --- summary refresh (RFC 2961 §5) ------------------------------------------------------


def test_refresh_by_srefresh_one_per_neighbour_and_period() -> None:
    """Five LSPs: each node refreshes what it sent each neighbour with one Srefresh per
    period listing the five Message IDs its neighbour acknowledged, none NACKed."""
    net = Net()
    plain = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label)]
    for t in range(1, 6):
        net.create("tn1", t, plain, None, 1e9)
    assert len(net.of("tn1", E.LspUp)) == 5
    path_ids = {m.get(O.MessageId).message_id for m in _sent(net, "tn1", "tn2", "PATH")}  # type: ignore[union-attr]
    net.ladder.clear()
    net.sent.clear()
    net.advance(300.0)
    assert not any(net.of(n, E.LspDown) for n in NODES)
    assert not [n for n in net.msgs() if n[2] in ("PATH", "RESV")]
    srefresh = _sent(net, "tn1", "tn2", "SREFRESH")
    assert len(srefresh) == 10
    for m in srefresh:
        lst = m.get(O.MessageIdList)
        assert lst is not None and set(lst.message_ids) == path_ids
        assert lst.epoch == net.cores["tn1"].epoch
    assert len(_sent(net, "tn2", "tn1", "SREFRESH")) == 10  # the five Resvs
    assert all(c.stats["nacks_tx"] == 0 for c in net.cores.values())


def test_srefresh_from_a_neighbour_keeps_its_state_and_unknown_ids_are_nacked() -> None:
    """tn2 hears nothing from tn1 but Srefreshes naming the Path's Message ID: the Path
    state outlives its lifetime; an unknown ID and the right ID of another epoch are
    NACKed."""
    net = Net()
    _up(net)
    mid = _sent(net, "tn1", "tn2", "PATH")[0].get(O.MessageId)
    assert mid is not None
    net.down.add("tn1")  # from now on tn1 says nothing but what the test sends
    for _ in range(20):  # ten minutes, four lifetimes
        net.advance(30.0)
        lists = (O.MessageIdList((mid.message_id, 999_999), mid.epoch),)
        acts = _feed(net, "tn2", TN[1], Message(MsgType.SREFRESH, lists, flags=1))
        assert _nacks(acts) == [O.MessageIdNack(999_999, mid.epoch)]
    assert not net.of("tn2", E.LspDown) and net.cores["tn2"].psbs
    other_epoch = O.MessageIdList((mid.message_id,), mid.epoch + 1)
    acts = _feed(net, "tn2", TN[1], Message(MsgType.SREFRESH, (other_epoch,)))
    assert _nacks(acts) == [O.MessageIdNack(mid.message_id, mid.epoch + 1)]
    net.advance(K_FACTOR * 30.0)  # no more Srefresh: the state times out
    assert net.of("tn2", E.LspDown)[-1].reason == "path state timeout"


def test_a_nack_makes_the_full_path_go_again_with_a_new_message_id() -> None:
    net = Net()
    _up(net)
    tn1 = net.cores["tn1"]
    mid = _sent(net, "tn1", "tn2", "PATH")[0].get(O.MessageId)
    assert mid is not None
    net.sent.clear()
    nack = Message(MsgType.ACK, (O.MessageIdNack(mid.message_id, tn1.epoch),), flags=1)
    _feed(net, "tn1", TN[2], nack)
    again = _sent(net, "tn1", "tn2", "PATH")
    assert len(again) == 1 and again[0].objects[1:] == _sent_path_body(net)
    new = again[0].get(O.MessageId)
    assert new is not None and new.message_id > mid.message_id and new.flags & 0x01
    assert tn1.stats["nacks_rx"] == 1 and not tn1.pending  # tn2 acknowledged it
    net.sent.clear()
    net.advance(30.0)
    lst = _sent(net, "tn1", "tn2", "SREFRESH")[0].get(O.MessageIdList)
    assert lst is not None and lst.message_ids == (new.message_id,)
    assert net.cores["tn2"].stats["nacks_tx"] == 0


def _sent_path_body(net: Net) -> tuple[O.RsvpObject, ...]:
    psb = next(iter(net.cores["tn1"].psbs.values()))
    assert psb.path_msg is not None
    return psb.path_msg.objects


def test_a_neighbour_that_lost_its_state_gets_it_back_through_nacks() -> None:
    """tn2 restarts (no Hello to notice): tn1's Srefresh and tn3's are NACKed, the full
    Path and Resv come again and the LSP stays up end to end."""
    net = Net()
    _up(net)
    net.restart("tn2")
    net.advance(90.0)
    tn2 = net.cores["tn2"]
    assert tn2.stats["nacks_tx"] >= 2
    assert [p.state for p in tn2.psbs.values()] == ["up"] and len(tn2.rsbs) == 1
    assert not any(net.of(n, E.LspDown) for n in NODES)
    net.sent.clear()
    net.advance(60.0)
    assert not [m for _, _, m in net.sent if m.name in ("PATH", "RESV")]
    assert all(c.stats["nacks_tx"] == 0 or c is tn2 for c in net.cores.values())


def test_a_changed_path_is_sent_whole_and_a_non_capable_neighbour_gets_full_refreshes() -> None:
    net = Net()
    _up(net)
    tn2 = net.cores["tn2"]
    # tn2's next messages to tn3 lack the refresh-reduction-capable flag: tn3 refreshes
    # tn2 with the full Resv, while tn1 keeps using Srefresh
    tn2.reliable = False
    net.advance(1.0)
    ping = Message(MsgType.HELLO, (O.HelloRequest(999, 0),), 1)
    _feed(net, "tn3", TN[2], ping)
    net.sent.clear()
    net.advance(30.0)
    assert len(_sent(net, "tn3", "tn2", "RESV")) == 1
    assert not _sent(net, "tn3", "tn2", "SREFRESH")
    assert len(_sent(net, "tn1", "tn2", "SREFRESH")) == 1
    # a Path whose content changed since it was acknowledged is refreshed whole
    tn1 = net.cores["tn1"]
    psb = next(iter(tn1.psbs.values()))
    assert psb.path_msg is not None
    psb.path_msg = replace(psb.path_msg, objects=(*psb.path_msg.objects, O.TimeValues(1)))
    net.sent.clear()
    net.advance(30.0)
    assert len(_sent(net, "tn1", "tn2", "PATH")) == 1
    assert not _sent(net, "tn1", "tn2", "SREFRESH")


# --- Bundle receive (RFC 2961 §3.4) -----------------------------------------------------


def test_bundle_sub_messages_are_processed_each_as_if_alone() -> None:
    net = Net(drop=lambda s, d, m: (s, d, m.name) == ("tn1", "tn2", "PATH"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    path = _sent(net, "tn1", "tn2", "PATH")[0]
    net.drop = None
    hello = Message(MsgType.HELLO, (O.HelloRequest(101, 0),), 1)
    bundle = Message(MsgType.BUNDLE, (), flags=1, parts=(path, hello))
    acts = _feed(net, "tn2", TN[1], bundle)
    sends = [(a.dst, a.message.name) for a in acts if isinstance(a, E.Send)]
    assert (TN[1], "HELLO") in sends and (TN[3], "PATH") in sends and (TN[1], "ACK") in sends
    assert net.of("tn1", E.LspUp)
    assert net.cores["tn2"].stats["bundles_rx"] == 1


def test_a_bad_sub_message_is_answered_alone_and_a_nested_bundle_dropped() -> None:
    net = Net(drop=lambda s, d, m: (s, d, m.name) == ("tn1", "tn2", "PATH"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    path = _sent(net, "tn1", "tn2", "PATH")[0].encode()
    net.drop = None
    # the Path with an object of unknown class 50 (0bbbbbbb): error 13 (RFC 2205 §3.10)
    bad = _raw_message(1, path[8:] + struct.pack("!HBB", 8, 50, 1) + bytes(4))
    hello = Message(MsgType.HELLO, (O.HelloRequest(101, 0),), 1).encode()
    nested = _raw_message(12, hello)
    tn2 = net.cores["tn2"]
    acts = tn2.handle(E.Received(TN[1], _raw_message(12, bad + nested + hello)), net.now)
    errs = [a.message for a in acts if isinstance(a, E.Send) and a.message.name == "PATH_ERR"]
    assert len(errs) == 1
    es = errs[0].get(O.ErrorSpecIfId)
    assert es is not None and (es.code, es.value) == (13, (50 << 8) | 1)
    assert [a.message.name for a in acts if isinstance(a, E.Send)].count("HELLO") == 1
    assert tn2.stats["rx_dropped"] == 1 and tn2.stats["bundles_rx"] == 1
    assert not tn2.psbs
    tn2.handle(E.Received(TN[1], _raw_message(12, b"")), net.now)
    assert tn2.stats["rx_errors"] == 2  # the bad Path, then the empty Bundle


# --- MESSAGE_ID_ACK piggy-backed (RFC 2961 §4.6) -----------------------------------------


def test_an_ack_piggybacked_on_a_resv_stops_the_retransmission() -> None:
    """tn2's Ack of tn1's Path is lost; the Resv that follows carries a MESSAGE_ID_ACK of
    the Path (as refresh-reduction capable routers do): tn1 stops retransmitting."""
    net = Net(drop=lambda s, d, m: (s, d) == ("tn2", "tn1"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    mid = _sent(net, "tn1", "tn2", "PATH")[0].get(O.MessageId)
    resv = _sent(net, "tn2", "tn1", "RESV")[0]
    assert mid is not None and not net.of("tn1", E.LspUp)
    net.drop = None
    piggy = replace(resv, objects=(O.MessageIdAck(mid.message_id, mid.epoch), *resv.objects))
    _feed(net, "tn1", TN[2], piggy)
    tn1 = net.cores["tn1"]
    assert net.of("tn1", E.LspUp) and not tn1.pending
    net.sent.clear()
    net.advance(8.0)
    assert tn1.stats["retransmits"] == 0 and not _sent(net, "tn1", "tn2", "PATH")
    assert tn1.stats["acks_rx"] == 1


def test_acks_piggybacked_on_a_srefresh_count_too() -> None:
    net = Net(drop=lambda s, d, m: (s, d, m.name) == ("tn2", "tn1", "ACK"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    mid = _sent(net, "tn1", "tn2", "PATH")[0].get(O.MessageId)
    assert mid is not None and net.cores["tn1"].pending
    net.drop = None
    lists = (O.MessageIdAck(mid.message_id, mid.epoch), O.MessageIdList((), 102))
    _feed(net, "tn1", TN[2], Message(MsgType.SREFRESH, lists, flags=1))
    assert not net.cores["tn1"].pending


# --- state lifetime (RFC 2205 §3.7) -----------------------------------------------------


def test_state_lives_by_the_refresh_period_of_the_neighbour_that_sent_it() -> None:
    """tn1 refreshes every 300 s, the others every 30 s: tn2 keeps tn1's Path state for
    3.5 x 1.5 x 300 s, not the 157.5 s its own R would give; tn1 keeps tn2's Resv state
    157.5 s."""
    net = Net(refresh_of={"tn1": 300_000})
    _up(net)
    net.advance(900.0)
    assert not any(net.of(n, E.LspDown) for n in NODES)
    (psb,) = net.cores["tn2"].psbs.values()
    assert psb.lifetime == K_FACTOR * 300.0
    (rsb,) = net.cores["tn1"].rsbs.values()
    assert rsb.lifetime == K_FACTOR * 30.0


def test_state_of_a_fast_refreshing_neighbour_times_out_by_its_period() -> None:
    """tn1 refreshes every second and dies: tn2 drops the Path state after 3.5 x 1.5 x 1 s
    and tells downstream, instead of holding it for 157.5 s."""
    net = Net(refresh_of={"tn1": 1000})
    _up(net)
    net.advance(3.0)
    net.down.add("tn1")
    net.advance(K_FACTOR * 1.0 + 1.0)
    assert not net.cores["tn2"].psbs
    assert net.of("tn5", E.LspDown)[-1].reason == "PathTear"


def test_a_zero_refresh_period_counts_as_our_own() -> None:
    net = Net()
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    tn2 = net.cores["tn2"]
    (psb,) = tn2.psbs.values()
    path = _sent(net, "tn1", "tn2", "PATH")[0]
    zero = [O.TimeValues(0) if isinstance(o, O.TimeValues) else o for o in path.objects]
    _feed(net, "tn2", TN[1], replace(path, objects=tuple(zero)))
    assert psb.lifetime == K_FACTOR * 30.0
