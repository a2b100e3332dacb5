"""The OSPF speaker: the sans-I/O :class:`gmpls.ospf.router.OspfRouter` on raw IP protocol
89 sockets, one per interface. The node agent (with its TE originations,
:mod:`node_agent.ospf_te`) and the PCE (listening for the LSAs its TED is built from) both
run it.

- Socket: SO_BINDTODEVICE to the interface, member of AllSPFRouters (224.0.0.5), and of
  AllDRouters (224.0.0.6) only while this router is DR or Backup (RFC 2328 §8.1); TTL 1,
  TOS 0xC0 (internetwork control), no multicast loopback, a 4 MiB receive buffer
  (SO_RCVBUFFORCE when root may exceed ``net.core.rmem_max``). Datagrams arrive with
  their IP header: an IPv4 header is checked (version, header and total length) and its
  source and destination go to the core with the OSPF payload.
- Hellos first: a readable socket is drained at once; Hellos, Database Descriptions and
  LS Acks are handled as they come, LS Requests wait in a backlog worked off in slices,
  so a busy router keeps its adjacencies, brings new ones up and stops its neighbours'
  retransmissions. LS Updates go to the core as they come too, which defers them
  (``defer_updates``): it acknowledges at once what it already holds, drops a copy of an
  instance already waiting, and keeps the LSAs to install for the backlog's slices
  (:class:`~gmpls.ospf.events.ProcessUpdates`). A timer that fires reads what is waiting
  before it runs.
- Timers: one :class:`~daemonkit.timer.CoreTimer` re-armed at the core's ``next_timer()``
  after every call.
- Originations: :meth:`OspfSpeaker.originate_opaque` hands an opaque LSA body to the core
  and sends what it returns; the Router LSA and (as DR) the Network LSA come from the core.

Nothing here may raise on a packet: the core counts and drops bad input, and an
unexpected exception from it is logged and the packet dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import fcntl
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from daemonkit import netns
from daemonkit.timer import CoreTimer
from gmpls.core import Tick
from gmpls.ospf import events as E
from gmpls.ospf.constants import ALL_D_ROUTERS, ALL_SPF_ROUTERS, IP_PROTO_OSPF, PacketType
from gmpls.ospf.fsm import IfState
from gmpls.ospf.lsa import LSA
from gmpls.ospf.router import OspfRouter
from gmpls.topology import Topology
from gmpls.wire import ipv4_of

log = logging.getLogger("daemonkit.ospf")

SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCGIFMTU = 0x8921
TOS_CS6 = 0xC0
#: backlog packets processed per event-loop turn (see OspfSpeaker._readable)
BACKLOG_SLICE = 16
#: packet types handed to the core as they arrive, ahead of the backlog (LS Updates: the
#: core defers what needs installing; see OspfSpeaker._readable)
AT_ONCE = frozenset(
    {PacketType.HELLO, PacketType.DB_DESCRIPTION, PacketType.LS_ACK, PacketType.LS_UPDATE}
)


def find_interface(address: IPv4Address) -> tuple[str, IPv4Interface, int]:
    """(name, address/prefix, MTU) of the local interface holding ``address``."""
    with netns.inside():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        names = socket.if_nameindex()
    try:
        for _, name in names:
            req = struct.pack("256s", name.encode()[:15])
            try:
                addr = IPv4Address(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24])
                if addr != address:
                    continue
                mask = IPv4Address(fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, req)[20:24])
                mtu = struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCGIFMTU, req)[16:20])[0]
            except OSError:
                continue
            return name, IPv4Interface(f"{addr}/{mask}"), mtu
    finally:
        s.close()
    raise LookupError(f"no interface has address {address}")


def control_interface(
    topo: Topology, host: str, interface: tuple[str, IPv4Interface, int] | None = None
) -> E.InterfaceConfig:
    """The OSPF interface of ``host`` on the control LAN: the local interface holding its
    control address (looked up unless ``interface`` gives it), with the topology's OSPF
    timers and the host's priority."""
    name, addr, mtu = interface or find_interface(topo.control_address(host))
    o = topo.ospf
    return E.InterfaceConfig(
        name=name,
        address=addr,
        priority=topo.host(host).ospf_priority,
        hello_interval=o.hello_interval,
        dead_interval=o.dead_interval,
        rxmt_interval=o.retransmit_interval,
        transmit_delay=o.transmit_delay,
        mtu=mtu,
    )


