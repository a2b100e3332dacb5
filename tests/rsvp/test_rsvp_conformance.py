"""RSVP-TE conformance points (issue 11): PathErr relaying (RFC 2205 §3.1.4, RFC 3473
§4.5), LABEL_SET actions (RFC 3473 §2.6), UPSTREAM_LABEL (RFC 3473 §3), ADMIN_STATUS and
11bbbbbb forwarding (RFC 2205 §3.10, RFC 3473 §7), ResvTear (RFC 2205 §3.1.6), ERO
abstract nodes and label subobjects (RFC 3209 §4.3.4.1, RFC 3473 §5.1.1), RRO labels.
Cores wired in memory (tests/support/rsvp_net.py) on a virtual clock."""

from __future__ import annotations

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
    net.drop = lambda s, d, m: (s, d, m.name) == ("tn4", "tn3", "RESV")
    net.ladder.clear()
    net.advance((3 + 0.5) * 1.5 * 30.0 + 1.0)
    tears = [x for x in net.msgs() if x[2] != "PATH" and x[2] != "RESV"]
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
