"""The QE service of the five paper nodes wired in memory, on the real asyncio loop.

- :class:`MemAgent` is :class:`node_agent.rsvp.RsvpAgent` without the socket: a ``Send``
  action is handed to the destination's core with ``loop.call_soon`` (so messages cross
  in order but never re-enter a core), one ``loop.call_at`` timer per core;
- :class:`MemPcc` answers PCReqs with the real PCE computation (:class:`pce.service.
  PceService` over a TED of the topology's LSAs, :func:`pce.synth.topology_lsas`) — the
  Fig. 9 ERO with zero session IDs;
- :class:`MemQkd` is an ETSI 004 proxy pair in memory with the proxies' session rules
  that matter here (a zero handle opens a new session, the named destination joins it,
  index *i* is the same key at both ends, a closed handle is refused, a stranger gets
  status 5) and switches to inject faults (no key, unreachable, refuse joins).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from daemonkit.cli import CommandTable
from daemonkit.pcep import PcepClient, Reply
from gmpls import ero, qe
from gmpls.rsvp import core as C
from gmpls.topology import Topology, load
from node_agent.qe_service import QeService
from pce.compute import PathComputer
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"


class MemAgent:
    """An RSVP shell whose wire is a dict of cores."""

    def __init__(self, core: C.RsvpCore, net: MemNet) -> None:
        self.core = core
        self.net = net
        self.on_action: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self.down = False

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def create_lsp(
        self,
        tunnel_id: int,
        route: Any,
        qe_params: qe.QeParams | None,
        bandwidth_bps: float,
        *,
        name: str = "",
    ) -> list[C.Action]:
        return self._apply(
            self.core.create_lsp(tunnel_id, route, qe_params, bandwidth_bps, self._now(), name=name)
        )

    def delete_lsp(self, tunnel_id: int) -> list[C.Action]:
        return self._apply(self.core.delete_lsp(tunnel_id, self._now()))

    def feed(self, event: C.Event) -> list[C.Action]:
        if self.down:
            return []
        return self._apply(self.core.handle(event, self._now()))

    def status(self) -> dict[str, object]:
        return {
            "lsps": self.core.lsp_table(),
            "neighbors": [
                {
                    "address": str(n.address),
                    "up": n.up,
                    "instance": n.their_instance,
                    "last_heard_s": None,
                }
                for n in self.core.neighbors.values()
            ],
            "counters": dict(self.core.stats),
        }

    def _apply(self, actions: list[C.Action]) -> list[C.Action]:
        loop = asyncio.get_running_loop()
        for a in actions:
            if isinstance(a, C.Send):
                self.net.sent.append((self.core.control_address, a.dst, a.message.name))
                loop.call_soon(self.net.deliver, self.core.control_address, a.dst, a.data)
            elif self.on_action is not None:
                self.on_action(a)
        self._arm()
        return actions

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        d = self.core.next_deadline()
        if d is not None and not self.down:
            self._timer = asyncio.get_running_loop().call_at(d, self._tick, d)

    def _tick(self, d: float) -> None:
        self._timer = None
        if not self.down:
            self._apply(self.core.handle(C.Tick(), max(self._now(), d)))

    def kill(self) -> None:
        """The node dies: no more messages in or out, no timers."""
        self.down = True
        if self._timer is not None:
            self._timer.cancel()


@dataclass
class MemNet:
    agents: dict[IPv4Address, MemAgent] = field(default_factory=dict)
    sent: list[tuple[IPv4Address, IPv4Address, str]] = field(default_factory=list)

    def deliver(self, src: IPv4Address, dst: IPv4Address, data: bytes) -> None:
        a = self.agents.get(dst)
        if a is None or a.down or self.agents[src].down:
            return
        a._apply(a.core.handle(C.Received(src, data), a._now()))

    def ladder(self) -> list[str]:
        names = {
            "PATH": "Path",
            "RESV": "Resv",
            "PATH_ERR": "PathErr",
            "RESV_ERR": "ResvErr",
            "PATH_TEAR": "PathTear",
            "RESV_TEAR": "ResvTear",
        }
        return [f"{names[m]} {s}->{d}" for s, d, m in self.sent if m in names]


class MemPcc:
    """A PCC whose PCE is computed in memory from the topology's LSAs."""

    def __init__(self, topo: Topology) -> None:
        ted = Ted()
        ted.load(topology_lsas(topo))
        self.service = PceService(PathComputer(ted))
        self.ted = ted
        self.is_up = True
        self.requests = 0
        self._ids = iter(range(1, 1 << 30))

    async def request(
        self,
        src: IPv4Address | str,
        dst: IPv4Address | str,
        qe_params: qe.QeParams | None = None,
        bandwidth: float = 0.0,
        *,
        timeout: float = 10.0,
    ) -> Reply:
        self.requests += 1
        await asyncio.sleep(0)
        req = PcepClient.build_request(next(self._ids), src, dst, qe_params, bandwidth)
        resp, _ = self.service.answer(req)
        return Reply(req.rp.request_id, resp)


@dataclass
class _Session:
    handle: bytes
    opener: IPv4Address
    destination: IPv4Address
    key_length: int
    owners: dict[str, str] = field(default_factory=dict)  # side -> "open" / "closed"
    next_index: dict[str, int] = field(default_factory=dict)


