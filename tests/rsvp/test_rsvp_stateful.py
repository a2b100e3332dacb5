"""Stateful property test of the wired cores: random creates (uni- or bidirectional),
deletes, lossy periods, node deaths and time, then checks that the lambdas held at each
node are exactly those its LSPs use, and — once the network is quiet — that both ends of
every TE link agree on what is in use and that every LSP the head believes up exists on
every node of its path."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gmpls import ero
from gmpls.rsvp import events as E
from gmpls.rsvp import examples as ex
from tests.support.rsvp_net import NODES, TOPO, Net

TN = ex.TN
ROUTES: list[list[ero.Subobject]] = [
    ex.fig9_ero(),
    [s for s in ex.fig9_ero() if not isinstance(s, ero.Label)],
    [
        ero.Unnumbered(TN[1], 1),
        ero.Unnumbered(TN[2], 3),
        ero.Unnumbered(TN[4], 3),
        ero.Ipv4Prefix(TN[5], 32),
    ],
    [ero.Unnumbered(TN[2], 1), ero.Label(ero.lambda_label(3)), ero.Ipv4Prefix(TN[3], 32)],
    [
        ero.Unnumbered(TN[3], 3),
        ero.Unnumbered(TN[4], 3),
        ero.QeSubobject(),
        ero.Ipv4Prefix(TN[5], 32),
        ero.QeSubobject(),
    ],
]


class WiredCores(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(0)
        self.loss = 0.0
        # R = 3 s (L = 15.75 s) keeps the virtual time, and the test, short
        self.net = Net(
            hello_ms=1000, refresh_ms=3000, drop=lambda s, d, m: self.rng.random() < self.loss
        )
        self.net.advance(2.0)
        self.tunnels: dict[int, str] = {}
        self.next_tunnel = 1

    @rule(route=st.integers(0, len(ROUTES) - 1), bidir=st.booleans())
    def create(self, route: int, bidir: bool) -> None:
        r = ROUTES[route]
        head = next(n for n in NODES if self.net.cores[n]._names_me(r[0]))
        if head in self.net.down:
            return
        t = self.next_tunnel
        self.next_tunnel += 1
        self.net.create(head, t, list(r), None, 1e9, bidirectional=bidir)
        self.tunnels[t] = head

    @precondition(lambda self: bool(self.tunnels))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        t = data.draw(st.sampled_from(sorted(self.tunnels)))
        head = self.tunnels.pop(t)
        if head not in self.net.down:
            self.net.delete(head, t)

    @rule(seconds=st.sampled_from([0.3, 1.0, 5.0, 20.0]))
    def wait(self, seconds: float) -> None:
        self.net.advance(seconds)

    @rule(loss=st.sampled_from([0.0, 0.0, 0.2]))
    def set_loss(self, loss: float) -> None:
        self.loss = loss

    @precondition(lambda self: not self.net.down)
    @rule(node=st.sampled_from(["tn2", "tn3", "tn4"]))
    def kill(self, node: str) -> None:
        self.net.down.add(node)

    @invariant()
    def held_lambdas_are_used(self) -> None:
        for n, c in self.net.cores.items():
            used: dict[int, set[int]] = {i: set() for i in c.links}
            for p in c.psbs.values():
                for i, label in (
                    (p.in_if, p.in_label),
                    (p.out_if, p.out_label),
                    (p.in_if, p.in_up_label),
                    (p.out_if, p.out_up_label),
                ):
                    if i is not None and label is not None:
                        assert ero.lambda_channel(label) not in used[i], (n, i, "twice")
                        used[i].add(ero.lambda_channel(label))
            for i, link in c.links.items():
                assert set(link.lambdas) - set(c.free_lambdas(i)) == used[i], (n, i)

    @invariant()
    def cross_connects_follow_the_state(self) -> None:
        """The cross-connects emitted and not removed at each node are the ones its LSPs
        need now, and no channel serves two of them."""
        for n, c in self.net.cores.items():
            installed: dict[E.LspKey, E.CrossConnect] = {}
            for a in self.net.actions[n]:
                if isinstance(a, E.CrossConnect):
                    installed[a.lsp] = a
                elif isinstance(a, E.CrossConnectRemoved):
                    installed.pop(a.lsp)
            wanted = {k: x for k in c.psbs if (x := c.cross_connect(k)) is not None}
            assert installed == wanted, n
            chans = [ch for x in installed.values() for ch in x.channels()]
            assert len(chans) == len(set(chans)), n

    def teardown(self) -> None:
        # quiesce: no loss, time for retransmissions, Hellos and state timeouts
        self.loss = 0.0
        self.net.advance(40.0)
        alive = [n for n in NODES if n not in self.net.down]
        for link in TOPO.te_links:
            if link.a in alive and link.b in alive:
                assert self.net.free(link.a, link.a_if) == self.net.free(link.b, link.b_if), link
        by_rid = {self.net.cores[m].router_id: m for m in NODES}
        for n in alive:
            core = self.net.cores[n]
            for key, p in core.psbs.items():
                if p.role != "head" or p.state != "up":
                    continue
                route = core.rsbs[key].route
                hops = [by_rid[s.router_id] for s in route if isinstance(s, ero.Unnumbered)]
                assert hops, key
                for m in hops:
                    assert m not in self.net.down, (key, m)
                    assert self.net.cores[m].psbs[key].state == "up", (key, m)
        for n in alive:
            assert not self.net.cores[n].pending, n


WiredCores.TestCase.settings = settings(max_examples=20, stateful_step_count=10, deadline=None)
test_wired_cores = WiredCores.TestCase
