"""In-memory wiring of key managers (qkd_proxy.km): N sites, one IDQ3P emulator pair per
QKD link, SAEs, on a virtual clock (:class:`tests.support.sim.Sim`), with no sockets.

Site i: key manager ``km{i}``, site node ``n{i}`` with router ID 10.1.1.i and north
address 10.2.i.1; the KM's channel address 10.12.0.i:5626; link k's emulators at
10.11.k.1 (side a) and 10.11.k.2 (side b), port 5323.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.qkd import etsi004 as etsi
from idq3p_emulator import events as idq_events
from idq3p_emulator.core import Idq3pServer
from idq3p_emulator.store import KeyStore, SeedSource
from qkd_proxy.core import ProxyConfig
from qkd_proxy.events import Channel, Datagram, Event, Log, Send
from qkd_proxy.km import KeyManager, KmConfig, KmLink
from tests.support.sim import Alarm, Sim


def site(i: int) -> IPv4Address:
    return IPv4Address(f"10.1.1.{i}")


def north(i: int) -> str:
    return f"10.2.{i}.1"


def km_addr(i: int) -> tuple[str, int]:
    return (f"10.12.0.{i}", 5626)


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def link_secret(a: int, b: int) -> bytes:
    return hashlib.sha256(f"km{a}-km{b}".encode()).digest()


@dataclass
class KmNet:
    """``links``: pairs of site numbers (a, b), a < b. ``loss`` drops that fraction of
    every datagram between KMs and devices."""

    n: int
    links: list[tuple[int, int]]
    loss: float = 0.0
    latency: float = 0.0001
    seed: int = 1
    rate_bps: float = 1e9
    buffer_bits: int = 1 << 30
    km_kw: dict[str, Any] = field(default_factory=dict)
    #: (a, b) -> the rate of that link (default ``rate_bps``)
    rates: dict[tuple[int, int], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sim = Sim()
        self.idq: dict[tuple[str, int], Idq3pServer] = {}  # device address -> emulator
        self.south_of: dict[tuple[str, int], tuple[str, int]] = {}  # device -> KM's south
        self.down_devices: set[tuple[str, int]] = set()
        self.silent: set[int] = set()  # sites whose KM drops everything
        nodes = {site(i): site(i) for i in range(1, self.n + 1)}
        nodes.update({IPv4Address(north(i)): site(i) for i in range(1, self.n + 1)})
        per_km: dict[int, list[KmLink]] = {i: [] for i in range(1, self.n + 1)}
        for k, (a, b) in enumerate(self.links, 1):
            src = SeedSource(f"seed-{a}-{b}".encode())
            for me, far, side in ((a, b, 1), (b, a, 2)):
                dev = (f"10.11.{k}.{side}", 5323)
                self.idq[dev] = Idq3pServer(
                    KeyStore(
                        src, side - 1, self.rates.get((a, b), self.rate_bps), self.buffer_bits, 0.0
                    )
                )
                self.south_of[dev] = (f"10.11.{k}.{side + 10}", 40000)
                pc = ProxyConfig(
                    name=f"km{me}",
                    local_node=site(me),
                    local_node_addrs=frozenset({site(me), IPv4Address(north(me))}),
                    peer_node=site(far),
                    node_of_addr=nodes,
                    peer_sync=km_addr(far),
                    peer_name=f"km{far}",
                    idq=dev,
                    sync_secret=link_secret(a, b),
                    wins_tie=me < far,
                )
                per_km[me].append(KmLink(f"km{a}-km{b}", pc, site(far), 1000, 1 << 20))
        graph = tuple((site(a), site(b)) for a, b in self.links)
        self.km: dict[int, KeyManager] = {}
        for i in range(1, self.n + 1):
            cfg = KmConfig(
                name=f"km{i}",
                site=site(i),
                served_addrs=frozenset({site(i), IPv4Address(north(i))}),
                served_nodes=frozenset({site(i)}),
                links=tuple(per_km[i]),
                graph=graph,
                site_of_node={site(j): site(j) for j in range(1, self.n + 1)},
                node_of_addr=nodes,
                **self.km_kw,
            )
            rb = random.Random(self.seed * 100 + i)
            self.km[i] = KeyManager(
                cfg, lambda k, rb=rb: bytes(rb.getrandbits(8) for _ in range(k)), 0.0
            )
        self.alarms = {i: Alarm(self.sim, lambda _at, i=i: self._feed(i, Tick())) for i in self.km}
        for i in self.km:
            self.alarms[i].set(self.km[i].next_timer())
        self.inbox: dict[tuple[str, int], list[Any]] = {}
        self.logs: list[Log] = []
        self.wire: list[tuple[Channel, bytes]] = []
        self.sim.run(1.5)  # greetings and the first emulator polls: the links come up

    @property
    def now(self) -> float:
        return self.sim.now

    def _feed(self, i: int, ev: Event) -> None:
        if i in self.silent:
            return
        actions = self.km[i].handle(ev, self.now)
        for a in actions:
            if isinstance(a, Log):
                self.logs.append(a)
            elif isinstance(a, Send):
                self.wire.append((a.channel, a.data))
                if self.rng.random() >= self.loss:
                    self.sim.call_later(self.latency, lambda a=a, i=i: self._route(i, a))
        self.alarms[i].set(self.km[i].next_timer())

    def _route(self, i: int, a: Send) -> None:
        if a.channel is Channel.SYNC:
            far = int(a.addr[0].rsplit(".", 1)[1])
            self._feed(far, Datagram(Channel.SYNC, a.data, km_addr(i)))
        elif a.channel is Channel.SOUTH:
            if a.addr in self.down_devices:
                return
            for r in self.idq[a.addr].handle(
                idq_events.Datagram(a.data, self.south_of[a.addr]), self.now
            ):
                if self.rng.random() >= self.loss:
                    ev = Datagram(Channel.SOUTH, r.data, a.addr)
                    self.sim.call_later(self.latency, lambda ev=ev: self._feed(i, ev))
        else:
            self.inbox.setdefault(a.addr, []).append(a.data)

    def inject(self, i: int, channel: Channel, data: bytes, src: tuple[str, int]) -> None:
        self._feed(i, Datagram(channel, data, src))

    def send(self, i: int, addr: tuple[str, int], channel: Channel, data: bytes) -> None:
        self.wire.append((channel, data))
        self.sim.call_later(self.latency, lambda: self._feed(i, Datagram(channel, data, addr)))

    def call(
        self,
        i: int,
        msg: etsi.Request,
        port: int = 50000,
        rto: float = 0.05,
        deadline: float = 30.0,
        addr: str | None = None,
    ) -> etsi.Reply:
        """The SAE of site ``i`` sends ``msg`` (retransmitted) until answered."""
        src = (addr or north(i), port)
        data = etsi.encode(msg)
        end = self.now + deadline
        while self.now < end:
            self.send(i, src, Channel.NORTH, data)
            self.sim.run(rto)
            for raw in self.inbox.get(src, []):
                r = etsi.decode(raw)
                if r.request_id == msg.request_id:
                    self.inbox[src].remove(raw)
                    return r  # type: ignore[return-value]
            rto = min(rto * 2, 0.4)
        raise TimeoutError(f"no answer to {msg!r}")

    def run_until(self, pred: Callable[[], bool], seconds: float) -> bool:
        return self.sim.run_until(pred, seconds)

    def link(self, i: int, name: str) -> Any:
        return self.km[i].links[name]

    def used(self, name: str, sites: Iterable[int]) -> list[int]:
        return [self.km[i].links[name].core.counters["bits_delivered"] for i in sites]
