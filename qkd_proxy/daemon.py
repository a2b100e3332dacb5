"""The ETSI 004 proxy daemon: a thin asyncio shell around :class:`ProxyCore`.

``python -m qkd_proxy --topology FILE --host NAME --sync-key-file FILE`` (the daemon
skeleton of :mod:`daemonkit.daemon` around :class:`ProxyDaemon`; the sync key is the proxy
pair's file that ``qkdnet up`` makes fresh, or ``qkd.deterministic.sync_key`` pinned in the
topology, insecure; with neither the daemon refuses to start, exit status 2) binds three UDP sockets: northbound
5424 on the address it shares with the node it serves, east-west 5626 on the address it
shares with its peer proxy (the sync domain), and an ephemeral port on the address it
shares with its IDQ3P device, connected to the device's 5323 (the kernel drops datagrams
from anywhere else; the core checks the source of every datagram too). Datagrams and timer
ticks go into the core; the datagrams it returns go out on the matching socket.
JSON-line logs, never a key byte; lines about dropped input are rate-limited
(:mod:`daemonkit.ratelog`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from ipaddress import IPv4Address
from pathlib import Path
from typing import cast

from daemonkit.daemon import ConfigError, stopped
from daemonkit.ratelog import RateLimitedLog
from daemonkit.timer import CoreTimer
from gmpls import topology
from gmpls.core import Tick
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import sync
from qkd_proxy.core import ProxyConfig, ProxyCore
from qkd_proxy.events import Channel, Datagram, Event, Log, Send

log = logging.getLogger("qkd_proxy")


#: why a proxy without a sync key does not start
NO_SYNC_KEY = (
    "no sync key: give --sync-key-file FILE (`qkdnet up` makes one per proxy pair) or pin "
    "qkd.deterministic.sync_key in the topology (insecure, for tests only)"
)


def _shared(topo: topology.Topology, a: str, b: str) -> str:
    d = topo.shared_domain(a, b)
    if d is None:
        raise ValueError(f"{a} and {b} share no domain")
    return d


def config_from_topology(
    topo: topology.Topology,
    host: str,
    north_port: int = etsi.PORT,
    sync_port: int = sync.PORT,
    peer_sync_port: int | None = None,
    idq_port: int = idq.PORT,
    sync_key: bytes | None = None,
) -> tuple[ProxyConfig, tuple[str, int], tuple[str, int], str]:
    """(core config, northbound bind, sync bind, southbound local address). ``sync_key``
    (the pair's sync key file) replaces the topology's ``qkd.deterministic.sync_key``;
    :class:`ConfigError` when there is neither."""
    key = topo.qkd.deterministic.sync_key if sync_key is None else sync_key
    if not key:
        raise ConfigError(NO_SYNC_KEY)
    h = topo.host(host)
    if h.kind != "qkd-proxy" or not (h.serves and h.idq and h.peer):
        raise ValueError(f"{host} is not a qkd-proxy with serves/idq/peer")
    served = topo.host(h.serves)
    peer = topo.host(h.peer)
    if served.router_id is None or peer.serves is None:
        raise ValueError(f"{host}: the served node or the peer's node has no router ID")
    peer_node = topo.host(peer.serves).router_id
    if peer_node is None:
        raise ValueError(f"{peer.serves} has no router ID")
    dn = _shared(topo, host, served.name)
    ds = _shared(topo, host, peer.name)
    dk = _shared(topo, host, h.idq)
    node_of_addr: dict[IPv4Address, IPv4Address] = {}
    for other in topo.hosts.values():
        if other.router_id is not None:
            node_of_addr[other.router_id] = other.router_id
            for a in other.interfaces.values():
                node_of_addr[a] = other.router_id
    my_sync = h.interfaces[ds]
    peer_sync = peer.interfaces[ds]
    cfg = ProxyConfig(
        name=host,
        local_node=served.router_id,
        local_node_addrs=frozenset({served.router_id, *served.interfaces.values()}),
        peer_node=peer_node,
        node_of_addr=node_of_addr,
        peer_sync=(str(peer_sync), peer_sync_port or sync_port),
        peer_name=peer.name,
        idq=(str(topo.host(h.idq).interfaces[dk]), idq_port),
        sync_secret=key,
        wins_tie=my_sync < peer_sync,
    )
    return (
        cfg,
        (str(h.interfaces[dn]), north_port),
        (str(my_sync), sync_port),
        str(h.interfaces[dk]),
    )


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, shell: Shell, channel: Channel) -> None:
        self.shell = shell
        self.channel = channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.shell.transports[self.channel] = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.shell.feed(Datagram(self.channel, data, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        # an ICMP error per datagram sent to a device or peer that is down: rate-limited
        fields = {"channel": self.channel.value, "error": str(exc)}
        self.shell.drops.log(logging.WARNING, "socket error", fields)


class Shell:
    """Feeds the core, sends what it returns, keeps its one timer armed."""

    def __init__(self, core: ProxyCore) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.drops = RateLimitedLog(log, {"host": core.cfg.name}, clock=self.loop.time)
        self.transports: dict[Channel, asyncio.DatagramTransport] = {}
        self.timer = CoreTimer(lambda at: self.feed(Tick()))
        self.timer.start(self.loop)

    def feed(self, event: Event) -> None:
        try:
            actions = self.core.handle(event, self.loop.time())
        except Exception:  # never crash on a packet
            self.drops.log(logging.ERROR, "event failed", {}, exc_info=True)
            return
        logs: list[Log] = []
        for a in actions:
            if isinstance(a, Send):
                t = self.transports.get(a.channel)
                if t is not None:
                    # a connected socket (the device's) sends only to its peer
                    t.sendto(a.data, None if t.get_extra_info("peername") else a.addr)
            elif isinstance(a, Log):
                logs.append(a)  # written once the answers are out
        self.timer.arm(self.core.next_timer())
        for a in logs:
            if a.limited:
                self.drops.log(logging.INFO, a.event, a.fields)
            else:
                log.info(a.event, extra={"host": self.core.cfg.name, **a.fields})


class ProxyDaemon:
    """One proxy: its three sockets around a :class:`Shell` and its core, started and
    stopped by the daemon skeleton (:mod:`daemonkit.daemon`). Stopping logs the counters
    and writes them to ``STATE_DIR/NAME.counters.json``."""

    def __init__(
        self,
        cfg: ProxyConfig,
        north: tuple[str, int],
        sync_bind: tuple[str, int],
        south_addr: str,
        state_dir: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.north = north
        self.sync_bind = sync_bind
        self.south_addr = south_addr
        self.state_dir = state_dir
        self.shell: Shell | None = None
        self.transports: list[asyncio.BaseTransport] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        # the core draws its random sync epoch and device request IDs from the OS CSPRNG
        self.shell = shell = Shell(ProxyCore(cfg, os.urandom, loop.time()))
        north, sync_bind = self.north, self.sync_bind
        for ch, local, remote in (
            (Channel.NORTH, north, None),
            (Channel.SYNC, sync_bind, None),
            (Channel.SOUTH, (self.south_addr, 0), cfg.idq),
        ):
            t, _ = await loop.create_datagram_endpoint(
                functools.partial(_Endpoint, shell, ch), local_addr=local, remote_addr=remote
            )
            self.transports.append(t)
        shell.timer.arm(shell.core.next_timer())  # the core greets its peer at once
        log.info(
            "listening",
            extra={
                "host": cfg.name,
                "north": f"{north[0]}:{north[1]}",
                "sync": f"{sync_bind[0]}:{sync_bind[1]}",
                "peer_sync": f"{cfg.peer_sync[0]}:{cfg.peer_sync[1]}",
                "idq": f"{cfg.idq[0]}:{cfg.idq[1]}",
                "serves": str(cfg.local_node),
                "peer_node": str(cfg.peer_node),
            },
        )

    async def stop(self) -> None:
        if self.shell is None:
            return
        self.shell.timer.cancel()
        for t in self.transports:
            t.close()
        self.shell.drops.close()
        stopped(log, self.cfg.name, self.shell.core.all_counters(), self.state_dir)