def ospf_interfaces(
    topo: Topology, host: str, control: tuple[str, IPv4Interface, int] | None = None
) -> list[E.InterfaceConfig]:
    """The OSPF interfaces of router ``host``: one per domain it speaks OSPF on
    (:meth:`Topology.ospf_domains`: the control LAN unless it is passive, and the
    point-to-point domains), each the local interface holding the host's address there
    (``control`` gives the control domain's instead of looking it up), with the domain's
    network type, the topology's timers and the host's priority."""
    out = []
    for d in topo.ospf_domains(host):
        if d == topo.control_domain:
            out.append(control_interface(topo, host, control))
            continue
        name, addr, mtu = find_interface(topo.host(host).interfaces[d])
        base = control_interface(topo, host, (name, addr, mtu))
        out.append(dataclasses.replace(base, network_type=topo.ospf_network(d)))
    return out


class OspfSpeaker:
    """An OSPF router on raw sockets: one per interface, one timer, the core's actions
    applied (``on_action`` gets every action other than Send)."""

    def __init__(
        self,
        router: OspfRouter,
        iface: E.InterfaceConfig | Sequence[E.InterfaceConfig],
        *,
        on_action: Callable[[E.Action], None] | None = None,
    ) -> None:
        self.router = router
        # the core answers duplicates of received LSAs at once and keeps the rest for
        # ProcessUpdates, which _work hands it with the backlog's slices
        router.defer_updates = True
        #: the OSPF interfaces (the daemons have one, the control LAN; benchmarks use more)
        self.ifaces: dict[str, E.InterfaceConfig] = (
            {iface.name: iface}
            if isinstance(iface, E.InterfaceConfig)
            else {i.name: i for i in iface}
        )
        self.iface = next(iter(self.ifaces.values()))
        self.on_action = on_action
        self.socks: dict[str, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer = CoreTimer(self._tick)
        self._in_alldrouters: set[str] = set()
        self._backlog: collections.deque[tuple[str, bytes, IPv4Address, IPv4Address]] = (
            collections.deque()
        )
        self._working = False
        self.counters = {"rx": 0, "tx": 0, "tx_errors": 0, "core_errors": 0}
        self.started_at = 0.0

    # --- lifecycle --------------------------------------------------------------------

    @property
    def sock(self) -> socket.socket | None:
        """The socket of the first interface (None before start / after stop)."""
        return self.socks.get(self.iface.name)

    def _open(self, cfg: E.InterfaceConfig) -> socket.socket:
        s = netns.socket(socket.AF_INET, socket.SOCK_RAW, IP_PROTO_OSPF)
        try:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, cfg.name.encode())
            local = cfg.address.ip.packed
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_CS6)
            netns.receive_buffer(s, 1 << 22)  # a burst of LSUs must not drop Hellos
            self._membership(s, cfg, ALL_SPF_ROUTERS, True)
        except OSError:
            s.close()
            raise
        return s

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer.start(self._loop)
        self.started_at = self._loop.time()
        # the core reads no clock: tell it the wall-clock time at its now = 0 (its
        # cryptographic sequence numbers follow the wall clock, RFC 2328 §D.4.3)
        self.router.wall_clock = time.time() - self.started_at
        for name, cfg in self.ifaces.items():
            if cfg.passive:
                continue
            s = self._open(cfg)
            self.socks[name] = s
            self._loop.add_reader(s.fileno(), self._readable, name)
        log.info(
            "ospf started",
            extra={
                "node": self.router.name,
                "event": "ospf_start",
                "interfaces": {n: str(c.address) for n, c in self.ifaces.items()},
                "router_id": str(self.router.router_id),
            },
        )
        now = self._now()
        for cfg in self.ifaces.values():
            self._apply(self.router.handle(E.InterfaceUp(cfg), now))

    async def stop(self) -> None:
        self._timer.cancel()
        for s in self.socks.values():
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(s.fileno())
            s.close()
        self.socks.clear()
        log.info("ospf stopped", extra={"node": self.router.name, "event": "ospf_stop"})

    # --- API ----------------------------------------------------------------------------

    def lsas(self) -> list[LSA]:
        return self.router.lsdb.lsas(self._now())

    def now(self) -> float:
        return self._now()

    def originate_opaque(self, ls_type: int, ls_id: IPv4Address, body: Any) -> None:
        """Originate (or re-originate) one of our opaque LSAs and flood it."""
        self._apply(self.router.handle(E.OriginateOpaque(ls_type, ls_id, body), self._now()))

    # --- plumbing ------------------------------------------------------------------------

    def _now(self) -> float:
        loop = self._loop or asyncio.get_event_loop()
        return loop.time()

    def _membership(
        self, s: socket.socket, cfg: E.InterfaceConfig, group: IPv4Address, join: bool
    ) -> None:
        ifindex = netns.if_nametoindex(cfg.name)
        mreqn = struct.pack("4s4si", group.packed, cfg.address.ip.packed, ifindex)
        opt = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
        s.setsockopt(socket.IPPROTO_IP, opt, mreqn)

    def _readable(self, ifname: str) -> None:
        """Drain the socket. Hellos, Database Descriptions, LS Acks and LS Updates go to
        the core at once; LS Requests wait in a backlog worked off in small slices, and so
        do the LSAs the core defers from the LS Updates (the ones to install and flood),
        so that under load (many routers on few CPUs) Hellos are neither received nor
        sent late (a busy router keeps its adjacencies), a database exchange moves at the
        pace of the packets (its master retransmits every RxmtInterval what is not
        answered) and acknowledgements stop the neighbours' retransmissions, which would
        otherwise pile up behind the backlog they feed (a 300-node lab, docs/scale.md):
        a retransmitted LSA the core holds is acknowledged as it arrives, one that waits
        is not processed twice."""
        sock = self.socks.get(ifname)
        if sock is None:
            return
        own = self.ifaces[ifname].address.ip
        for _ in range(4096):
            try:
                pkt, _ = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                log.warning("ospf receive error: %s", e, extra={"node": self.router.name})
                break
            if len(pkt) < 20 or pkt[0] >> 4 != 4:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            total = int.from_bytes(pkt[2:4], "big")
            end = total if ihl <= total <= len(pkt) else len(pkt)
            src, dst = ipv4_of(pkt[12:16]), ipv4_of(pkt[16:20])
            if src == own:
                continue
            self.counters["rx"] += 1
            item = (ifname, pkt[ihl:end], src, dst)
            if len(pkt) > ihl + 1 and pkt[ihl + 1] in AT_ONCE:  # the OSPF packet type
                self._process(item)
            else:
                self._backlog.append(item)
        self._schedule_work()

    def _schedule_work(self) -> None:
        busy = self._backlog or self.router.updates_waiting()
        if busy and not self._working and self._loop is not None:
            self._working = True
            self._loop.call_soon(self._work)

    def _work(self) -> None:
        """Process a slice of the backlog (LS Requests first, then the LS Updates the core
        deferred: BACKLOG_SLICE packets in all), then let timers and Hellos run."""
        self._working = False
        budget = BACKLOG_SLICE
        while budget and self._backlog:
            self._process(self._backlog.popleft())
            budget -= 1
        if budget and self.router.updates_waiting():
            self._handle(E.ProcessUpdates(budget))
        self._schedule_work()

    def _process(self, item: tuple[str, bytes, IPv4Address, IPv4Address]) -> None:
        ifname, data, src, dst = item
        self._handle(E.Received(ifname, data, src, dst))

    def _handle(self, event: E.Event) -> None:
        try:
            acts = self.router.handle(event, self._now())
        except Exception:  # the core promises not to raise; a packet must never kill us
            self.counters["core_errors"] += 1
            log.exception("ospf core failed on a packet", extra={"node": self.router.name})
            return
        self._apply(acts)

    def _tick(self, at: float) -> None:
        # read what is waiting first (Hellos are handled at once): a timer that fires
        # late on a busy host must not declare a neighbor dead whose Hello already sits
        # in the socket buffer
        for name in list(self.socks):
            self._readable(name)
        try:
            acts = self.router.handle(Tick(), self._now())
        except Exception:
            self.counters["core_errors"] += 1
            log.exception("ospf core failed on a timer", extra={"node": self.router.name})
            self._timer.arm(self._now() + 1.0)
            return
        self._apply(acts)

    def _apply(self, actions: Sequence[E.Action]) -> list[E.Action]:
        """Carry out what the core returned, then re-arm the one timer."""
        for a in actions:
            if isinstance(a, E.Send):
                sock = self.socks.get(a.ifname)
                if sock is None:
                    continue
                try:
                    sock.sendto(a.data, (str(a.dst), 0))
                    self.counters["tx"] += 1
                except OSError as e:
                    self.counters["tx_errors"] += 1
                    log.warning(
                        "ospf send to %s failed: %s", a.dst, e, extra={"node": self.router.name}
                    )
            else:
                self._log_action(a)
                if isinstance(a, E.InterfaceChanged):
                    self._update_membership(a)
                if self.on_action is not None:
                    try:
                        self.on_action(a)
                    except Exception:
                        log.exception(
                            "ospf action handler failed", extra={"node": self.router.name}
                        )
        self._timer.arm(self.router.next_timer())
        return list(actions)

    def _update_membership(self, a: E.InterfaceChanged) -> None:
        """Join AllDRouters while DR or Backup on the interface (RFC 2328 §8.1)."""
        want = a.new in (IfState.DR, IfState.BACKUP)
        sock = self.socks.get(a.ifname)
        cfg = self.ifaces.get(a.ifname)
        if sock is None or cfg is None or want == (a.ifname in self._in_alldrouters):
            return
        try:
            self._membership(sock, cfg, ALL_D_ROUTERS, want)
            if want:
                self._in_alldrouters.add(a.ifname)
            else:
                self._in_alldrouters.discard(a.ifname)
        except OSError as e:
            log.warning("AllDRouters membership: %s", e, extra={"node": self.router.name})

    def _log_action(self, a: Any) -> None:
        node = self.router.name
        if isinstance(a, E.NeighborChanged):
            log.info(
                "ospf neighbor %s %s -> %s",
                a.router_id,
                a.old.name,
                a.new.name,
                extra={
                    "node": node,
                    "event": "ospf_neighbor",
                    "peer": str(a.router_id),
                    "address": str(a.address),
                    "old": a.old.name,
                    "new": a.new.name,
                },
            )
        elif isinstance(a, E.InterfaceChanged):
            log.info(
                "ospf interface %s %s (DR %s BDR %s)",
                a.ifname,
                a.new.name,
                a.dr,
                a.bdr,
                extra={
                    "node": node,
                    "event": "ospf_interface",
                    "state": a.new.name,
                    "dr": str(a.dr),
                    "bdr": str(a.bdr),
                },
            )
        elif isinstance(a, E.LsdbChanged) and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "ospf lsdb changed: %d LSAs",
                len(a.keys),
                extra={"node": node, "event": "ospf_lsdb", "lsas": [str(k) for k in a.keys]},
            )
        elif isinstance(a, E.RoutesChanged):
            log.info(
                "ospf routes: %d",
                len(a.routes),
                extra={"node": node, "event": "ospf_routes", "count": len(a.routes)},
            )


