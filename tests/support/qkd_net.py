"""In-memory wiring of the pure cores: two proxies, two IDQ3P emulators, SAEs and a lossy
network on a virtual clock (:class:`tests.support.sim.Sim`), with no sockets."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.qkd import etsi004 as etsi
from idq3p_emulator import events as idq_events
from idq3p_emulator.core import Idq3pServer
from idq3p_emulator.store import FileSource, KeySource, KeyStore, SeedSource
from qkd_proxy.core import ProxyConfig, ProxyCore
from qkd_proxy.events import Channel, Datagram, Event, Log, Send
from tests.support.sim import Alarm, Sim

SECRET = bytes.fromhex("6a1f0e2c9b3d48a7c5e1f02b7d94a63e0c8b5f21d7e6a49b3c0f18e25d7a9c46")
TN1 = IPv4Address("10.1.1.1")
TN5 = IPv4Address("10.1.1.5")
TN1_QA = "10.2.1.1"
TN5_QB = "10.2.2.5"
A_SYNC = ("10.11.1.11", 5626)
B_SYNC = ("10.11.1.15", 5626)
IDQ_A = ("10.11.2.2", 5323)
IDQ_B = ("10.11.3.2", 5323)
A_SOUTH = ("10.11.2.1", 40000)
B_SOUTH = ("10.11.3.1", 40000)
NODES = {
    IPv4Address("10.1.1.1"): TN1,
    IPv4Address(TN1_QA): TN1,
    IPv4Address("10.1.1.5"): TN5,
    IPv4Address(TN5_QB): TN5,
}


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def proxy_configs(**kw: object) -> tuple[ProxyConfig, ProxyConfig]:
    common: dict[str, Any] = {"node_of_addr": NODES, "sync_secret": SECRET, **kw}
    a = ProxyConfig(
        name="etsiA",
        local_node=TN1,
        local_node_addrs=frozenset({IPv4Address("10.1.1.1"), IPv4Address(TN1_QA)}),
        peer_node=TN5,
        peer_sync=B_SYNC,
        peer_name="etsiB",
        idq=IDQ_A,
        wins_tie=True,
        **common,
    )
    b = ProxyConfig(
        name="etsiB",
        local_node=TN5,
        local_node_addrs=frozenset({IPv4Address("10.1.1.5"), IPv4Address(TN5_QB)}),
        peer_node=TN1,
        peer_sync=A_SYNC,
        peer_name="etsiA",
        idq=IDQ_B,
        wins_tie=False,
        **common,
    )
    return a, b


@dataclass
class Net:
    """Virtual clock and network. ``loss`` drops that fraction of every datagram."""

    loss: float = 0.0
    latency: float = 0.0001
    seed: int = 1
    rate_bps: float = 1e9
    buffer_bits: int = 1 << 30
    source: KeySource | None = None
    proxy_kw: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sim = Sim()
        src = self.source or SeedSource(b"test-seed")
        self.idq = {
            "A": Idq3pServer(KeyStore(src, 0, self.rate_bps, self.buffer_bits, 0.0)),
            "B": Idq3pServer(KeyStore(src, 1, self.rate_bps, self.buffer_bits, 0.0)),
        }
        ca, cb = proxy_configs(**self.proxy_kw)
        rb = random.Random(self.seed + 1)
        self.proxy = {
            "A": ProxyCore(ca, lambda n: bytes(rb.getrandbits(8) for _ in range(n)), 0.0),
            "B": ProxyCore(cb, lambda n: bytes(rb.getrandbits(8) for _ in range(n)), 0.0),
        }
        self.alarms = {
            side: Alarm(self.sim, lambda _at, s=side: self._feed(s, Tick())) for side in "AB"
        }
        for side in "AB":  # as a shell does once its sockets are open
            self.alarms[side].set(self.proxy[side].next_timer())
        self.inbox: dict[tuple[str, int], list[etsi.Reply]] = {}
        self.logs: list[Log] = []
        self.wire: list[tuple[Channel, bytes]] = []
        self.device_down: set[str] = set()  # sides whose IDQ3P device is unreachable
        self.sim.run(0.01)  # the proxies greet each other (sync HELLO) before any SAE comes

    @property
    def now(self) -> float:
        return self.sim.now

    def restart(self, side: str, seed: int) -> None:
        """Replace a proxy by a fresh core with the same config (all state lost, its
        random source seeded anew), as a restarted daemon."""
        rb = random.Random(seed)
        cfg = self.proxy[side].cfg
        self.proxy[side] = ProxyCore(
            cfg, lambda n: bytes(rb.getrandbits(8) for _ in range(n)), self.now
        )
        self.alarms[side].set(self.proxy[side].next_timer())

    def inject(self, side: str, channel: Channel, data: bytes, src: tuple[str, int]) -> None:
        """A datagram from ``src`` arrives at a proxy (a forgery, a replay, a reflection)."""
        self._feed(side, Datagram(channel, data, src))

    # --- delivery -------------------------------------------------------------------
    def _later(self, fn: Callable[[], None]) -> None:
        self.sim.call_later(self.latency, fn)

    def _apply(self, side: str, actions: list[object]) -> None:
        for a in actions:
            if isinstance(a, Log):
                self.logs.append(a)
            elif isinstance(a, Send):
                self.wire.append((a.channel, a.data))
                if self.rng.random() < self.loss:
                    continue
                self._later(lambda a=a: self._route(side, a))
        self.alarms[side].set(self.proxy[side].next_timer())

    def _route(self, side: str, a: Send) -> None:
        other = "B" if side == "A" else "A"
        if a.channel is Channel.SYNC:
            src = A_SYNC if side == "A" else B_SYNC
            self._feed(other, Datagram(Channel.SYNC, a.data, src))
        elif a.channel is Channel.SOUTH:
            if side in self.device_down:
                return
            src = A_SOUTH if side == "A" else B_SOUTH
            idq = IDQ_A if side == "A" else IDQ_B
            for r in self.idq[side].handle(idq_events.Datagram(a.data, src), self.now):
                if self.rng.random() >= self.loss:
                    ev = Datagram(Channel.SOUTH, r.data, idq)
                    self._later(lambda ev=ev: self._feed(side, ev))
        else:
            self.inbox.setdefault(a.addr, []).append(etsi.decode(a.data))  # type: ignore[arg-type]

    def _feed(self, side: str, ev: Event) -> None:
        self._apply(side, self.proxy[side].handle(ev, self.now))  # type: ignore[arg-type]

    def sae_send(self, side: str, addr: tuple[str, int], msg: etsi.Request) -> None:
        data = etsi.encode(msg)
        self.wire.append((Channel.NORTH, data))
        if self.rng.random() < self.loss:
            return
        ev = Datagram(Channel.NORTH, data, addr)
        self._later(lambda: self._feed(side, ev))

    # --- an SAE that retransmits ------------------------------------------------------
    def call(
        self,
        side: str,
        addr: tuple[str, int],
        msg: etsi.Request,
        rto: float = 0.05,
        deadline: float = 30.0,
    ) -> etsi.Reply:
        """Send ``msg`` and retransmit it until an answer with its request ID arrives."""
        end = self.now + deadline
        while self.now < end:
            self.sae_send(side, addr, msg)
            self.sim.run(rto)
            for r in self.inbox.get(addr, []):
                if r.request_id == msg.request_id:
                    self.inbox[addr].remove(r)
                    return r
            rto = min(rto * 2, 0.4)
        raise TimeoutError(f"no answer to {msg!r}")


def file_source(nbytes: int) -> FileSource:
    return FileSource(bytes(random.Random(7).getrandbits(8) for _ in range(nbytes)))
