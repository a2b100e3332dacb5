"""RSVP-TE conformance points (issue 11): PathErr relaying (RFC 2205 §3.1.4, RFC 3473
§4.5), LABEL_SET actions (RFC 3473 §2.6), UPSTREAM_LABEL (RFC 3473 §3), ADMIN_STATUS and
11bbbbbb forwarding (RFC 2205 §3.10, RFC 3473 §7), ResvTear (RFC 2205 §3.1.6), ERO
abstract nodes and label subobjects (RFC 3209 §4.3.4.1, RFC 3473 §5.1.1), RRO labels.
Cores wired in memory (tests/support/rsvp_net.py) on a virtual clock."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from gmpls import ero
from gmpls.rsvp import events as E
from gmpls.rsvp import examples as ex
from gmpls.rsvp import objects as O
from gmpls.rsvp.constants import ES_PATH_STATE_REMOVED, MsgType
from gmpls.rsvp.message import Message
from tests.support.rsvp_net import Net

TN = ex.TN
L1 = ero.lambda_label(1)
ALL = tuple(range(1, 9))


def _up(net: Net, tunnel: int = 1) -> None:
    net.create("tn1", tunnel, ex.fig9_ero(), None, 10e9)
    assert net.of("tn1", E.LspUp), net.of("tn1", E.LspDown)


def _path_into_tn4(
    tunnel: int, *extra: O.RsvpObject, route: tuple[ero.Subobject, ...] = ()
) -> bytes:
    """The paper's Path as tn3 would send it to tn4 (tunnel ``tunnel``), its LABEL_SET
    replaced by ``extra`` objects, its ERO by ``route`` if given."""
    objs: list[O.RsvpObject] = []
    for o in ex.paper_path().objects:
        if isinstance(o, O.SessionLspTunnelV4):
            o = O.SessionLspTunnelV4(TN[5], tunnel, TN[1])
        elif isinstance(o, O.RsvpHopIfId):
            o = O.RsvpHopIfId(TN[3], 3, (O.IfIdTlv.if_index(TN[3], 3),))
        elif isinstance(o, O.ExplicitRoute):
            o = O.ExplicitRoute(route or (ero.Unnumbered(TN[4], 3), ero.Ipv4Prefix(TN[5], 32)))
        elif isinstance(o, O.LabelSet):
            objs += extra
            continue
        objs.append(o)
    return Message(MsgType.PATH, tuple(objs)).encode()


def _lam(n: int) -> int:
    return ero.lambda_label(n)


def _sends(acts: list[E.Action], name: str) -> list[E.Send]:
    return [a for a in acts if isinstance(a, E.Send) and a.message.name == name]


# --- PathErr relaying ----------------------------------------------------------------


def test_path_err_from_upstream_is_dropped_not_relayed() -> None:
    net = Net()
    _up(net)
    tn3 = net.cores["tn3"]
    dropped = tn3.stats["rx_dropped"]
    # tn2 (tn3's previous hop) sends a PathErr down: relaying it to the previous hop
    # would bounce it back and forth
    acts = tn3.handle(E.Received(TN[2], ex.path_err().encode()), net.now)
    assert _sends(acts, "PATH_ERR") == []
    assert tn3.stats["rx_dropped"] == dropped + 1
    assert len(tn3.psbs) == 1
    # from the next hop it is relayed upstream
    acts = tn3.handle(E.Received(TN[4], ex.path_err().encode()), net.now)
    assert [a.dst for a in _sends(acts, "PATH_ERR")] == [TN[2]]


def test_relayed_path_err_clears_path_state_removed() -> None:
    net = Net(qe_fail={"tn5": "handle refused"})
    net.create("tn1", 1, ex.fig9_ero(), None, 10e9)
    errs = {(s, d): m.get(O.ErrorSpecIfId) for s, d, m in net.sent if m.name == "PATH_ERR"}
    origin = errs[("tn5", "tn4")]
    assert origin is not None and origin.flags & ES_PATH_STATE_REMOVED
    # tn4, tn3 and tn2 keep their state until the head's PathTear: the flag is cleared
    for hop in (("tn4", "tn3"), ("tn3", "tn2"), ("tn2", "tn1")):
        es = errs[hop]
        assert es is not None and not es.flags & ES_PATH_STATE_REMOVED, hop
        assert (es.node, es.code, es.value) == (TN[5], 252, 2)
    assert net.of("tn1", E.LspDown)[-1].code == (252, 2)


# --- RRO -----------------------------------------------------------------------------


def test_resv_record_route_labels_are_not_global() -> None:
    net = Net()
    _up(net)
    up = net.of("tn1", E.LspUp)[0]
    labels = [s for s in up.route if isinstance(s, ero.Label)]
    assert [s.label for s in labels] == [L1] * 4
    assert all(s.flags == 0 for s in labels)  # a lambda label means one link only
    assert all(
        s.flags == 0
        for s in ex.paper_resv().get(O.RecordRoute).subobjects  # type: ignore[union-attr]
        if isinstance(s, ero.Label)
    )


# --- ResvTear and Resv state timeout remove the reservation only -----------------------


def test_resv_tear_in_transit_removes_resv_state_only() -> None:
    net = Net()
    _up(net)
    tn3 = net.cores["tn3"]
    resv_from_tn4 = next(m for s, d, m in net.sent if (s, d, m.name) == ("tn4", "tn3", "RESV"))
    acts = tn3.handle(E.Received(TN[4], ex.resv_tear().encode()), net.now)
    # RFC 2205 §3.1.6: the RSB goes, a ResvTear goes upstream; nothing goes downstream
    assert [(a.dst, a.message.name) for a in acts if isinstance(a, E.Send)] == [
        (TN[2], "RESV_TEAR")
    ]
    assert not tn3.rsbs and len(tn3.psbs) == 1
    assert not [a for a in acts if isinstance(a, E.LspDown)]
    # the Path state keeps its lambdas on both links
    assert net.free("tn3", 2) == tuple(range(2, 9)) and net.free("tn3", 3) == tuple(range(2, 9))
    # a new Resv from downstream restores the reservation
    acts = tn3.handle(E.Received(TN[4], resv_from_tn4.encode()), net.now)
    assert [a.dst for a in _sends(acts, "RESV")] == [TN[2]]
    assert len(tn3.rsbs) == 1


def test_resv_state_timeout_in_transit_keeps_path_state() -> None:
    net = Net(refresh_ms=30000, keep=3)
    _up(net)
    # the Resv refreshes (full or summary) from tn4 are lost
    net.drop = lambda s, d, m: (s, d) == ("tn4", "tn3") and m.name in ("RESV", "SREFRESH")
    net.ladder.clear()
    net.advance((3 + 0.5) * 1.5 * 30.0 + 1.0)
    tears = [x for x in net.msgs() if x[2] not in ("PATH", "RESV", "SREFRESH", "ACK")]
    # tn3 removes only its Resv state and tells upstream; the head, whose LSP lost its
    # reservation, tears it down from the top
    assert tears == [
        ("tn3", "tn2", "RESV_TEAR"),
        ("tn2", "tn1", "RESV_TEAR"),
        ("tn1", "tn2", "PATH_TEAR"),
        ("tn2", "tn3", "PATH_TEAR"),
        ("tn3", "tn4", "PATH_TEAR"),
        ("tn4", "tn5", "PATH_TEAR"),
    ]
    assert net.of("tn1", E.LspDown)[-1].reason == "ResvTear"
    assert not [d for d in net.of("tn3", E.LspDown) if d.reason == "resv state timeout"]
    for n, c in net.cores.items():
        assert not c.psbs, n
        for i in c.links:
            assert net.free(n, i) == ALL, (n, i)


# --- LABEL_SET actions (RFC 3473 §2.6) ----------------------------------------------------


def _in_lambda(net: Net, node: str, tunnel: int) -> int | None:
    rows = [r for r in net.cores[node].lsp_table() if r["tunnel_id"] == tunnel]
    return rows[0]["in_lambda"] if rows else None  # type: ignore[return-value]


def _path_err_code(acts: list[E.Action]) -> tuple[int, int] | None:
    errs = _sends(acts, "PATH_ERR")
    es = errs[0].message.get(O.ErrorSpecIfId) if errs else None
    return (es.code, es.value) if es else None


def test_label_set_exclusive_list_and_ranges_are_honoured() -> None:
    net = Net()
    tn4 = net.cores["tn4"]
    cases = [
        (1, [O.LabelSet((_lam(1), _lam(2)), action=1)], 3),  # exclusive list
        (2, [O.LabelSet((_lam(5), _lam(7)), action=2)], 5),  # inclusive range
        (3, [O.LabelSet((_lam(1), _lam(6)), action=3)], 7),  # exclusive range
        # inclusive range minus an exclusive list; 5 is taken by tunnel 2 meanwhile
        (4, [O.LabelSet((_lam(4), _lam(8)), action=2), O.LabelSet((_lam(4),), action=1)], 6),
        # an inclusive list keeps its order of preference
        (5, [O.LabelSet((_lam(8), _lam(1)))], 8),
    ]
    for tunnel, sets, want in cases:
        acts = tn4.handle(E.Received(TN[3], _path_into_tn4(tunnel, *sets)), net.now)
        assert _path_err_code(acts) is None, tunnel
        assert _in_lambda(net, "tn4", tunnel) == want, tunnel
    assert net.free("tn4", 2) == (1, 2, 4)


def test_label_set_with_no_allowed_free_label_is_label_set_error() -> None:
    net = Net()
    tn4 = net.cores["tn4"]
    bad = [
        [O.LabelSet((_lam(1), _lam(8)), action=3)],  # every lambda excluded
        [O.LabelSet((_lam(20), _lam(30)), action=2)],  # a range off the link
        [O.LabelSet((_lam(1), _lam(2), _lam(3)), action=2)],  # a range of three labels
        [O.LabelSet((_lam(1),), action=5)],  # unknown action
    ]
    for tunnel, sets in enumerate(bad, 1):
        acts = tn4.handle(E.Received(TN[3], _path_into_tn4(tunnel, *sets)), net.now)
        assert _path_err_code(acts) == (24, 11), tunnel
        assert not tn4.psbs
    # the only allowed lambda in use: 24/11 as well
    only_one = O.LabelSet((_lam(2), _lam(2)), action=2)
    tn4.handle(E.Received(TN[3], _path_into_tn4(10, only_one)), net.now)
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(11, only_one)), net.now)
    assert _path_err_code(acts) == (24, 11)
    assert net.free("tn4", 2) == (1, *range(3, 9))


# --- UPSTREAM_LABEL: bidirectional LSPs (RFC 3473 §3) ---------------------------------------

PLAIN = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label | ero.QeSubobject)]
LINKS = [("tn1", 1), ("tn2", 2), ("tn2", 1), ("tn3", 2), ("tn3", 3), ("tn4", 2), ("tn4", 3)]


def _create(net: Net, tunnel: int, route: list[ero.Subobject], bidir: bool) -> list[E.Action]:
    return net.create("tn1", tunnel, route, None, 1e9, bidirectional=bidir)


def test_bidirectional_lsp_holds_an_upstream_lambda_on_every_link() -> None:
    net = Net()
    _create(net, 1, PLAIN, True)
    up = net.of("tn1", E.LspUp)
    assert up, net.of("tn1", E.LspDown)
    # upstream lambda 8 on each link (the last free: downstream lambdas are handed out
    # from the first), downstream lambda 1 from the set
    assert [s.label for s in up[0].route if isinstance(s, ero.Label)] == [_lam(1)] * 4
    for node, local_if in [*LINKS, ("tn5", 1)]:
        assert net.free(node, local_if) == tuple(range(2, 8)), (node, local_if)
    paths = [m for s, d, m in net.sent if m.name == "PATH"]
    assert [m.get(O.UpstreamLabel) for m in paths] == [O.UpstreamLabel(_lam(8))] * 4
    assert all(_lam(8) not in m.get(O.LabelSet).labels for m in paths)  # type: ignore[union-attr]
    row = net.cores["tn3"].lsp_table()[0]
    assert (row["in_up_lambda"], row["out_up_lambda"], row["bidirectional"]) == (8, 8, True)
    net.delete("tn1", 1)
    for node, local_if in [*LINKS, ("tn5", 1)]:
        assert net.free(node, local_if) == ALL, (node, local_if)


def test_explicit_upstream_label_in_the_ero_is_used() -> None:
    net = Net()
    route: list[ero.Subobject] = [
        ero.Unnumbered(TN[1], 1),
        ero.Label(_lam(1)),
        ero.Label(_lam(6), flags=0x80),  # U bit: the upstream lambda on tn1-tn2
        ero.Unnumbered(TN[2], 3),
        ero.Unnumbered(TN[4], 3),
        ero.Label(_lam(7), flags=0x80),
        ero.Ipv4Prefix(TN[5], 32),
    ]
    _create(net, 1, route, True)
    assert net.of("tn1", E.LspUp), net.of("tn1", E.LspDown)
    assert net.free("tn1", 1) == (2, 3, 4, 5, 7, 8) == net.free("tn2", 2)
    assert net.free("tn4", 3) == (2, 3, 4, 5, 6, 8) == net.free("tn5", 1)
    # the bypass link tn2-tn4: upstream lambda picked by tn2, downstream from the set
    assert net.free("tn2", 3) == tuple(range(2, 8)) == net.free("tn4", 1)


def test_unacceptable_upstream_label_is_path_err_24_6() -> None:
    net = Net()
    tn4 = net.cores["tn4"]
    # not a lambda of the link
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(1, O.UpstreamLabel(_lam(40)))), 0.0)
    assert _path_err_code(acts) == (24, 6)
    # in use on the link
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(2, O.UpstreamLabel(_lam(3)))), 0.0)
    assert _path_err_code(acts) is None
    assert (tn4.lsp_table()[0]["in_up_lambda"], tn4.lsp_table()[0]["in_lambda"]) == (3, 1)
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(3, O.UpstreamLabel(_lam(3)))), 0.0)
    assert _path_err_code(acts) == (24, 6)
    assert len(tn4.psbs) == 1
    # tn4 picked an upstream lambda toward tn5 too and sent it on
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(4, O.UpstreamLabel(_lam(5)))), 0.0)
    (out,) = _sends(acts, "PATH")
    # the last free lambda toward tn5 (8 went to the LSP accepted above)
    assert out.message.get(O.UpstreamLabel) == O.UpstreamLabel(_lam(7))
    assert net.free("tn4", 2) == (4, 6, 7, 8)


# --- ERO: abstract nodes and label subobjects (RFC 3209 §4.3.4.1, RFC 3473 §5.1.1) --------


def test_abstract_node_prefix_containing_this_node_names_it() -> None:
    net = Net()
    tn4 = net.cores["tn4"]
    route = (ero.Ipv4Prefix(IPv4Address("10.1.1.0"), 24), ero.Ipv4Prefix(TN[5], 32))
    acts = tn4.handle(E.Received(TN[3], _path_into_tn4(1, O.LabelSet((L1,)), route=route)), 0.0)
    assert _path_err_code(acts) is None
    assert [a.dst for a in _sends(acts, "PATH")] == [TN[5]]
    # a prefix we are not part of is still a bad initial subobject
    other = (ero.Ipv4Prefix(IPv4Address("10.1.2.0"), 24), ero.Ipv4Prefix(TN[5], 32))
    acts = tn4.handle(
        E.Received(TN[3], _path_into_tn4(2, O.LabelSet((_lam(2),)), route=other)), 0.0
    )
    assert _path_err_code(acts) == (24, 4)


def test_ero_label_subobjects_checked() -> None:
    net = Net()
    tn4 = net.cores["tn4"]
    me, tail = ero.Unnumbered(TN[4], 3), ero.Ipv4Prefix(TN[5], 32)
    bad = [
        # an upstream label on a unidirectional LSP (no UPSTREAM_LABEL in the Path)
        (me, ero.Label(_lam(2), flags=0x80), tail),
        # two downstream labels for one link
        (me, ero.Label(_lam(2)), ero.Label(_lam(3)), tail),
    ]
    for tunnel, route in enumerate(bad, 1):
        acts = tn4.handle(
            E.Received(TN[3], _path_into_tn4(tunnel, O.LabelSet((L1,)), route=route)), 0.0
        )
        assert _path_err_code(acts) == (24, 1), tunnel
    assert not tn4.psbs and net.free("tn4", 2) == ALL and net.free("tn4", 3) == ALL
    # at the head: refused locally
    head_route = [ero.Unnumbered(TN[1], 1), ero.Label(_lam(2), flags=0x80), *PLAIN[1:]]
    acts = _create(net, 1, head_route, False)
    assert [a.code for a in acts if isinstance(a, E.LspDown)] == [(24, 1)]
    assert net.free("tn1", 1) == ALL


# --- ADMIN_STATUS, NOTIFY_REQUEST: forwarded; graceful deletion (RFC 3473 §7.2) ----------


def test_transit_forwards_admin_status_and_notify_request_unchanged() -> None:
    net = Net()
    objs = (O.LabelSet((L1,)), O.NotifyRequest(TN[1]), O.AdminStatus(O.AdminStatus.TESTING))
    acts = net.cores["tn4"].handle(E.Received(TN[3], _path_into_tn4(1, *objs)), 0.0)
    (out,) = _sends(acts, "PATH")
    assert out.dst == TN[5]
    assert out.message.get(O.NotifyRequest) == O.NotifyRequest(TN[1])
    assert out.message.get(O.AdminStatus) == O.AdminStatus(O.AdminStatus.TESTING)


def test_graceful_deletion_path_d_bit_resv_echo_then_path_tear() -> None:
    net = Net()
    _up(net)
    net.ladder.clear()
    net.apply("tn1", net.cores["tn1"].handle(E.DeleteLsp(1, graceful=True), net.now))
    net.run()
    assert net.msgs() == [
        *[(f"tn{i}", f"tn{i + 1}", "PATH") for i in range(1, 5)],
        *[(f"tn{i + 1}", f"tn{i}", "RESV") for i in range(4, 0, -1)],
        *[(f"tn{i}", f"tn{i + 1}", "PATH_TEAR") for i in range(1, 5)],
    ]
    rd = O.AdminStatus(O.AdminStatus.REFLECT | O.AdminStatus.DELETION)
    admin = [(m.name, m.get(O.AdminStatus)) for _, _, m in net.sent]
    assert [a for n, a in admin if n == "PATH" and a is not None] == [rd] * 4
    d = O.AdminStatus(O.AdminStatus.DELETION)  # echoed without R
    assert [a for n, a in admin if n == "RESV" and a is not None] == [d] * 4
    assert net.of("tn1", E.LspDown)[-1].reason == "deleted"
    # the tail saw ADMIN_STATUS D first: its PathTear is a meant deletion (a QE tail then
    # closes its key session at once, docs/qe-service.md)
    assert net.of("tn5", E.LspDown)[-1].reason == "deleted"
    for n, c in net.cores.items():
        assert not c.psbs, n
        for i in c.links:
            assert net.free(n, i) == ALL, (n, i)


def test_graceful_deletion_without_echo_tears_down_after_one_refresh() -> None:
    net = Net(refresh_ms=30000)
    _up(net)
    net.drop = lambda s, d, m: (s, d, m.name) == ("tn5", "tn4", "RESV")
    net.ladder.clear()
    net.apply("tn1", net.cores["tn1"].handle(E.DeleteLsp(1, graceful=True), net.now))
    net.run()
    assert net.cores["tn1"].lsp_table()[0]["state"] == "deleting"
    assert not [x for x in net.msgs() if x[2] == "PATH_TEAR"]
    net.advance(30.0)
    assert ("tn1", "tn2", "PATH_TEAR") in net.msgs()
    assert net.of("tn1", E.LspDown)[-1].reason == "deleted"
    assert not net.cores["tn1"].psbs and net.free("tn1", 1) == ALL


# --- make-before-break (RFC 3209 §4.6.4) ------------------------------------------------


def test_make_before_break_second_lsp_of_the_tunnel_then_the_old_one_deleted_by_id() -> None:
    net = Net()
    plain = [x for x in ex.fig9_ero() if not isinstance(x, ero.QeSubobject | ero.Label)]
    net.create("tn1", 1, plain, None, 0.0)
    (old,) = [a.lsp for a in net.of("tn1", E.LspUp)]
    with pytest.raises(ValueError, match="in use"):
        net.cores["tn1"].handle(E.CreateLsp(1, plain), net.now)
    mbb = E.CreateLsp(1, plain, make_before_break=True)
    net.apply("tn1", net.cores["tn1"].handle(mbb, net.now))
    net.run()
    ups = [a.lsp for a in net.of("tn1", E.LspUp)]
    assert len(ups) == 2 and (ups[1].tunnel_id, ups[1].lsp_id) == (1, old.lsp_id + 1)
    new = ups[1]
    assert all(len(c.psbs) == 2 for c in net.cores.values())  # both LSPs, own lambdas
    assert net.free("tn3", 3) == ALL[2:]
    net.ladder.clear()
    net.apply("tn1", net.cores["tn1"].handle(E.DeleteLsp(1, lsp_id=old.lsp_id), net.now))
    net.run()
    assert net.msgs() == [(f"tn{i}", f"tn{i + 1}", "PATH_TEAR") for i in range(1, 5)]
    assert all(list(c.psbs) == [new] for c in net.cores.values())
    down = net.of("tn5", E.LspDown)[-1]
    assert (down.lsp, down.reason) == (old, "PathTear") and net.free("tn3", 3) == (1, *ALL[2:])
