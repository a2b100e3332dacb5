"""N OSPF cores wired in memory on a virtual clock (:class:`tests.support.sim.Sim`: no
sockets, no real time).

Segments are broadcast LANs or point-to-point links. A :class:`Send` to a multicast
address reaches every other interface on the segment, a unicast one the interface with
that address; delivery takes ``delay`` virtual seconds. Each router's ``next_timer()``
is honoured exactly. ``kill`` silences a router (a crash: no goodbye).

``service`` models a busy shell (daemonkit/ospf.py in a pack): a router works off its LS
Requests and Updates one every ``service`` virtual seconds, in a backlog, while Hellos,
DDs and LS Acks are handled as they arrive. A router made with ``defer_updates=True``
gets its LS Updates at once (it answers duplicates and defers the rest) and the backlog's
turns hand it :class:`ProcessUpdates`, as the shell does.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from gmpls.core import Tick
from gmpls.ospf.constants import PacketType
from gmpls.ospf.events import InterfaceConfig, InterfaceUp, ProcessUpdates, Received, Send
from gmpls.ospf.router import OspfRouter
from tests.support.sim import Alarm, Sim


@dataclass
class Port:
    router: OspfRouter
    ifname: str
    address: IPv4Interface


@dataclass
class Segment:
    name: str
    ports: list[Port] = field(default_factory=list)
    up: bool = True


class Lab:
    def __init__(
        self,
        delay: float = 0.001,
        loss: float = 0.0,
        seed: int = 1,
        service: float | None = None,
        **if_defaults: Any,
    ) -> None:
        import random

        self.rng = random.Random(seed)
        self.loss = loss  # probability that one delivery (one receiver) is lost
        self.sim = Sim()
        self.delay = delay
        self.if_defaults = {"hello_interval": 1, "dead_interval": 4, "rxmt_interval": 2}
        self.if_defaults.update(if_defaults)
        self.routers: dict[IPv4Address, OspfRouter] = {}
        self.segments: dict[str, Segment] = {}
        self._seg_of: dict[tuple[IPv4Address, str], Segment] = {}
        #: each router's next_timer(), by router ID (a restarted router takes it over)
        self._alarms: dict[IPv4Address, Alarm] = {}
        self.dead: set[IPv4Address] = set()
        self.sent: list[tuple[float, IPv4Address, Send]] = []
        self.record = False
        self.packets = 0
        #: virtual seconds per backlog packet (None: no backlog, everything at once)
        self.service = service
        self._backlog: dict[IPv4Address, deque[Received]] = {}
        self._serving: set[IPv4Address] = set()
        #: backlog turns that had work (a packet, or ProcessUpdates)
        self.turns = 0

    @property
    def now(self) -> float:
        return self.sim.now

    def router(self, rid: str, **kw: Any) -> OspfRouter:
        r = OspfRouter(rid, **kw)
        self.routers[r.router_id] = r
        return r

    def connect(
        self, seg_name: str, router: OspfRouter, address: str, ifname: str | None = None, **cfg: Any
    ) -> InterfaceConfig:
        seg = self.segments.setdefault(seg_name, Segment(seg_name))
        ifname = ifname or seg_name
        opts = dict(self.if_defaults)
        opts.update(cfg)
        conf = InterfaceConfig(ifname, IPv4Interface(address), **opts)
        seg.ports.append(Port(router, ifname, conf.address))
        self._seg_of[(router.router_id, ifname)] = seg
        router._lab_pending = [*getattr(router, "_lab_pending", []), conf]  # type: ignore[attr-defined]
        return conf

    def start(self, router: OspfRouter | None = None) -> None:
        for r in [router] if router else list(self.routers.values()):
            for conf in getattr(r, "_lab_pending", []):
                self.feed(r, InterfaceUp(conf))
            r._lab_pending = []  # type: ignore[attr-defined]

    def kill(self, router: OspfRouter) -> None:
        self.dead.add(router.router_id)
        self._alarm(router.router_id).set(None)

    def _alarm(self, rid: IPv4Address) -> Alarm:
        if rid not in self._alarms:
            self._alarms[rid] = Alarm(self.sim, lambda _at: self._tick(rid))
        return self._alarms[rid]

    def _tick(self, rid: IPv4Address) -> None:
        r = self.routers[rid]
        self.feed(r, Tick())

    def feed(self, r: OspfRouter, event: Any) -> None:
        """Hand ``r`` an event now and carry out its actions."""
        self._apply(r, r.handle(event, self.now))

    def _apply(self, r: OspfRouter, actions: list[Any]) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.packets += 1
                if self.record:
                    self.sent.append((self.now, r.router_id, a))
                self._deliver(r, a)
        self._alarm(r.router_id).set(r.next_timer())

    def _deliver(self, r: OspfRouter, s: Send) -> None:
        seg = self._seg_of[(r.router_id, s.ifname)]
        if not seg.up:
            return
        src = next(p.address.ip for p in seg.ports if p.router is r and p.ifname == s.ifname)
        for p in seg.ports:
            if p.router is r:
                continue
            if not s.dst.is_multicast and p.address.ip != s.dst:
                continue
            if self.loss and self.rng.random() < self.loss:
                continue
            event = Received(p.ifname, s.data, src, s.dst)
            self.sim.call_later(self.delay, lambda to=p.router, ev=event: self._receive(to, ev))

    def _receive(self, router: OspfRouter, event: Received) -> None:
        if router.router_id in self.dead:
            return
        kind = event.data[1] if len(event.data) > 1 else 0
        if self.service is None or kind not in (PacketType.LS_REQUEST, PacketType.LS_UPDATE):
            self.feed(router, event)
            return
        if kind == PacketType.LS_UPDATE and router.defer_updates:
            self.feed(router, event)
        else:
            self._backlog.setdefault(router.router_id, deque()).append(event)
        self._kick(router)

    def _kick(self, router: OspfRouter) -> None:
        """Schedule the router's next backlog turn if it has work and none is due."""
        rid = router.router_id
        if rid in self._serving or not (self._backlog.get(rid) or router.updates_waiting()):
            return
        self._serving.add(rid)
        assert self.service is not None
        self.sim.call_later(self.service, functools.partial(self._serve, router))

    def _serve(self, router: OspfRouter) -> None:
        """One backlog turn: the oldest LS Request or Update, else one deferred update."""
        rid = router.router_id
        self._serving.discard(rid)
        if rid in self.dead:
            return
        q = self._backlog.get(rid)
        if q:
            self.turns += 1
            self.feed(router, q.popleft())
        elif router.updates_waiting():
            self.turns += 1
            self.feed(router, ProcessUpdates(1))
        self._kick(router)

    def inject(self, router: OspfRouter, ifname: str, data: bytes, src: str, dst: str) -> None:
        event = Received(ifname, data, IPv4Address(src), IPv4Address(dst))
        self.feed(router, event)

    def alive(self) -> list[OspfRouter]:
        return [r for rid, r in self.routers.items() if rid not in self.dead]

    def synchronised(self) -> bool:
        digests = {r.lsdb.digest() for r in self.alive()}
        return len(digests) == 1

    def all_full(self) -> bool:
        from gmpls.ospf.fsm import IfState, NbrState

        for r in self.alive():
            for iface, n in r.neighbors():
                if n.router_id in self.dead:
                    continue
                adj = (
                    iface.p2p
                    or iface.state in (IfState.DR, IfState.BACKUP)
                    or (n.address in (iface.dr, iface.bdr))
                )
                want = NbrState.FULL if adj else NbrState.TWO_WAY
                if n.state != want:
                    return False
        return True

    def run_until_converged(self, limit: float, step: float = 0.5) -> float:
        """Run until all adjacencies are as they should be and LSDBs are identical (and
        stay so for two hello intervals); return the time it happened."""
        t_conv: float | None = None
        while self.now < limit:
            self.sim.run(step)
            if self.all_full() and self.synchronised() and not self._pending_work():
                if t_conv is None:
                    t_conv = self.now
                elif self.now - t_conv >= 2:
                    return t_conv
            else:
                t_conv = None
        raise AssertionError(f"not converged by t={limit}: {self.describe()}")

    def _pending_work(self) -> bool:
        return any(
            r._pending or self._backlog.get(r.router_id) or r.updates_waiting()
            for r in self.alive()
        )

    def describe(self) -> str:
        out = []
        for r in self.alive():
            nb = ", ".join(f"{n.router_id}:{n.state.name}" for _, n in r.neighbors())
            out.append(f"{r.router_id} [{len(r.lsdb)} LSAs] {nb}")
        return "; ".join(out)