def config_lines(agent: OspfSpeaker) -> list[str]:
    """The speaker's OSPF configuration as FRR-style lines (``show running-config``):
    each OSPF interface with its timers, then ``router ospf``."""
    r = agent.router
    out: list[str] = []
    for i in agent.ifaces.values():
        out += [
            f"interface {i.name}",
            f" ip address {i.address}",
            f" ip ospf network {i.network_type}",
            f" ip ospf cost {i.cost}",
            f" ip ospf priority {i.priority}",
            f" ip ospf hello-interval {i.hello_interval}",
            f" ip ospf dead-interval {i.dead_interval}",
            f" ip ospf retransmit-interval {i.rxmt_interval}",
            f" ip ospf transmit-delay {i.transmit_delay}",
            "!",
        ]
    out += ["router ospf", f" ospf router-id {r.router_id}"]
    out += [f" network {i.address.network} area {r.area}" for i in agent.ifaces.values()]
    for net, _ in r.stub_networks:  # advertised as stub networks: no Hellos there
        out.append(f" network {net} area {r.area}")
    out += [f" passive-interface {n}" for n in sorted(set(r.stub_names.values()))]
    out.append("!")
    return out


def register_commands(table: Any, agent: OspfSpeaker) -> None:
    """Register the ``show ip ospf ...`` commands (each with a ``json`` form) into a
    :class:`daemonkit.cli.CommandTable`."""
    from gmpls.ospf import show

    r = agent.router
    table.register(
        "show ip ospf neighbor",
        lambda args: show.neighbors(r, agent.now()),
        "OSPF neighbors: state, role, dead time, list lengths",
        text=show.neighbors_text,
    )
    table.register(
        "show ip ospf interface",
        lambda args: show.interfaces(r, agent.now()),
        "OSPF interfaces: state, DR/BDR, timers, drop counters",
        text=show.interfaces_text,
    )
    table.register(
        "show ip ospf database",
        lambda args: show.database(r, agent.now()),
        "LSDB summary (all LS types)",
        text=show.database_text,
    )
    table.register(
        "show ip ospf database opaque-area",
        lambda args: show.opaque(r, agent.now()),
        "area-local opaque LSAs decoded (Router Information, TE)",
        text=show.opaque_text,
    )
    table.register(
        "show ip ospf route",
        lambda args: show.routes(r),
        "OSPF routing table (SPF result)",
        text=show.routes_text,
    )
