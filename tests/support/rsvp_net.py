"""Several RSVP cores wired in memory under a virtual clock (no sockets, no real time).

``Net`` builds one :class:`RsvpCore` per GMPLS node of topologies/paper.yaml, delivers
every :class:`Send` to the core that owns the destination control address (at once, in
order, recording a ladder), answers the QE hooks like a pair of ETSI 004 proxies would (or
not, on request), and fires each core's next deadline, all on one virtual clock
(:class:`tests.support.sim.Sim`).

Ladder of the paper topology::

    tn1 -1--2- tn2 -1--2- tn3 -3--2- tn4 -3--1- tn5
                 \\-3-------(bypass)------1-/
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypeVar

from gmpls import ero, qe, topology
from gmpls.core import Tick
from gmpls.rsvp import events as E
from gmpls.rsvp.core import RsvpCore
from gmpls.rsvp.message import Message
from tests.support.sim import Alarm, Sim

A = TypeVar("A")
ROOT = Path(__file__).resolve().parents[2]
TOPO = topology.load(ROOT / "topologies" / "paper.yaml")
NODES = ("tn1", "tn2", "tn3", "tn4", "tn5")


@dataclass
class Net:
    hello_ms: int = 0
    refresh_ms: int = 30000
    #: nodes whose refresh period R differs from ``refresh_ms``: name -> R (ms)
    refresh_of: dict[str, int] = field(default_factory=dict)
    keep: int = 3
    #: answer NeedQeSession/QeJoin automatically with QeSessionReady
    qe_auto: bool = True
    #: node names whose QE hook fails instead: name -> reason
    qe_fail: dict[str, str] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    ladder: list[tuple[float, str, str, str]] = field(default_factory=list)
    actions: dict[str, list[E.Action]] = field(default_factory=dict)
    sent: list[tuple[str, str, Message]] = field(default_factory=list)
    #: loss model: drop a message when drop(src, dst, message) is true
    drop: Callable[[str, str, Message], bool] | None = None
    dropped: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sim = Sim()
        self.cores: dict[str, RsvpCore] = {}
        self.addr: dict[IPv4Address, str] = {}
        self.alarms: dict[str, Alarm] = {}
        for n in NODES:
            self.cores[n] = self._core(n, 100 + int(n[2:]))
            self.addr[TOPO.control_address(n)] = n
            self.actions[n] = []
            self.alarms[n] = Alarm(self.sim, lambda _at, n=n: self._tick(n))
        self.handles = 0

    def _core(self, n: str, instance: int) -> RsvpCore:
        h = TOPO.host(n)
        assert h.router_id is not None
        return RsvpCore(
            h.router_id,
            TOPO.control_address(n),
            TOPO.te_links_of(n),
            refresh_ms=self.refresh_of.get(n, self.refresh_ms),
            keep_multiplier=self.keep,
            hello_ms=self.hello_ms,
            instance=instance,
            qe_capable=h.qe.capable,
            name=n,
        )

    def restart(self, name: str) -> None:
        """``name`` restarts at once: a new core (a new instance and epoch), no state."""
        old = self.cores[name]
        self.cores[name] = self._core(name, old.instance + 1000)

    @property
    def now(self) -> float:
        return self.sim.now

    # --- plumbing -------------------------------------------------------------------

    def apply(self, name: str, actions: list[E.Action]) -> list[E.Action]:
        """Record ``name``'s actions, put its messages and the QE answers on the clock (due
        at once, in order) and move its timer."""
        for a in actions:
            self.actions[name].append(a)
            if isinstance(a, E.Send):
                dst = self.addr.get(a.dst)
                if dst is None:  # an answer to a stranger: nobody there
                    continue
                self.sim.call_later(
                    0, lambda src=name, dst=dst, data=a.data: self._deliver(src, dst, data)
                )
                self.sent.append((name, dst, a.message))
            elif isinstance(a, E.NeedQeSession) and self.qe_auto:
                if name in self.qe_fail:
                    self._answer(name, E.QeFailed(a.lsp, self.qe_fail[name]))
                else:
                    self.handles += 1
                    handle = self.handles.to_bytes(2, "big") * 32
                    self._answer(name, E.QeSessionReady(a.lsp, handle))
            elif isinstance(a, E.QeJoin) and self.qe_auto:
                if name in self.qe_fail:
                    self._answer(name, E.QeFailed(a.lsp, self.qe_fail[name]))
                else:
                    self._answer(name, E.QeSessionReady(a.lsp, a.key_handle))
        self._arm(name)
        return actions

    def _answer(self, name: str, event: E.Event) -> None:
        self.sim.call_later(0, lambda: self._feed(name, event))

    def _feed(self, name: str, event: E.Event) -> None:
        if name not in self.down:
            self.apply(name, self.cores[name].handle(event, self.now))

    def _deliver(self, src: str, dst: str, data: bytes) -> None:
        if src in self.down or dst in self.down:
            return
        msg = Message.decode(data)
        if self.drop is not None and self.drop(src, dst, msg):
            self.dropped.append((src, dst, msg.name))
            return
        if msg.name not in ("HELLO", "ACK"):
            self.ladder.append((self.now, src, dst, msg.name))
        self._feed(dst, E.Received(TOPO.control_address(src), data))

    def _arm(self, name: str) -> None:
        self.alarms[name].set(None if name in self.down else self.cores[name].next_timer())

    def _tick(self, name: str) -> None:
        self._feed(name, Tick())

    def _rearm(self) -> None:
        """Tests feed cores directly and take nodes down or up: every timer anew."""
        for n in self.cores:
            self._arm(n)

    def run(self) -> None:
        """Deliver messages and QE answers (and fire timers due) until nothing is left in
        flight now."""
        self._rearm()
        self.sim.run(0)

    def advance(self, seconds: float) -> None:
        """Run every message and timer due within the next ``seconds`` of virtual time."""
        self._rearm()
        self.sim.run(seconds)

    # --- helpers for tests ---------------------------------------------------------

    def create(
        self,
        name: str,
        tunnel_id: int,
        route: list[ero.Subobject],
        params: qe.QeParams | None,
        bandwidth_bps: float,
        bidirectional: bool = False,
    ) -> list[E.Action]:
        core = self.cores[name]
        ev = E.CreateLsp(tunnel_id, route, params, bandwidth_bps, bidirectional=bidirectional)
        acts = self.apply(name, core.handle(ev, self.now))
        self.run()
        return acts

    def delete(self, name: str, tunnel_id: int) -> list[E.Action]:
        acts = self.apply(name, self.cores[name].handle(E.DeleteLsp(tunnel_id), self.now))
        self.run()
        return acts

    def of(self, name: str, kind: type[A]) -> list[A]:
        return [a for a in self.actions[name] if isinstance(a, kind)]

    def msgs(self) -> list[tuple[str, str, str]]:
        return [(s, d, m) for _, s, d, m in self.ladder]

    def free(self, name: str, local_if: int) -> tuple[int, ...]:
        return self.cores[name].free_lambdas(local_if)