class MemQkd:
    """An ETSI 004 proxy pair in memory; :meth:`client` gives one node's client."""

    def __init__(self) -> None:
        self.sessions: dict[bytes, _Session] = {}
        self.keys: dict[tuple[bytes, int], bytes] = {}  # (handle, index) -> key
        self.no_key = False
        self.unreachable: set[str] = set()
        self.refuse_join = False
        self.calls: list[tuple[str, str, int]] = []

    def key(self, handle: bytes, index: int, length: int) -> bytes:
        """Key ``index`` of session ``handle``: drawn once, the same for both ends."""
        k = self.keys.get((handle, index))
        if k is None:
            k = self.keys[(handle, index)] = os.urandom(length)
        return k

    def client(self, side: str, node: IPv4Address) -> MemEtsi:
        return MemEtsi(self, side, IPv4Address(node))

    def open_sessions(self) -> list[tuple[str, bytes]]:
        return [
            (side, s.handle)
            for s in self.sessions.values()
            for side, st in s.owners.items()
            if st == "open"
        ]

    def delivered(self) -> Iterator[bytes]:
        return iter(self.keys.values())


class MemEtsi:
    def __init__(self, qkd: MemQkd, side: str, node: IPv4Address) -> None:
        self.qkd = qkd
        self.side = side
        self.node = node

    async def _hop(self, call: str, st: int = 0) -> None:
        await asyncio.sleep(0)
        if self.side in self.qkd.unreachable:
            raise TimeoutError(f"no answer from the proxy of {self.side}")
        self.qkd.calls.append((self.side, call, st))

    async def open(
        self,
        destination: IPv4Address | str,
        key_handle: bytes | None = None,
        key_length: int = 32,
        max_bps: int = 0,
        priority: int = 0,
        timeout_ms: int = 0,
    ) -> tuple[int, bytes]:
        await self._hop("open")
        q = self.qkd
        if not key_handle or key_handle == bytes(64):
            h = os.urandom(64)
            q.sessions[h] = _Session(h, self.node, IPv4Address(destination), key_length)
            q.sessions[h].owners[self.side] = "open"
            q.sessions[h].next_index[self.side] = 0
            return 0, h
        s = q.sessions.get(key_handle)
        if s is None or q.refuse_join:
            return 5 if s is not None else 4, key_handle
        if s.destination != self.node or IPv4Address(destination) != s.opener:
            return 5, key_handle
        if self.side in s.owners:
            return 5, key_handle
        s.owners[self.side] = "open"
        s.next_index[self.side] = 0
        return 0, key_handle

    def _own(self, h: bytes) -> _Session | None:
        s = self.qkd.sessions.get(h)
        if s is None or s.owners.get(self.side) != "open":
            return None
        return s

    async def connect(self, key_handle: bytes, timeout_ms: int | None = None) -> int:
        await self._hop("connect")
        s = self._own(key_handle)
        if s is None:
            return 4
        return 0 if len(s.owners) == 2 else 1

    async def get_key(self, key_handle: bytes) -> tuple[int, int, bytes]:
        await self._hop("get_key")
        s = self._own(key_handle)
        if s is None:
            return 4, 0, b""
        if self.qkd.no_key:
            return 2, 0, b""
        i = s.next_index[self.side]
        s.next_index[self.side] = i + 1
        return 0, i, self.qkd.key(key_handle, i, s.key_length)

    async def close(self, key_handle: bytes) -> int:
        await self._hop("close")
        s = self._own(key_handle)
        if s is None:
            return 4
        s.owners[self.side] = "closed"
        return 0


class MemLab:
    """Five QE services (tn1..tn5) on cores wired in memory."""

    def __init__(self, topo_path: Path = PAPER, *, hello_ms: int | None = None) -> None:
        self.topo = load(topo_path)
        self.net = MemNet()
        self.pcc = MemPcc(self.topo)
        self.qkd = MemQkd()
        self.services: dict[str, QeService] = {}
        self.tables: dict[str, CommandTable] = {}
        self.link_changes: list[tuple[str, int, tuple[int, ...]]] = []
        for h in self.topo.of_kind("node"):
            assert h.router_id is not None
            core = C.RsvpCore(
                h.router_id,
                self.topo.control_address(h.name),
                self.topo.te_links_of(h.name),
                refresh_ms=self.topo.rsvp.refresh_ms,
                keep_multiplier=self.topo.rsvp.keep_multiplier,
                hello_ms=self.topo.rsvp.hello_ms if hello_ms is None else hello_ms,
                instance=100 + len(self.services),
                qe_capable=h.qe.capable,
                name=h.name,
            )
            agent = MemAgent(core, self.net)
            self.net.agents[core.control_address] = agent
            etsi = self.qkd.client(h.name, h.router_id) if h.qe.capable else None
            name = h.name

            def changed(local_if: int, free: tuple[int, ...], name: str = name) -> None:
                self.link_changes.append((name, local_if, free))

            svc = QeService(
                name=h.name,
                router_id=h.router_id,
                rsvp=agent,
                pcc=self.pcc,
                etsi=etsi,
                link_resources=changed,
            )
            agent.on_action = svc.on_rsvp_action
            table = CommandTable()
            svc.register(table)
            self.services[h.name] = svc
            self.tables[h.name] = table

    async def start(self) -> None:
        for s in self.services.values():
            await s.start()
        for a in self.net.agents.values():
            a._apply(a.core.handle(C.Tick(), a._now()))

    async def stop(self) -> None:
        for s in self.services.values():
            await s.stop()
        for a in self.net.agents.values():
            a.kill()

    async def cli(self, node: str, line: str) -> str:
        out = await self.tables[node].run(line)
        assert out is not None
        return out

    def agent(self, node: str) -> MemAgent:
        return self.net.agents[self.topo.control_address(node)]


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
