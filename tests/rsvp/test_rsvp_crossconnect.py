"""The RSVP core's cross-connect actions (docs/dataplane.md, "Optical layer and
cross-connects"): CrossConnect at head, transit and tail once the lambdas are reserved,
with both directions on a bidirectional LSP, CrossConnectRemoved when the state goes, and
CrossConnectFailed failing the LSP with 24/9. Cores wired in memory on a virtual clock,
no sockets (tests/support/rsvp_net.py)."""

from __future__ import annotations

from gmpls import ero
from gmpls.rsvp import events as E
from gmpls.rsvp import examples as ex
from gmpls.rsvp.constants import ES_PATH_STATE_REMOVED, MsgType
from tests.support.rsvp_net import NODES, Net

C = E.Channel
ALL = tuple(range(1, 9))
PLAIN = [s for s in ex.fig9_ero() if not isinstance(s, ero.Label | ero.QeSubobject)]
#: (node, in interface, out interface) along tn1 -> tn2 -> tn3 -> tn4 -> tn5
HOPS = [("tn1", None, 1), ("tn2", 2, 1), ("tn3", 2, 3), ("tn4", 2, 3), ("tn5", 1, None)]


def _xcs(net: Net, node: str) -> list[E.CrossConnect | E.CrossConnectRemoved]:
    return [a for a in net.actions[node] if isinstance(a, E.CrossConnect | E.CrossConnectRemoved)]


def _chan(local_if: int | None, lam: int) -> E.Channel | None:
    return None if local_if is None else C(local_if, lam)


def test_unidirectional_lsp_cross_connects_every_node_once_and_removes_them() -> None:
    net = Net()
    net.create("tn1", 1, PLAIN, None, 1e9)
    (up,) = net.of("tn1", E.LspUp)
    key = up.lsp
    # the first lambda of each LABEL_SET: lambda 1 on every link
    for node, i, o in HOPS:
        role = "head" if i is None else "tail" if o is None else "transit"
        want = E.CrossConnect(key, role, _chan(i, 1), _chan(o, 1), None, None)
        assert _xcs(net, node) == [want], node
        assert net.cores[node].cross_connect(key) == want
    net.delete("tn1", 1)
    for node in NODES:
        assert _xcs(net, node)[1:] == [E.CrossConnectRemoved(key)], node
        assert net.cores[node].cross_connect(key) is None


def test_bidirectional_lsp_cross_connects_both_directions() -> None:
    net = Net()
    net.create("tn1", 1, PLAIN, None, 1e9, bidirectional=True)
    (up,) = net.of("tn1", E.LspUp)
    # upstream lambda 8 (the last free, picked by each upstream node), downstream 1
    for node, i, o in HOPS:
        role = "head" if i is None else "tail" if o is None else "transit"
        want = E.CrossConnect(up.lsp, role, _chan(i, 1), _chan(o, 1), _chan(o, 8), _chan(i, 8))
        assert _xcs(net, node) == [want], node
    head = _xcs(net, "tn1")[0]
    assert isinstance(head, E.CrossConnect)
    assert head.channels() == (C(1, 1), C(1, 8))
    net.delete("tn1", 1)
    for node in NODES:
        assert _xcs(net, node)[-1] == E.CrossConnectRemoved(up.lsp), node
    for node, local_if in [("tn1", 1), ("tn3", 2), ("tn5", 1)]:
        assert net.free(node, local_if) == ALL


def test_no_cross_connect_before_the_resv() -> None:
    """A Path without its Resv (the tail's QE join never answered) reserves lambdas but
    installs nothing: transit nodes wait for the Resv, the tail for sending it."""
    net = Net(qe_auto=False)
    net.create("tn1", 1, ex.fig9_ero(), None, 1e9)
    assert not _xcs(net, "tn1")  # waiting for its key session: no Path yet
    lsp = net.of("tn1", E.NeedQeSession)[0].lsp
    net.apply("tn1", net.cores["tn1"].handle(E.QeSessionReady(lsp, b"\x01" * 64), net.now))
    net.run()
    assert net.of("tn5", E.QeJoin)
    for node in NODES:
        assert not _xcs(net, node), node
    assert net.free("tn3", 3) != ALL  # the lambdas are held all the same


def test_cross_connect_failure_at_a_transit_fails_the_lsp_with_24_9() -> None:
    net = Net()
    net.create("tn1", 1, PLAIN, None, 1e9, bidirectional=True)
    (up,) = net.of("tn1", E.LspUp)
    acts = net.apply(
        "tn3", net.cores["tn3"].handle(E.CrossConnectFailed(up.lsp, "no such device"), net.now)
    )
    errs = [a.message for a in acts if isinstance(a, E.Send)]
    path_err = next(m for m in errs if m.msg_type == MsgType.PATH_ERR)
    spec = path_err.by_class(6)
    assert (spec.code, spec.value) == (24, 9)  # type: ignore[union-attr]
    assert spec.flags & ES_PATH_STATE_REMOVED  # type: ignore[union-attr]
    assert any(m.msg_type == MsgType.PATH_TEAR for m in errs)
    net.run()
    (down,) = net.of("tn1", E.LspDown)
    assert down.code == (24, 9)
    assert net.cores["tn3"].stats["xc_failures"] == 1
    for node in NODES:
        assert _xcs(net, node)[-1] == E.CrossConnectRemoved(up.lsp), node
        assert not net.cores[node].psbs
    for node, local_if in [("tn1", 1), ("tn2", 1), ("tn3", 2), ("tn4", 3), ("tn5", 1)]:
        assert net.free(node, local_if) == ALL, (node, local_if)


def test_cross_connect_failure_at_the_head_is_lsp_down() -> None:
    net = Net()
    net.create("tn1", 1, PLAIN, None, 1e9)
    (up,) = net.of("tn1", E.LspUp)
    net.apply("tn1", net.cores["tn1"].handle(E.CrossConnectFailed(up.lsp, "busy"), net.now))
    net.run()
    (down,) = net.of("tn1", E.LspDown)
    assert (down.code, down.reason) == ((24, 9), "cross-connect failed: busy")
    assert not net.cores["tn5"].psbs
    # a failure for an LSP that is gone changes nothing
    assert net.cores["tn3"].handle(E.CrossConnectFailed(up.lsp, "late"), net.now) == []


def test_a_node_lost_by_hello_removes_the_cross_connects_upstream() -> None:
    net = Net(hello_ms=1000)
    net.advance(2.0)
    net.create("tn1", 1, PLAIN, None, 1e9)
    (up,) = net.of("tn1", E.LspUp)
    net.down.add("tn5")
    net.advance(10.0)
    for node in ("tn1", "tn2", "tn3", "tn4"):
        assert _xcs(net, node)[-1] == E.CrossConnectRemoved(up.lsp), node


def test_two_lsps_share_no_channel() -> None:
    net = Net()
    net.create("tn1", 1, PLAIN, None, 1e9, bidirectional=True)
    net.create("tn1", 2, PLAIN, None, 1e9, bidirectional=True)
    ups = net.of("tn1", E.LspUp)
    assert len(ups) == 2
    for node in NODES:
        chans = [c for a in _xcs(net, node) if isinstance(a, E.CrossConnect) for c in a.channels()]
        assert len(chans) == len(set(chans)), node
