"""The RSVP-TE core along the paper chain tn1..tn5, wired in memory (tests/support/rsvp_net.py)
under a virtual clock: setup with the QE key handle, labels, teardown, errors, Hello
failure, refresh and timeout."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from ipaddress import IPv4Address

from gmpls import ero, qe
from gmpls.rsvp import events as E
from gmpls.rsvp import examples as ex
from gmpls.rsvp import objects as O
from gmpls.rsvp.constants import ES_PATH_STATE_REMOVED, MsgType
from gmpls.rsvp.core import RsvpCore
from gmpls.rsvp.message import Message
from tests.support.rsvp_net import Net

TN = ex.TN
L1 = ero.lambda_label(1)
CHAIN = [
    ("tn1", 1),
    ("tn2", 2),
    ("tn2", 1),
    ("tn3", 2),
    ("tn3", 3),
    ("tn4", 2),
    ("tn4", 3),
    ("tn5", 1),
]
PATH_DOWN = [(f"tn{i}", f"tn{i + 1}", "PATH") for i in range(1, 5)]
RESV_UP = [(f"tn{i + 1}", f"tn{i}", "RESV") for i in range(4, 0, -1)]
ALL = tuple(range(1, 9))


def _up(net: Net, tunnel: int = 1) -> list[E.Action]:
    acts = net.create("tn1", tunnel, ex.fig9_ero(), None, 10e9)
    assert net.of("tn1", E.LspUp), net.of("tn1", E.LspDown)
    return acts


def test_paper_setup_path_and_resv_hop_by_hop() -> None:
    net = Net()
    acts = _up(net)
    need = [a for a in acts if isinstance(a, E.NeedQeSession)]
    assert len(need) == 1
    assert need[0].dst_router_id == TN[5]
    assert need[0].params == qe.QeParams(32, 2, 10, 1000, 1)
    assert not [a for a in acts if isinstance(a, E.Send) and a.message.name == "PATH"], (
        "Path must wait for the QE session"
    )
    assert net.msgs() == PATH_DOWN + RESV_UP
    up = net.of("tn1", E.LspUp)[0]
    # the Resv RECORD_ROUTE: each hop's incoming interface and the label on it
    assert [str(s) for s in up.route if isinstance(s, ero.Unnumbered)] == [
        "10.1.1.2:2",
        "10.1.1.3:2",
        "10.1.1.4:2",
        "10.1.1.5:1",
    ]
    assert [s.label for s in up.route if isinstance(s, ero.Label)] == [L1] * 4
    assert net.of("tn5", E.LspUp)[0].role == "tail"


def test_qe_handle_reaches_tail_as_head_wrote_it() -> None:
    net = Net()
    _up(net)
    handle = (1).to_bytes(2, "big") * 32
    # the Path from tn1 carries it in tn5's QE subobject, tn1's own are gone
    first = next(m for s, d, m in net.sent if (s, d) == ("tn1", "tn2") and m.name == "PATH")
    route = first.get(O.ExplicitRoute)
    assert route is not None
    assert route.subobjects[0] == ero.Unnumbered(TN[2], 1)
    qes = [s for s in route.subobjects if isinstance(s, ero.QeSubobject)]
    assert len(qes) == 1 and qes[0].session_id == handle
    assert first.get(O.LabelSet) == O.LabelSet((L1,))
    # each node strips its own subobjects: the Path into tn5 holds only tn5's
    last = next(m for s, d, m in net.sent if (s, d) == ("tn4", "tn5") and m.name == "PATH")
    assert last.get(O.ExplicitRoute) == O.ExplicitRoute((ero.Ipv4Prefix(TN[5], 32), qes[0]))
    joins = net.of("tn5", E.QeJoin)
    assert len(joins) == 1 and joins[0].key_handle == handle
    assert joins[0].params == qe.QeParams()
    # the transit nodes never see a QE hook
    for n in ("tn2", "tn3", "tn4"):
        assert not net.of(n, E.QeJoin) and not net.of(n, E.NeedQeSession)
    # the Resv from tn5 waited for the join: it comes after the QE answer
    assert net.msgs().index(("tn5", "tn4", "RESV")) > net.msgs().index(("tn4", "tn5", "PATH"))


def test_labels_reserved_on_each_link_and_advertised() -> None:
    net = Net()
    _up(net)
    for node, local_if in CHAIN:
        assert net.free(node, local_if) == tuple(range(2, 9)), (node, local_if)
        changes = [a for a in net.of(node, E.LinkResources) if a.local_if == local_if]
        assert changes and changes[-1].free_lambdas == tuple(range(2, 9))
    # the bypass is untouched
    assert net.free("tn2", 3) == ALL and net.free("tn4", 1) == ALL
    rows = net.cores["tn3"].lsp_table()
    assert rows[0]["in_lambda"] == 1 and rows[0]["out_lambda"] == 1
    assert rows[0]["role"] == "transit" and rows[0]["state"] == "up"


def test_teardown_releases_labels_and_closes_keys() -> None:
    net = Net()
    _up(net)
    net.ladder.clear()
    net.delete("tn1", 1)
    assert net.msgs() == [(f"tn{i}", f"tn{i + 1}", "PATH_TEAR") for i in range(1, 5)]
    for node, local_if in CHAIN:
        assert net.free(node, local_if) == ALL
        assert net.of(node, E.LinkResources)[-1].free_lambdas == ALL
        assert not net.cores[node].psbs and not net.cores[node].rsbs
    handle = (1).to_bytes(2, "big") * 32
    assert [a.key_handle for a in net.of("tn1", E.QeClose)] == [handle]
    assert [a.key_handle for a in net.of("tn5", E.QeClose)] == [handle]
    assert net.of("tn1", E.LspDown)[-1].reason == "deleted"


def test_second_lsp_takes_next_lambda_without_explicit_label() -> None:
    net = Net()
    _up(net)
    plain = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label | ero.QeSubobject)]
    net.create("tn1", 2, plain, None, 10e9)
    ups = net.of("tn1", E.LspUp)
    assert len(ups) == 2
    assert [s.label for s in ups[1].route if isinstance(s, ero.Label)] == [ero.lambda_label(2)] * 4
    assert net.free("tn3", 3) == tuple(range(3, 9))
    # no QE subobject: no QE hooks
    assert len(net.of("tn1", E.NeedQeSession)) == 1


def test_busy_explicit_label_gives_path_err_label_set() -> None:
    net = Net()
    # tn3 already uses lambda 1 toward tn4
    net.create(
        "tn3", 7, [ero.Unnumbered(TN[3], 3), ero.Label(L1), ero.Ipv4Prefix(TN[4], 32)], None, 1e9
    )
    assert net.of("tn3", E.LspUp)
    net.ladder.clear()
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    assert net.msgs() == [
        ("tn1", "tn2", "PATH"),
        ("tn2", "tn3", "PATH"),
        ("tn3", "tn2", "PATH_ERR"),
        ("tn2", "tn1", "PATH_ERR"),
        ("tn1", "tn2", "PATH_TEAR"),
        ("tn2", "tn3", "PATH_TEAR"),
    ]
    down = net.of("tn1", E.LspDown)[-1]
    assert down.code == (24, 11) and "10.1.1.3" in down.reason
    err = next(m for s, d, m in net.sent if m.name == "PATH_ERR")
    es = err.get(O.ErrorSpecIfId)
    assert es is not None and (es.code, es.value) == (24, 11) and es.node == TN[3]
    # everything tn1's LSP held is back; tn3's own LSP keeps its lambda
    for node, local_if in CHAIN[:4]:
        assert net.free(node, local_if) == ALL
    assert net.free("tn3", 3) == tuple(range(2, 9))
    # the key session opened for it was closed
    assert net.of("tn1", E.QeClose)


def test_busy_label_at_head_fails_locally() -> None:
    net = Net()
    _up(net)
    acts = net.create("tn1", 2, ex.fig9_ero(), None, 10e9)
    downs = [a for a in acts if isinstance(a, E.LspDown)]
    assert downs and downs[0].code == (24, 11)
    assert not [a for a in acts if isinstance(a, E.Send | E.NeedQeSession)]


def _path_into_tn4(tunnel: int, label: int) -> bytes:
    m = ex.paper_path()
    objs = []
    for o in m.objects:
        if isinstance(o, O.SessionLspTunnelV4):
            o = O.SessionLspTunnelV4(TN[5], tunnel, TN[1])
        elif isinstance(o, O.RsvpHopIfId):
            o = O.RsvpHopIfId(TN[3], 3, (O.IfIdTlv.if_index(TN[3], 3),))
        elif isinstance(o, O.ExplicitRoute):
            o = O.ExplicitRoute((ero.Unnumbered(TN[4], 3), ero.Ipv4Prefix(TN[5], 32)))
        elif isinstance(o, O.LabelSet):
            o = O.LabelSet((label,))
        objs.append(o)
    return Message(MsgType.PATH, tuple(objs)).encode()


def test_downstream_label_set_busy_gives_path_err() -> None:
    net = Net()
    tn4 = net.cores["tn4"]
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(1, L1)), 0.0)
    assert [a.message.name for a in acts if isinstance(a, E.Send)] == ["PATH"]
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(2, L1)), 0.0)
    errs = [a for a in acts if isinstance(a, E.Send)]
    assert len(errs) == 1 and errs[0].dst == TN[3] and errs[0].message.name == "PATH_ERR"
    es = errs[0].message.get(O.ErrorSpecIfId)
    assert es is not None and (es.code, es.value) == (24, 11)
    assert es.tlvs == (O.IfIdTlv.if_index(TN[4], 2),)
    # a LABEL_SET whose only label is no lambda of the link: nothing usable -> Label set
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(3, 0x12345678)), 0.0)
    es = next(a for a in acts if isinstance(a, E.Send)).message.get(O.ErrorSpecIfId)
    assert es is not None and (es.code, es.value) == (24, 11)


def test_explicit_label_not_on_link_is_unacceptable() -> None:
    net = Net()
    route = ex.fig9_ero()
    route[2] = ero.Label(ero.lambda_label(40))
    acts = net.create("tn1", 1, route, None, 10e9)
    assert [a.code for a in acts if isinstance(a, E.LspDown)] == [(24, 6)]


def test_bad_strict_node_in_transit() -> None:
    net = Net()
    route = ex.fig9_ero()
    route[3] = ero.Unnumbered(TN[2], 3)  # tn2's bypass leads to tn4, the ERO says tn3 next
    net.create("tn1", 1, route, None, 10e9)
    assert net.of("tn1", E.LspDown)[-1].code == (24, 2)
    # the trigger first, the Ack after it
    assert [a.message.name for a in net.of("tn2", E.Send)][:2] == ["PATH_ERR", "ACK"]
    for node, local_if in CHAIN[:2]:
        assert net.free(node, local_if) == ALL


def test_bad_initial_subobject() -> None:
    net = Net()
    acts = net.create("tn1", 1, ex.fig9_ero()[3:], None, 10e9)
    assert [a.code for a in acts if isinstance(a, E.LspDown)] == [(24, 4)]


def test_bypass_route() -> None:
    net = Net()
    route: list[ero.Subobject] = [
        ero.Unnumbered(TN[1], 1),
        ero.Unnumbered(TN[2], 3),
        ero.Unnumbered(TN[4], 3),
        ero.Ipv4Prefix(TN[5], 32),
    ]
    net.create("tn1", 1, route, None, 1e9)
    assert net.msgs() == [
        ("tn1", "tn2", "PATH"),
        ("tn2", "tn4", "PATH"),
        ("tn4", "tn5", "PATH"),
        ("tn5", "tn4", "RESV"),
        ("tn4", "tn2", "RESV"),
        ("tn2", "tn1", "RESV"),
    ]
    assert net.free("tn2", 3) == tuple(range(2, 9)) and net.free("tn4", 1) == tuple(range(2, 9))
    assert net.free("tn2", 1) == ALL


def test_qe_failure_at_head() -> None:
    net = Net(qe_fail={"tn1": "proxy unreachable"})
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    down = net.of("tn1", E.LspDown)
    assert down and down[-1].code == (252, 1) and "proxy unreachable" in down[-1].reason
    assert net.ladder == []
    assert net.free("tn1", 1) == ALL and not net.cores["tn1"].psbs


def test_qe_failure_at_tail() -> None:
    net = Net(qe_fail={"tn5": "handle refused"})
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    down = net.of("tn1", E.LspDown)[-1]
    assert down.code == (252, 2)
    assert ("tn5", "tn4", "PATH_ERR") in net.msgs()
    assert ("tn5", "tn4", "RESV") not in net.msgs()
    err = next(m for s, d, m in net.sent if (s, d) == ("tn5", "tn4") and m.name == "PATH_ERR")
    es = err.get(O.ErrorSpecIfId)
    assert es is not None and es.flags & ES_PATH_STATE_REMOVED
    for node, local_if in CHAIN:
        assert net.free(node, local_if) == ALL, node
        assert not net.cores[node].psbs
    assert net.of("tn1", E.QeClose)  # the head's session is closed too


def test_qe_subobject_with_zero_session_at_tail() -> None:
    net = Net(qe_auto=False)
    net.apply("tn1", net.cores["tn1"].handle(E.CreateLsp(1, ex.fig9_ero(), None, 10e9), 0.0))
    need = net.of("tn1", E.NeedQeSession)[0]
    # a broken proxy answering with an all-zero handle
    net.apply("tn1", net.cores["tn1"].handle(E.QeSessionReady(need.lsp, qe.ZERO_SESSION_ID), 0.0))
    net.run()
    assert net.of("tn1", E.LspDown)[-1].code == (252, 1)
    assert net.ladder == []


def test_late_qe_answer_after_delete_closes_session() -> None:
    net = Net(qe_auto=False)
    net.apply("tn1", net.cores["tn1"].handle(E.CreateLsp(1, ex.fig9_ero(), None, 10e9), 0.0))
    need = net.of("tn1", E.NeedQeSession)[0]
    net.delete("tn1", 1)
    assert net.free("tn1", 1) == ALL
    acts = net.cores["tn1"].handle(E.QeSessionReady(need.lsp, b"\x07" * 64), 0.0)
    assert E.QeClose(need.lsp, b"\x07" * 64) in acts
    assert net.ladder == []


def test_refresh_keeps_state_for_ten_minutes() -> None:
    net = Net(refresh_ms=30000, keep=3)
    _up(net)
    net.ladder.clear()
    net.advance(600.0)
    assert net.of("tn1", E.LspDown) == []
    names = net.msgs()
    # 20 refresh periods: each hop refreshed its Path downstream and Resv upstream, by
    # Srefresh (RFC 2961 §5: every neighbour is refresh-reduction capable)
    assert names.count(("tn1", "tn2", "SREFRESH")) == 20
    assert names.count(("tn5", "tn4", "SREFRESH")) == 20
    assert not [n for n in names if n[2] in ("PATH", "RESV")]
    for node, local_if in CHAIN:
        assert net.free(node, local_if) == tuple(range(2, 9))


def test_state_timeout_without_hello_when_a_node_dies() -> None:
    net = Net(refresh_ms=30000, keep=3)
    _up(net)
    net.down.add("tn3")
    lifetime = (3 + 0.5) * 1.5 * 30.0
    net.advance(lifetime - 31.0)
    assert not net.of("tn1", E.LspDown)
    net.advance(62.0)
    down = net.of("tn1", E.LspDown)
    assert down and down[-1].reason == "ResvTear"
    assert net.of("tn5", E.LspDown)[-1].reason == "PathTear"
    assert net.of("tn5", E.QeClose) and net.of("tn1", E.QeClose)
    for node, local_if in CHAIN:
        if node != "tn3":
            assert net.free(node, local_if) == ALL, node
            assert not net.cores[node].psbs


def test_hello_detects_neighbor_failure_and_head_tears_down() -> None:
    net = Net(hello_ms=1000)
    net.advance(3.0)
    assert {a.address for a in net.of("tn2", E.NeighborUp)} == {TN[1], TN[3], TN[4]}
    _up(net)
    net.down.add("tn3")
    t0 = net.now
    net.advance(5.0)
    downs = net.of("tn2", E.NeighborDown)
    assert [d.address for d in downs] == [TN[3]] and downs[0].reason == "Hello timeout"
    assert [d.address for d in net.of("tn4", E.NeighborDown)] == [TN[3]]
    head = net.of("tn1", E.LspDown)
    # tn2 found its next hop dead: PathErr "No route available toward destination"
    assert head and head[-1].code == (24, 5) and "10.1.1.2" in head[-1].reason
    assert net.of("tn5", E.LspDown)
    assert net.of("tn5", E.QeClose)
    assert net.now - t0 <= 5.0
    for node, local_if in CHAIN:
        if node != "tn3":
            assert net.free(node, local_if) == ALL, node
    # a new LSP over the bypass comes up while tn3 stays dead
    net.create(
        "tn1",
        2,
        [
            ero.Unnumbered(TN[1], 1),
            ero.QeSubobject(),
            ero.Unnumbered(TN[2], 3),
            ero.Unnumbered(TN[4], 3),
            ero.Ipv4Prefix(TN[5], 32),
            ero.QeSubobject(),
        ],
        None,
        10e9,
    )
    assert net.of("tn1", E.LspUp)[-1].lsp.tunnel_id == 2


def test_hello_instance_change_is_a_failure() -> None:
    net = Net(hello_ms=1000)
    net.advance(2.0)
    _up(net)
    # tn3 restarts: a fresh core with a new instance and no state
    old = net.cores["tn3"]
    net.cores["tn3"] = RsvpCore(
        old.router_id, old.control_address, old.links.values(), hello_ms=1000, instance=999
    )
    net.advance(1.5)
    assert net.of("tn2", E.NeighborDown)[0].reason.startswith("neighbour restarted")
    assert net.of("tn1", E.LspDown)


def _raw_obj(class_num: int, c_type: int, body: bytes) -> bytes:
    return struct.pack("!HBB", 4 + len(body), class_num, c_type) + body


def _append(wire: bytes, raw: bytes) -> bytes:
    w = wire + raw
    return w[:2] + b"\x00\x00" + w[4:6] + struct.pack("!H", len(w)) + w[8:]


def test_malformed_path_answered_with_path_err_code() -> None:
    net = Net()
    bad = _append(_path_into_tn4(1, L1), _raw_obj(50, 1, b"abcd"))
    acts = net.cores["tn4"].handle(E.Received(TN[3], bad), 0.0)
    sends = [a for a in acts if isinstance(a, E.Send)]
    assert len(sends) == 1 and sends[0].dst == TN[3] and sends[0].message.name == "PATH_ERR"
    es = sends[0].message.get(O.ErrorSpecIfId)
    assert es is not None and (es.code, es.value) == (13, (50 << 8) | 1)
    assert sends[0].message.get(O.SenderTemplate) == O.SenderTemplate(TN[1], 1)
    assert net.cores["tn4"].stats["rx_errors"] == 1
    # garbage is dropped and counted, never raised
    acts = net.cores["tn4"].handle(E.Received(TN[3], b"\x10\x01garbage"), 0.0)
    assert not [a for a in acts if isinstance(a, E.Send)]
    assert net.cores["tn4"].stats["rx_errors"] == 2


def test_unknown_11_object_forwarded_unchanged() -> None:
    net = Net()
    raw = _raw_obj(0xE5, 3, b"keepme!!")
    acts = net.cores["tn4"].handle(E.Received(TN[3], _append(_path_into_tn4(1, L1), raw)), 0.0)
    out = next(a for a in acts if isinstance(a, E.Send))
    assert out.dst == TN[5] and out.data.endswith(raw)
    # and 10bbbbbb is dropped, not forwarded
    acts = net.cores["tn4"].handle(
        E.Received(
            TN[3], _append(_path_into_tn4(2, ero.lambda_label(2)), _raw_obj(0x95, 1, b"drop"))
        ),
        0.0,
    )
    out = next(a for a in acts if isinstance(a, E.Send))
    assert b"drop" not in out.data


def test_resv_without_path_gets_resv_err_no_path_information() -> None:
    net = Net()
    acts = net.cores["tn1"].handle(E.Received(TN[2], ex.paper_resv().encode()), 0.0)
    sends = [a for a in acts if isinstance(a, E.Send)]
    assert len(sends) == 1 and sends[0].message.name == "RESV_ERR"
    es = sends[0].message.get(O.ErrorSpecIfId)
    assert es is not None and es.code == 3


def test_tunnel_in_use_is_a_caller_error() -> None:
    net = Net()
    _up(net)
    try:
        net.cores["tn1"].handle(E.CreateLsp(1, ex.fig9_ero(), None, 1e9), 0.0)
    except ValueError as e:
        assert "in use" in str(e)
    else:
        raise AssertionError("expected ValueError")


def test_next_timer_is_the_refresh() -> None:
    net = Net(refresh_ms=30000)
    _up(net)
    assert net.cores["tn1"].next_timer() == 30.0
    assert Net().cores["tn1"].next_timer() is None
    assert net.cores["tn1"].router_id == IPv4Address("10.1.1.1")


def test_hello_from_a_stranger_is_answered_without_state() -> None:
    net = Net(hello_ms=1000)
    hello = Message(MsgType.HELLO, (O.HelloRequest(77, 0),), send_ttl=1)
    acts = net.cores["tn3"].handle(E.Received(IPv4Address("10.9.9.9"), hello.encode()), 0.0)
    acks = [a for a in acts if isinstance(a, E.Send) and a.dst == IPv4Address("10.9.9.9")]
    assert len(acks) == 1 and acks[0].ttl == 1
    assert acks[0].message.get(O.HelloAck) == O.HelloAck(103, 77)
    assert IPv4Address("10.9.9.9") not in net.cores["tn3"].neighbors


def test_routing_loop_detected_by_record_route() -> None:
    net = Net()
    route: list[ero.Subobject] = [
        ero.Unnumbered(TN[1], 1),
        ero.Unnumbered(TN[2], 1),
        ero.Unnumbered(TN[3], 3),
        ero.Unnumbered(TN[4], 1),  # back to tn2 over the bypass
        ero.Unnumbered(TN[2], 1),
        ero.Unnumbered(TN[3], 3),
        ero.Ipv4Prefix(TN[4], 32),
    ]
    net.create("tn1", 1, route, None, 1e9)
    assert ("tn2", "tn4", "PATH_ERR") in net.msgs()
    assert net.of("tn1", E.LspDown)[-1].code == (24, 7)
    for n, c in net.cores.items():
        assert not c.psbs, n
        for i in c.links:
            assert net.free(n, i) == ALL, (n, i)


# --- RFC 2961 reliable delivery ----------------------------------------------------------


def _drop_first(src: str, dst: str, name: str) -> Callable[[str, str, Message], bool]:
    done: list[bool] = []

    def drop(s: str, d: str, m: Message) -> bool:
        if not done and (s, d, m.name) == (src, dst, name):
            done.append(True)
            return True
        return False

    return drop


def test_lost_path_is_retransmitted_after_rf() -> None:
    net = Net(drop=_drop_first("tn2", "tn3", "PATH"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    assert net.dropped == [("tn2", "tn3", "PATH")]
    assert not net.of("tn1", E.LspUp)
    net.advance(0.4)
    assert not net.of("tn1", E.LspUp)
    net.advance(0.2)  # Rf = 0.5 s
    assert net.of("tn1", E.LspUp)
    assert net.cores["tn2"].stats["retransmits"] == 1
    assert not any(c.pending for c in net.cores.values())  # everything acknowledged


def test_lost_ack_retransmission_is_harmless() -> None:
    net = Net(drop=_drop_first("tn3", "tn2", "ACK"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    assert net.of("tn1", E.LspUp)
    net.advance(1.0)
    assert net.cores["tn2"].stats["retransmits"] == 1
    assert len(net.of("tn1", E.LspUp)) == 1 and len(net.cores["tn3"].psbs) == 1
    assert net.free("tn3", 2) == tuple(range(2, 9))


def test_path_tear_supersedes_a_lost_path() -> None:
    net = Net(drop=_drop_first("tn1", "tn2", "PATH"))
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    net.delete("tn1", 1)
    net.advance(5.0)
    assert not any(c.psbs for c in net.cores.values())
    # the PathTear (acknowledged, though tn2 never had the LSP) cancelled the Path's
    # retransmission
    assert net.cores["tn1"].stats["retransmits"] == 0
    assert all(n == "PATH_TEAR" for s, d, n in net.msgs() if s == "tn1")
    for node, local_if in CHAIN:
        assert net.free(node, local_if) == ALL


def test_gives_up_after_rl_retransmissions_then_refresh_recovers() -> None:
    lost: list[int] = []

    def drop(s: str, d: str, m: Message) -> bool:
        if (s, d, m.name) == ("tn3", "tn4", "PATH") and len(lost) < 4:
            lost.append(1)
            return True
        return False

    net = Net(drop=drop)
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    net.advance(8.0)  # at 0.5, 1.5, 3.5 s: three retransmissions, all lost; 7.5 s: give up
    assert len(lost) == 4 and net.cores["tn3"].stats["retransmit_give_up"] == 1
    assert not net.of("tn1", E.LspUp)
    net.advance(30.0)  # the refresh (R = 30 s) carries it
    assert net.of("tn1", E.LspUp)


def test_random_loss_every_lsp_comes_up_and_nothing_leaks() -> None:
    rng = random.Random(7)
    net = Net(drop=lambda s, d, m: rng.random() < 0.2)
    plain = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label)]
    for t in range(1, 6):
        net.create("tn1", t, plain, None, 1e9)
        net.advance(10.0)
    assert {u.lsp.tunnel_id for u in net.of("tn1", E.LspUp)} == {1, 2, 3, 4, 5}
    assert net.dropped
    for t in range(1, 6):
        net.delete("tn1", t)
    net.advance(200.0)  # what a lost tear left behind times out
    for node, local_if in CHAIN:
        assert net.free(node, local_if) == ALL, (node, local_if)
    assert not any(c.psbs or c.pending for c in net.cores.values())


def test_unreliable_mode_sends_no_message_id() -> None:
    net = Net()
    for c in net.cores.values():
        c.reliable = False
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    assert net.of("tn1", E.LspUp)
    assert all(m.get(O.MessageId) is None and m.name != "ACK" for _, _, m in net.sent)


def test_setup_without_resv_times_out_at_the_head() -> None:
    net = Net(refresh_ms=30000)
    net.down.add("tn3")
    plain = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label)]
    net.create("tn1", 1, plain, None, 1e9)
    assert not net.of("tn1", E.LspDown)
    net.advance((3 + 0.5) * 1.5 * 30.0 + 1)
    down = net.of("tn1", E.LspDown)
    assert down and down[-1].reason == "setup timeout: no Resv"
    assert not net.cores["tn1"].psbs and not net.cores["tn2"].psbs
    assert net.free("tn1", 1) == ALL and net.free("tn2", 2) == ALL


def test_no_path_toward_a_neighbour_hello_declared_down() -> None:
    net = Net(hello_ms=1000)
    net.advance(2.0)
    net.down.add("tn3")
    net.advance(5.0)
    net.ladder.clear()
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    assert ("tn2", "tn3", "PATH") not in net.msgs()
    assert ("tn2", "tn1", "PATH_ERR") in net.msgs()
    assert net.of("tn1", E.LspDown)[-1].code == (24, 5)
    # and the head refuses at once when its own next hop is down
    net.down.add("tn2")
    net.advance(5.0)
    acts = net.create("tn1", 2, ex.fig9_ero(), None, 10e9)
    assert [a.code for a in acts if isinstance(a, E.LspDown)] == [(24, 5)]


def test_acks_of_one_read_go_together_after_what_they_triggered() -> None:
    """Received.more: two Paths read at once from tn1 are acknowledged in one Ack message
    carrying both MESSAGE_ID_ACKs, sent after the Paths tn2 forwards; the one-by-one case
    (no ``more``) acknowledges each message at once."""
    held: list[bytes] = []

    def hold(s: str, d: str, m: Message) -> bool:
        if (s, d, m.name) == ("tn1", "tn2", "PATH"):
            held.append(m.encode())
            return True
        return False

    net = Net(drop=hold)
    plain = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label)]
    net.create("tn1", 1, plain, None, 1e9)
    net.create("tn1", 2, plain, None, 1e9)
    assert len(held) == 2
    tn2 = net.cores["tn2"]
    first = tn2.handle(E.Received(TN[1], held[0], more=True), net.now)
    assert [a.message.name for a in first if isinstance(a, E.Send)] == ["PATH"]
    last = tn2.handle(E.Received(TN[1], held[1]), net.now)
    sent = [a for a in last if isinstance(a, E.Send)]
    assert [a.message.name for a in sent] == ["PATH", "ACK"]
    ack = sent[1]
    assert ack.dst == TN[1]
    acked = [o.message_id for o in ack.message.all(O.MessageIdAck)]
    ids = [Message.decode(h).get(O.MessageId).message_id for h in held]  # type: ignore[union-attr]
    assert acked == ids and tn2.stats["acks_tx"] == 2
    net.cores["tn1"].handle(E.Received(TN[2], ack.data), net.now)
    assert not any(p.dst == TN[2] for p in net.cores["tn1"].pending.values())
    # one message, no more: its Ack goes at once, after the Path it triggered
    again = tn2.handle(E.Received(TN[1], held[0]), net.now)
    assert [a.message.name for a in again if isinstance(a, E.Send)][-1] == "ACK"
