"""The rtnetlink requests of a transit cross-connect (node_agent/tcnl.py), without a kernel:
each operation's request walked attribute by attribute, its tc line, and the answers read.
That the kernel installs what ``tc`` installs is tests/rsvp/test_xconnect_netns.py."""

from __future__ import annotations

import struct

from node_agent import tcnl
from node_agent.tcnl import TcOp, ack, clear_ops, encode, redirect_ops, unredirect_ops


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    at = 0
    while at + 4 <= len(data):
        n, kind = struct.unpack_from("=HH", data, at)
        out[kind] = data[at + 4 : at + n]
        at += (n + 3) & ~3
    return out


def _split(msg: bytes) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, bytes]]:
    head = struct.unpack_from("=IHHII", msg)
    assert head[0] == len(msg)
    tcm = struct.unpack_from("=BxxxiIII", msg, 16)
    return head, tcm, _attrs(msg[36:])


def test_the_ops_and_their_tc_lines() -> None:
    ops = redirect_ops("te2l1", "te3l1")
    assert [op.line() for op in ops] == [
        "qdisc del dev te2l1 clsact",
        "qdisc add dev te2l1 clsact",
        "filter add dev te2l1 ingress protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev te3l1",
    ]
    assert [op.expected_to_fail for op in ops] == [True, False, False]
    assert ops[2].what() == "tc filter add on te2l1"
    assert clear_ops(["a", "b"]) == [TcOp("del", "a"), TcOp("del", "b")]
    # a channel that has our qdisc already: only the filter is replaced
    again = redirect_ops("te2l1", "te3l2", fresh=False)
    assert [op.line() for op in again] == [
        "filter del dev te2l1 ingress protocol all prio 1",
        "filter add dev te2l1 ingress protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev te3l2",
    ]
    assert [op.expected_to_fail for op in again] == [True, False]
    assert again[0].what() == "tc filter del on te2l1"
    assert unredirect_ops(["a"]) == [TcOp("unredirect", "a")]


def test_clsact_add_and_del() -> None:
    head, tcm, attrs = _split(encode(TcOp("add", "te2l1"), 7, 12))
    assert head[1:4] == (tcnl.RTM_NEWQDISC, 0x1 | 0x4 | 0x400 | 0x200, 7)
    assert tcm == (0, 12, 0xFFFF0000, 0xFFFFFFF1, 0)
    assert attrs == {tcnl.TCA_KIND: b"clsact\0"}
    head, tcm, attrs = _split(encode(TcOp("del", "te2l1"), 8, 12))
    assert head[1:4] == (tcnl.RTM_DELQDISC, 0x1 | 0x4, 8)
    assert tcm == (0, 12, 0xFFFF0000, 0xFFFFFFF1, 0)


def test_the_filter_taken_off() -> None:
    head, tcm, attrs = _split(encode(TcOp("unredirect", "te2l1"), 10, 12))
    assert head[1:4] == (tcnl.RTM_DELTFILTER, 0x1 | 0x4, 10)
    # handle 0 on the ingress hook, prio 1, protocol all: the whole filter of that priority
    assert tcm == (0, 12, 0, 0xFFFFFFF2, (1 << 16) | 0x0300)
    assert attrs == {}


def test_the_redirect_filter() -> None:
    head, tcm, attrs = _split(encode(TcOp("redirect", "te2l1", "te3l1"), 9, 12, 15))
    assert head[1:4] == (tcnl.RTM_NEWTFILTER, 0x1 | 0x4 | 0x400 | 0x200, 9)
    # ingress of the clsact qdisc, prio 1, protocol all (ETH_P_ALL in network order)
    assert tcm == (0, 12, 0, 0xFFFFFFF2, (1 << 16) | 0x0300)
    assert attrs[tcnl.TCA_KIND] == b"u32\0"
    options = _attrs(attrs[tcnl.TCA_OPTIONS])
    sel = options[tcnl.TCA_U32_SEL]
    assert len(sel) == 32  # the selector and one key
    assert sel[:3] == bytes([tcnl.TC_U32_TERMINAL, 0, 1]) and sel[16:] == bytes(16)
    (action,) = _attrs(options[tcnl.TCA_U32_ACT]).items()
    assert action[0] == 1  # the first action
    act = _attrs(action[1])
    assert act[tcnl.TCA_ACT_KIND] == b"mirred\0"
    parms = _attrs(act[tcnl.TCA_ACT_OPTIONS])[tcnl.TCA_MIRRED_PARMS]
    _index, _capab, verdict, _ref, _bind, eaction, ifindex = struct.unpack("=IIiiiiI", parms)
    assert (verdict, eaction, ifindex) == (tcnl.TC_ACT_STOLEN, tcnl.TCA_EGRESS_REDIR, 15)


def test_answers() -> None:
    def error(seq: int, err: int) -> bytes:
        body = struct.pack("=i", err) + struct.pack("=IHHII", 16, 36, 5, seq, 0)
        return struct.pack("=IHHII", 16 + len(body), tcnl.NLMSG_ERROR, 0, seq, 99) + body

    assert ack(error(3, 0) + error(4, -17)) == {3: 0, 4: 17}
    assert ack(b"") == {} and ack(b"\x00" * 8) == {}
