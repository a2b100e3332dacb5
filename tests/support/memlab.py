"""The paper testbed wired in memory on one virtual clock: every protocol piece is the
real one, only the wires and the clock are not.

- the QE service of each node is the node agent's shell (:class:`node_agent.qe_service.
  QeService`, around the real :class:`gmpls.qe_service.core.QeServiceCore`) with its
  I/O seams replaced (:class:`MemNode`): time is the lab's virtual clock
  (:class:`tests.support.sim.Sim`), the PCReq is answered
  by the real PCE computation (:class:`MemPce`: :class:`pce.service.PceService` over a
  TED of the topology's LSAs), the ETSI 004 calls go as encoded datagrams to a proxy core
  (:class:`MemEtsi`);
- RSVP-TE is the real :class:`gmpls.rsvp.core.RsvpCore` of every node (:class:`MemRsvp`):
  a ``Send`` reaches the destination's core after :data:`LATENCY`, in order;
- the QKD plane (:class:`MemQkd`) is the topology's two ETSI 004 proxy cores
  (:class:`qkd_proxy.core.ProxyCore`) and two IDQ3P emulator cores
  (:class:`idq3p_emulator.core.Idq3pServer` with their key stores), configured from the
  topology like the daemons are, passing their encoded datagrams to each other: north
  (node ↔ proxy, ETSI 004 codec), sync (proxy ↔ proxy), south (proxy ↔ IDQ3P device).
  Faults: a node's proxy unreachable, devices without key, proxies refusing joins.

Nothing here reads a clock or opens a socket: a test runs in milliseconds whatever the
machine's load, and :meth:`MemLab.settle` waits in virtual time.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from daemonkit.cli import CommandTable
from daemonkit.pcep import LspStatus, PcepClient, Reply
from gmpls import ero
from gmpls.core import Tick
from gmpls.pcep.messages import PCRpt, decode_message
from gmpls.qe_service import events as E
from gmpls.qe_service.model import FINISHED, UP, Service
from gmpls.qkd import etsi004 as etsi
from gmpls.rsvp import events as RE
from gmpls.rsvp.core import RsvpCore
from gmpls.topology import Topology, load
from idq3p_emulator.daemon import EmulatorConfig, build_server
from idq3p_emulator.daemon import config_from_topology as idq_config
from idq3p_emulator.events import Datagram as IdqDatagram
from node_agent import qe_cli
from node_agent.qe_service import QeService
from node_agent.rsvp import status_of
from pce.compute import PathComputer
from pce.lspdb import LspDb
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted
from qkd_proxy.core import ProxyCore
from qkd_proxy.daemon import config_from_topology as proxy_config
from qkd_proxy.events import Channel, Datagram, Log, Send
from tests.support.sim import Alarm, Sim, Timer

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
#: one-way delay of every in-memory wire (s)
LATENCY = 0.0001
#: the PCE's computation time (s)
PCE_DELAY = 0.001
#: the node's ETSI 004 client gives up after this long (s), as the node agent's does
ETSI_DEADLINE = 6.0
Addr = tuple[str, int]


# --- RSVP-TE ------------------------------------------------------------------------------


class MemRsvp:
    """One node's RSVP core on the in-memory wire (the node agent's RsvpAgent without the
    socket); every action other than Send goes to ``on_action`` (the QE service)."""

    def __init__(self, lab: MemLab, core: RsvpCore) -> None:
        self.lab = lab
        self.core = core
        self.on_action: Callable[[RE.Action], None] | None = None
        self.down = False
        self.alarm = Alarm(lab.sim, self._tick)

    def feed(self, event: RE.Event) -> list[RE.Action]:
        if self.down:
            return []
        return self.apply(self.core.handle(event, self.lab.sim.now))

    def status(self) -> dict[str, object]:
        return status_of(self.core, self.lab.sim.now)

    def apply(self, actions: list[RE.Action]) -> list[RE.Action]:
        for a in actions:
            if isinstance(a, RE.Send):
                self.lab.send_rsvp(self.core.control_address, a)
            elif self.on_action is not None:
                self.on_action(a)
        self._arm()
        return actions

    def receive(self, src: IPv4Address, data: bytes) -> None:
        if not self.down:
            self.apply(self.core.handle(RE.Received(src, data), self.lab.sim.now))

    def _arm(self) -> None:
        self.alarm.set(None if self.down else self.core.next_timer())

    def _tick(self, _at: float) -> None:
        if not self.down:
            self.apply(self.core.handle(Tick(), self.lab.sim.now))

    def kill(self) -> None:
        """The node dies: no more messages in or out, no timers."""
        self.down = True
        self.alarm.set(None)


# --- PCE ----------------------------------------------------------------------------------


class MemPce:
    """A PCE computed in memory from the topology's LSAs (the real computation). The heads'
    LSP reports (the stateful PCC's :meth:`report`) go to its LSP database; only a
    ``stateful`` one holds the lambdas of the paths it computes and of reported LSPs."""

    def __init__(
        self, topo: Topology, clock: Callable[[], float] = lambda: 0.0, stateful: bool = False
    ) -> None:
        self.ted = Ted()
        self.ted.load(topology_lsas(topo))
        self.lsps = LspDb()
        self.service = PceService(PathComputer(self.ted), lsps=self.lsps if stateful else None)
        self.clock = clock
        self.is_up = True
        self.requests = 0
        self._ids = itertools.count(1)

    def answer(self, a: E.RequestPath) -> E.PathReply:
        self.requests += 1
        req = PcepClient.build_request(next(self._ids), a.src, a.dst, a.params, a.bandwidth)
        resp, _ = self.service.answer(req, now=self.clock())
        reply = Reply(req.rp.request_id, resp)
        return E.PathReply(a.cid, reply.ok, tuple(reply.ero), reply.reason, reply.relay)

    def report(self, lsp: LspStatus, *, remove: bool = False) -> bool:
        """A head's PCRpt, through the codec, into the LSP database (RFC 8231)."""
        msg = decode_message(PCRpt((lsp.entry(remove=remove),)).encode())
        assert isinstance(msg, PCRpt)
        assert self.lsps.report(lsp.head.exploded, msg, self.clock()) == []
        return True


# --- the QKD plane: ETSI 004 proxies and IDQ3P devices --------------------------------------


class MemEtsi:
    """A node's ETSI 004 client: each call is one encoded request to the proxy, answered
    by the proxy core's encoded reply, or by nobody within :data:`ETSI_DEADLINE`."""

    def __init__(self, lab: MemLab, node: str, addr: Addr, proxy: str) -> None:
        self.lab = lab
        self.node = node
        self.addr = addr
        self.proxy = proxy
        self._rid = itertools.count(1)
        self._pending: dict[int, tuple[E.EtsiCall, Callable[[E.EtsiReply], None], Timer]] = {}

    def call(self, a: E.EtsiCall, answer: Callable[[E.EtsiReply], None]) -> None:
        rid = next(self._rid)
        timer = self.lab.sim.call_later(ETSI_DEADLINE, lambda: self._no_answer(rid))
        self._pending[rid] = (a, answer, timer)
        self.lab.qkd.north(self, etsi.encode(_etsi_request(rid, a)))

    def receive(self, data: bytes) -> None:
        msg = etsi.decode(data)
        entry = self._pending.pop(msg.request_id, None)
        if entry is None:
            return
        a, answer, timer = entry
        timer.cancel()
        if isinstance(msg, etsi.GetKeyReply) and msg.key:
            self.lab.qkd.delivered.append(msg.key)
        answer(_etsi_reply(a.cid, msg))

    def _no_answer(self, rid: int) -> None:
        entry = self._pending.pop(rid, None)
        if entry is not None:
            a, answer, _ = entry
            answer(
                E.EtsiReply(a.cid, None, error=f"proxy unreachable (no answer from {self.proxy})")
            )


def _etsi_request(rid: int, a: E.EtsiCall) -> etsi.Request:
    if isinstance(a, E.EtsiOpen):
        qos = etsi.QoS(a.key_length, 0, 0, 0)
        return etsi.Open(rid, a.destination, qos, a.key_handle or etsi.ZERO_HANDLE, a.relay)
    if isinstance(a, E.EtsiConnect):
        return etsi.ConnectNonblock(rid, a.key_handle)
    if isinstance(a, E.EtsiGetKey):
        return etsi.GetKey(rid, a.key_handle)
    return etsi.Close(rid, a.key_handle)


def _etsi_reply(cid: int, msg: Any) -> E.EtsiReply:
    if isinstance(msg, etsi.OpenReply):
        return E.EtsiReply(cid, int(msg.status), key_handle=msg.key_handle)
    if isinstance(msg, etsi.GetKeyReply):
        return E.EtsiReply(cid, int(msg.status), key_index=msg.index, key=msg.key)
    return E.EtsiReply(cid, int(msg.status))


@dataclass
class _Proxy:
    core: ProxyCore
    north: Addr
    sync: Addr
    south: Addr
    alarm: Alarm


class MemQkd:
    """The topology's ETSI 004 proxies and IDQ3P devices, wired in memory."""

    def __init__(self, lab: MemLab, topo: Topology) -> None:
        self.lab = lab
        rng = random.Random(7)
        # what `qkdnet up` hands the daemons by file: one seed, one sync key (one pair)
        sync_key, seed = rng.randbytes(32), rng.randbytes(32)
        self.proxies: dict[str, _Proxy] = {}
        for h in topo.of_kind("qkd-proxy"):
            cfg, north, sync, south = proxy_config(topo, h.name, sync_key=sync_key)
            core = ProxyCore(cfg, rng.randbytes, lab.sim.now)
            alarm = Alarm(lab.sim, lambda _at, name=h.name: self._feed(self.proxies[name], Tick()))
            self.proxies[h.name] = _Proxy(core, north, sync, (south, 40000), alarm)
        self.device_cfg: dict[str, EmulatorConfig] = {
            h.name: idq_config(topo, h.name, seed=seed) for h in topo.of_kind("idq3p")
        }
        self.devices = {n: build_server(c, lab.sim.now) for n, c in self.device_cfg.items()}
        self.clients: dict[Addr, MemEtsi] = {}
        #: nodes whose proxy is cut off (no datagram either way)
        self.unreachable: set[str] = set()
        #: every key a proxy delivered to a node
        self.delivered: list[bytes] = []

    # --- faults -----------------------------------------------------------------------

    def no_key(self) -> None:
        """The devices have no key from now on (secret-key rate 0, buffer empty)."""
        for name, cfg in self.device_cfg.items():
            dry = replace(cfg, rate_bps=0.0, buffer_bits=0)
            self.devices[name] = build_server(dry, self.lab.sim.now)

    def refuse_joins(self, proxy: str = "etsiB") -> None:
        """The tail's proxy no longer knows its node's addresses: a join is refused (4)."""
        p = self.proxies[proxy]
        p.core.cfg = replace(p.core.cfg, local_node_addrs=frozenset())

    # --- what the proxies hold ---------------------------------------------------------

    def open_sessions(self) -> list[tuple[str, bytes]]:
        """(proxy, key_handle) of every session a node has open at its proxy."""
        return [
            (name, h)
            for name, p in self.proxies.items()
            for h, s in p.core.sessions.items()
            if s.owner is not None and not s.local_closed
        ]

    # --- the wires ----------------------------------------------------------------------

    def north(self, client: MemEtsi, data: bytes) -> None:
        self.clients[client.addr] = client
        if client.node in self.unreachable:
            return
        p = self.proxies[client.proxy]
        ev = Datagram(Channel.NORTH, data, client.addr)
        self.lab.sim.call_later(LATENCY, lambda: self._feed(p, ev))

    def _feed(self, p: _Proxy, ev: Datagram | Tick) -> None:
        for a in p.core.handle(ev, self.lab.sim.now):
            if isinstance(a, Send):
                self._route(p, a)
            elif isinstance(a, Log):
                self.lab.logs.append((p.core.cfg.name, a.event, dict(a.fields)))
        p.alarm.set(p.core.next_timer())

    def _route(self, p: _Proxy, a: Send) -> None:
        sim = self.lab.sim
        if a.channel is Channel.NORTH:
            client = self.clients.get(a.addr)
            if client is not None and client.node not in self.unreachable:
                sim.call_later(LATENCY, lambda: client.receive(a.data))
        elif a.channel is Channel.SYNC:
            peer = next(q for q in self.proxies.values() if q.sync == a.addr)
            ev = Datagram(Channel.SYNC, a.data, p.sync)
            sim.call_later(LATENCY, lambda: self._feed(peer, ev))
        else:
            sim.call_later(LATENCY, lambda: self._device(p, a.addr, a.data))

    def _device(self, p: _Proxy, addr: Addr, data: bytes) -> None:
        cfg = next(c for c in self.device_cfg.values() if (c.address, c.port) == addr)
        sends = self.devices[cfg.name].handle(IdqDatagram(data, p.south), self.lab.sim.now)
        if sends:
            ev = Datagram(Channel.SOUTH, sends[0].data, addr)
            self.lab.sim.call_later(LATENCY, lambda: self._feed(p, ev))


# --- the nodes' QE services ----------------------------------------------------------------


class MemNode(QeService):
    """The node agent's QE shell with its I/O seams on the lab: virtual time, the PCE and
    the ETSI 004 proxy in memory."""

    def __init__(self, lab: MemLab, name: str, rsvp: MemRsvp, etsi: MemEtsi | None) -> None:
        self.lab = lab
        self.etsi_client = etsi
        self._alarm = Alarm(lab.sim, self._due)

        def changed(local_if: int, free: tuple[int, ...]) -> None:
            lab.link_changes.append((name, local_if, free))

        super().__init__(
            name=name,
            router_id=rsvp.core.router_id,
            rsvp=rsvp,
            pcc=lab.pce,  # type: ignore[arg-type]
            etsi=etsi,  # type: ignore[arg-type]
            link_resources=changed,
            pipeline_keying=True,  # as node agents run it (QeService.from_topology)
            random_bytes=lab.rng.randbytes,
        )

    def now(self) -> float:
        return self.lab.sim.now

    def arm_timer(self) -> None:
        self._alarm.set(self.core.next_timer())

    def _due(self, at: float) -> None:
        self.feed(E.Tick(), at)

    def request_path(self, a: E.RequestPath) -> None:
        self.lab.sim.call_later(PCE_DELAY, lambda: self.feed(self.lab.pce.answer(a)))

    def call_etsi(self, a: E.EtsiCall) -> None:
        assert self.etsi_client is not None
        self.etsi_client.call(a, self.feed)

    async def wait(self, sid: str, timeout: float = 30.0) -> Service:
        s = self.core.find(sid)
        self.lab.sim.run_until(lambda: s.state in (UP, *FINISHED), timeout)
        return s

    def _log(self, a: E.Log) -> None:
        self.lab.logs.append((self.name, a.message, dict(a.fields)))
        super()._log(a)


# --- the lab --------------------------------------------------------------------------------


class MemLab:
    """The topology's nodes (tn1..tn5 in the paper's), PCE, proxies and devices in memory."""

    def __init__(
        self, topo_path: Path = PAPER, *, hello_ms: int | None = None, stateful_pce: bool = False
    ) -> None:
        self.topo = load(topo_path)
        self.sim = Sim()
        #: the nodes' key handles (deterministic: one run is like the next)
        self.rng = random.Random(11)
        self.pce = MemPce(self.topo, lambda: self.sim.now, stateful_pce)
        self.qkd = MemQkd(self, self.topo)
        self.rsvp: dict[str, MemRsvp] = {}
        self._by_addr: dict[IPv4Address, MemRsvp] = {}
        self.nodes: dict[str, MemNode] = {}
        self.tables: dict[str, CommandTable] = {}
        #: every RSVP message sent: (source, destination, message name, bytes)
        self.rsvp_sent: list[tuple[IPv4Address, IPv4Address, str, bytes]] = []
        self.link_changes: list[tuple[str, int, tuple[int, ...]]] = []
        #: every log line of the QE services and the proxies: (who, message, fields)
        self.logs: list[tuple[str, str, dict[str, Any]]] = []
        for h in self.topo.of_kind("node"):
            self._add_node(h.name, hello_ms)

    def _add_node(self, name: str, hello_ms: int | None) -> None:
        h = self.topo.host(name)
        assert h.router_id is not None
        core = RsvpCore(
            h.router_id,
            self.topo.control_address(name),
            self.topo.te_links_of(name),
            refresh_ms=self.topo.rsvp.refresh_ms,
            keep_multiplier=self.topo.rsvp.keep_multiplier,
            hello_ms=self.topo.rsvp.hello_ms if hello_ms is None else hello_ms,
            instance=100 + len(self.nodes),
            qe_capable=h.qe.capable,
            name=name,
        )
        rsvp = MemRsvp(self, core)
        etsi_client = None
        if h.qe.capable and h.qe.proxy:
            dom = self.topo.shared_domain(name, h.qe.proxy)
            assert dom is not None
            etsi_client = MemEtsi(self, name, (str(h.interfaces[dom]), 40000), h.qe.proxy)
        node = MemNode(self, name, rsvp, etsi_client)
        rsvp.on_action = node.on_rsvp_action
        table = CommandTable()
        qe_cli.register(table, node)
        self.rsvp[name] = rsvp
        self._by_addr[core.control_address] = rsvp
        self.nodes[name] = node
        self.tables[name] = table

    def start(self, warm_up: float = 1.0) -> None:
        """Start the RSVP cores (first Hellos) and let ``warm_up`` virtual seconds pass:
        neighbours come up, the QKD devices gather key."""
        for r in self.rsvp.values():
            r.apply(r.core.handle(Tick(), self.sim.now))
        self.sim.run(warm_up)

    def send_rsvp(self, src: IPv4Address, a: RE.Send) -> None:
        sender = self._by_addr[src]
        if sender.down:
            return
        self.rsvp_sent.append((src, a.dst, a.message.name, a.data))
        dst = self._by_addr.get(a.dst)
        if dst is not None:
            self.sim.call_later(LATENCY, lambda: dst.receive(src, a.data))

    def ladder(self) -> list[str]:
        names = {
            "PATH": "Path",
            "RESV": "Resv",
            "PATH_ERR": "PathErr",
            "RESV_ERR": "ResvErr",
            "PATH_TEAR": "PathTear",
            "RESV_TEAR": "ResvTear",
        }
        return [f"{names[m]} {s}->{d}" for s, d, m, _ in self.rsvp_sent if m in names]

    def kill(self, node: str) -> None:
        self.rsvp[node].kill()

    def settle(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        """Run the lab until ``cond()`` holds; fail after ``timeout`` virtual seconds."""
        if not self.sim.run_until(cond, timeout):
            raise AssertionError(f"not settled within {timeout} s (virtual)")

    async def cli(self, node: str, line: str) -> str:
        out = await self.tables[node].run(line)
        assert out is not None
        return out


def qe_subobject_of(route: tuple[ero.Subobject, ...], router: IPv4Address) -> ero.QeSubobject:
    """The QE subobject right after the subobjects naming ``router`` in an ERO."""
    seen = False
    for s in route:
        if isinstance(s, ero.Unnumbered | ero.Ipv4Prefix):
            rid = s.router_id if isinstance(s, ero.Unnumbered) else s.address
            seen = rid == router
        elif isinstance(s, ero.QeSubobject) and seen:
            return s
    raise LookupError(f"no QE subobject for {router}")
