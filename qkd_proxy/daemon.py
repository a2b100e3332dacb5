"""The key manager daemon: a thin asyncio shell around :class:`~qkd_proxy.km.KeyManager`.

``python -m qkd_proxy --topology FILE --host NAME --sync-key-file FILE...`` (the daemon
skeleton of :mod:`daemonkit.daemon` around :class:`ProxyDaemon`). One ``--sync-key-file``
per QKD link of the site: a file named ``<kmX>-<kmY>.sync`` (the link's name) is that
link's KM channel key (``qkdnet up`` makes them fresh); ``qkd.deterministic.sync_key``
pinned in the topology stands for any link without a file (insecure); a link with neither
and the daemon refuses to start, exit status 2. It binds UDP sockets: ETSI 004 (5424) and
KM status (5425) on every address it shares with a node it serves, the KM channel (5626)
on each address it shares with a far key manager, and per link an ephemeral port on the
address it shares with its IDQ3P device, connected to the device's 5323 (the kernel drops
datagrams from anywhere else; the core checks the source of every datagram too). With a
``cli_port`` (the host's, or ``--cli-port``) it serves ``show qkd links [json]``,
``show qkd relays [json]``, ``show counters [json]`` and ``show running-config [json]`` over telnet. Datagrams and timer ticks go into the core; the datagrams it
returns go out on the matching socket. JSON-line logs, never a key byte; lines about
dropped input are rate-limited (:mod:`daemonkit.ratelog`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from daemonkit import daemon, netns
from daemonkit.cli import CliServer, CommandTable, register_running_config
from daemonkit.daemon import ConfigError, stopped
from daemonkit.ratelog import RateLimitedLog
from daemonkit.timer import CoreTimer
from gmpls import topology
from gmpls.core import Tick
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import kmstatus, sync
from gmpls.qkd.etsi014 import events as api_events
from gmpls.qkd.etsi014.core import ADDR as ETSI014
from gmpls.qkd.etsi014.core import Etsi014Config, Etsi014Core, Sae
from gmpls.units import bps_text
from qkd_proxy.core import ProxyConfig
from qkd_proxy.etsi014 import Etsi014Server, Pki
from qkd_proxy.events import Channel, Datagram, Event, Log, Send
from qkd_proxy.km import KeyManager, KmConfig, KmLink

log = logging.getLogger("qkd_proxy")


#: why a proxy without a sync key does not start
NO_SYNC_KEY = (
    "no sync key: give --sync-key-file FILE (`qkdnet up` makes one per QKD link, named "
    "<kmX>-<kmY>.sync) or pin qkd.deterministic.sync_key in the topology (insecure, for "
    "tests only)"
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


@dataclass(frozen=True, slots=True)
class Ports:
    north: int = etsi.PORT
    status: int = kmstatus.PORT
    sync: int = sync.PORT
    peer_sync: int | None = None
    idq: int = idq.PORT


@dataclass(frozen=True, slots=True)
class Binds:
    """Where the daemon's sockets go: north (and status) addresses, KM channel addresses,
    and per link the local address toward its device."""

    north: tuple[str, ...]
    sync: tuple[str, ...]
    #: far KM's channel address -> our address on that domain
    sync_of_peer: dict[tuple[str, int], str]
    #: device address -> our address toward it
    south_of_idq: dict[tuple[str, int], str]
    #: a served node's address -> our address on its domain
    north_of_node: dict[str, str]


def _node_addrs(topo: topology.Topology) -> dict[IPv4Address, IPv4Address]:
    out: dict[IPv4Address, IPv4Address] = {}
    for other in topo.hosts.values():
        if other.router_id is not None:
            out[other.router_id] = other.router_id
            for a in other.interfaces.values():
                out[a] = other.router_id
    return out


def _router_ids(topo: topology.Topology, nodes: tuple[str, ...]) -> list[IPv4Address]:
    out = []
    for n in nodes:
        rid = topo.host(n).router_id
        if rid is None:
            raise ValueError(f"{n} has no router ID")
        out.append(rid)
    return out


def _link_key(keys: Mapping[str, bytes], name: str, default: bytes | None) -> bytes:
    key = keys.get(name, default)
    if not key:
        raise ConfigError(f"{NO_SYNC_KEY} (link {name})")
    return key


def km_from_topology(
    topo: topology.Topology,
    host: str,
    keys: Mapping[str, bytes],
    ports: Ports = Ports(),
) -> tuple[KmConfig, Binds]:
    """The key manager's config and its socket addresses. ``keys``: link name -> KM channel
    key (from the ``--sync-key-file`` files); :class:`ConfigError` for a link without one
    (and no ``qkd.deterministic.sync_key``)."""
    h = topo.host(host)
    served = topo.served_by(host)
    if h.kind != "qkd-proxy" or not served:
        raise ValueError(f"{host} is not a key manager serving a node")
    rids = _router_ids(topo, served)
    node_of_addr = _node_addrs(topo)
    served_addrs = frozenset(
        a
        for n in served
        for a in (topo.host(n).router_id, *topo.host(n).interfaces.values())
        if a is not None
    )
    north_of_node: dict[str, str] = {}
    for n in served:
        d = _shared(topo, host, n)
        for a in (topo.host(n).router_id, *topo.host(n).interfaces.values()):
            if a is not None:
                north_of_node[str(a)] = str(h.interfaces[d])
    links, sync_of_peer, south_of_idq = [], {}, {}
    default = topo.qkd.deterministic.sync_key or None
    for ql in topo.qkd_links_of(host):
        far = ql.far(host)
        far_rids = _router_ids(topo, topo.served_by(far))
        ds, dk = _shared(topo, host, far), _shared(topo, host, ql.idq_of(host))
        mine, theirs = h.interfaces[ds], topo.host(far).interfaces[ds]
        peer_sync = (str(theirs), ports.peer_sync or ports.sync)
        dev = (str(topo.host(ql.idq_of(host)).interfaces[dk]), ports.idq)
        pc = ProxyConfig(
            name=host,
            local_node=rids[0],
            local_node_addrs=served_addrs,
            peer_node=far_rids[0],
            node_of_addr=node_of_addr,
            peer_sync=peer_sync,
            peer_name=far,
            idq=dev,
            sync_secret=_link_key(keys, ql.name, default),
            wins_tie=mine < theirs,
            local_nodes=frozenset(rids[1:]),
            peer_nodes=frozenset(far_rids[1:]),
        )
        links.append(KmLink(ql.name, pc, far_rids[0], int(ql.rate_bps), ql.buffer_bits))
        sync_of_peer[peer_sync] = str(mine)
        south_of_idq[dev] = str(h.interfaces[dk])
    site_of_node: dict[IPv4Address, IPv4Address] = {}
    for km in topo.sites:
        for rid in _router_ids(topo, topo.served_by(km)):
            site_of_node[rid] = topo.site_id(km)
    cfg = KmConfig(
        name=host,
        site=rids[0],
        served_addrs=served_addrs,
        served_nodes=frozenset(rids),
        links=tuple(links),
        graph=tuple((topo.site_id(x.a), topo.site_id(x.b)) for x in topo.qkd_links),
        site_of_node=site_of_node,
        node_of_addr=node_of_addr,
    )
    binds = Binds(
        north=tuple(sorted(set(north_of_node.values()))),
        sync=tuple(sorted(set(sync_of_peer.values()))),
        sync_of_peer=sync_of_peer,
        south_of_idq=south_of_idq,
        north_of_node=north_of_node,
    )
    return cfg, binds


@dataclass(frozen=True, slots=True)
class Api014:
    """The key manager's ETSI 014 server: the core's config, where it listens, its TLS
    files, and the site ID of every key manager (the status's stock is toward it)."""

    cfg: Etsi014Config
    addrs: tuple[str, ...]
    port: int
    pki: Pki
    site_of_kme: Mapping[str, IPv4Address]


def api_from_topology(
    topo: topology.Topology, host: str, pki_dir: Path, port: int | None = None
) -> Api014:
    """The 014 server of key manager ``host``: every SAE of the network (a node's keys
    name its own router ID, a listed SAE's its site node's), its addresses toward its
    SAEs, the port (the topology's ``etsi014_port`` unless given)."""
    saes = {}
    for name, km in topo.saes().items():
        rid = topo.host(name).router_id or topo.site_id(km)
        saes[name] = Sae(name, km, rid)
    addrs = []
    h = topo.host(host)
    for sae in (*topo.served_by(host), *h.saes):
        a = str(h.interfaces[_shared(topo, host, sae)])
        if a not in addrs:
            addrs.append(a)
    return Api014(
        Etsi014Config(host, saes),
        tuple(addrs),
        h.etsi014_port if port is None else port,
        Pki.in_dir(pki_dir, host),
        {km: topo.site_id(km) for km in topo.sites},
    )


def keys_from_files(files: list[Path]) -> dict[str, bytes]:
    """Link name -> key, from ``--sync-key-file`` files named ``<kmX>-<kmY>.sync``."""
    out = {}
    for f in files:
        out[f.name.removesuffix(".sync")] = daemon.read_secret(f)
    return out


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, shell: Shell, channel: Channel) -> None:
        self.shell = shell
        self.channel = channel

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.shell.feed(Datagram(self.channel, data, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        # an ICMP error per datagram sent to a device or peer that is down: rate-limited
        fields = {"channel": self.channel.value, "error": str(exc)}
        self.shell.drops.log(logging.WARNING, "socket error", fields)


class Shell:
    """Feeds the core, sends what it returns on the socket it belongs to, keeps its one
    timer armed."""

    def __init__(self, core: KeyManager, binds: Binds, api: Etsi014Core | None = None) -> None:
        self.core = core
        self.binds = binds
        self.api = api
        self.server: Etsi014Server | None = None
        self.loop = asyncio.get_running_loop()
        self.drops = RateLimitedLog(log, {"host": core.cfg.name}, clock=self.loop.time)
        #: (channel, local address) -> socket; a device's socket under its address
        self.transports: dict[tuple[Channel, str], asyncio.DatagramTransport] = {}
        self.timer = CoreTimer(lambda at: self.feed(Tick()))
        self.timer.start(self.loop)
        self.api_timer = CoreTimer(lambda at: self.feed_api(Tick()))
        self.api_timer.start(self.loop)

    def _transport(self, a: Send) -> asyncio.DatagramTransport | None:
        b = self.binds
        if a.channel is Channel.SOUTH:
            return self.transports.get((a.channel, f"{a.addr[0]}:{a.addr[1]}"))
        if a.channel is Channel.SYNC:
            local = b.sync_of_peer.get(a.addr, b.sync[0] if b.sync else "")
        else:
            local = b.north_of_node.get(a.addr[0], b.north[0])
        return self.transports.get((a.channel, local))

    def feed(self, event: Event) -> None:
        try:
            actions = self.core.handle(event, self.loop.time())
        except Exception:  # never crash on a packet
            self.drops.log(logging.ERROR, "event failed", {}, exc_info=True)
            return
        logs: list[Log] = []
        to_api: list[bytes] = []
        for a in actions:
            if isinstance(a, Send) and a.addr == ETSI014:
                to_api.append(a.data)  # the key manager's answer to its own 014 interface
            elif isinstance(a, Send):
                t = self._transport(a)
                if t is not None:
                    # a connected socket (a device's) sends only to its peer
                    t.sendto(a.data, None if a.channel is Channel.SOUTH else a.addr)
            elif isinstance(a, Log):
                logs.append(a)  # written once the answers are out
        self.timer.arm(self.core.next_timer())
        self._write(logs)
        for data in to_api:
            self.feed_api(api_events.Reply004(data))

    def _write(self, logs: list[Log] | list[api_events.Log]) -> None:
        for a in logs:
            if a.limited:
                self.drops.log(logging.INFO, a.event, a.fields)
            else:
                log.info(a.event, extra={"host": self.core.cfg.name, **a.fields})

    def counters(self) -> dict[str, int]:
        """The key manager's counters, and its 014 interface's (``etsi014_*``)."""
        out = self.core.all_counters()
        if self.api is not None:
            out.update(self.api.all_counters())
        return out

    def feed_api(self, event: api_events.Event) -> None:
        """An event for the 014 core; its ETSI 004 calls go into the key manager, its
        answers to the HTTPS server."""
        if self.api is None:
            return
        try:
            actions = self.api.handle(event, self.loop.time())
        except Exception:  # never crash on a request: answer it 500
            self.drops.log(logging.ERROR, "014 event failed", {}, exc_info=True)
            if isinstance(event, api_events.HttpRequest) and self.server is not None:
                body = {"message": "internal error"}
                self.server.answer(api_events.HttpResponse(event.stream, 500, body))
            return
        logs: list[api_events.Log] = []
        for a in actions:
            if isinstance(a, api_events.Call004):
                self.feed(Datagram(Channel.NORTH, a.data, ETSI014))
            elif isinstance(a, api_events.HttpResponse):
                if self.server is not None:
                    self.server.answer(a)
            else:
                logs.append(a)
        self.api_timer.arm(self.api.next_timer())
        self._write(logs)


def _counters_text(c: dict[str, int]) -> str:
    """``show counters``: one ``name value`` line per counter."""
    width = max((len(k) for k in c), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in sorted(c.items()))


def _relays_text(rows: list[dict[str, Any]]) -> str:
    """``show qkd relays``: one line per relay through this site."""
    if not rows:
        return "no key relays"
    lines = [f"{'handle':<16} {'role':<8} {'state':<10} {'keys':>5}  path"]
    for r in rows:
        lines.append(
            f"{r['handle']:<16} {r['role']:<8} {r['state']:<10} {r['keys']:>5}  "
            f"{' > '.join(r['path'])}"
        )
    return "\n".join(lines)


def _links_text(rows: list[dict[str, Any]]) -> str:
    head = f"{'link':<16} {'far site':<15} {'up':<4} {'rate b/s':>10} {'stock bits':>12} {'used bits':>12} {'services':>8}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['name']:<16} {r['far_site']:<15} {'yes' if r['up'] else 'no':<4} "
            f"{r['rate_bps']:>10} {r['stock_bits']:>12} {r['used_bits']:>12} {r['services']:>8}"
        )
    return "\n".join(lines)


class ProxyDaemon:
    """One key manager: its sockets around a :class:`Shell` and its core, started and
    stopped by the daemon skeleton (:mod:`daemonkit.daemon`). Stopping logs the counters
    and writes them to ``STATE_DIR/NAME.counters.json``."""

    def __init__(
        self,
        cfg: KmConfig,
        binds: Binds,
        ports: Ports = Ports(),
        state_dir: Path | None = None,
        cli_port: int | None = None,
        api: Api014 | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.binds = binds
        self.ports = ports
        self.state_dir = state_dir
        self.cli_port = cli_port
        self.shell: Shell | None = None
        self.transports: list[asyncio.BaseTransport] = []
        self.cli = CommandTable()
        self.cli_server = CliServer(self.cli, cfg.name)
        self._register_commands()

    def _core(self) -> KeyManager:
        return self._shell().core

    def _shell(self) -> Shell:
        if self.shell is None:
            raise RuntimeError("the key manager is not running")
        return self.shell

    def _register_commands(self) -> None:
        t = self.cli
        t.register(
            "show qkd links",
            lambda _a: self._core().show_links(),
            "the site's QKD links",
            text=_links_text,
        )
        t.register(
            "show counters",
            lambda _a: self._shell().counters(),
            "the key manager's counters",
            text=_counters_text,
        )
        t.register(
            "show qkd relays",
            lambda _a: self._core().show_relays(),
            "the key relays through this site",
            text=_relays_text,
        )
        register_running_config(t, self._running_config)

    def _running_config(self) -> list[str]:
        """``show running-config``: the key manager's effective configuration (never a
        secret)."""
        c, b, p = self.cfg, self.binds, self.ports
        out = [f"hostname {c.name}", "!", "key-manager", f" site {c.site}"]
        out += [f" serves {' '.join(sorted(map(str, c.served_nodes)))}"]
        out += [f" north {a} port {p.north} status-port {p.status}" for a in b.north]
        out += [f" sync {a} port {p.sync}" for a in b.sync]
        out += [
            f" status-poll {c.status_poll:g}",
            f" dead-after {c.dead_after:g}",
            f" get-deadline {c.get_deadline:g}",
            f" cache-per-client {c.cache_per_client}",
            f" relay-idle {c.relay_idle:g}",
            "!",
        ]
        for k in c.links:
            out += [f"qkd-link {k.name}", f" far-site {k.far_site}"]
            out += [f" rate {bps_text(k.rate_bps)}" if k.rate_bps else " rate from-device"]
            out += [f" buffer {k.buffer_bits} bits" if k.buffer_bits else " buffer from-device"]
            out.append("!")
        port = self.cli_port if self.cli_port is not None else "none"
        return [*out, "line vty", f" port {port}", "!"]

    async def _endpoint(
        self, ch: Channel, key: str, local: tuple[str, int], remote: tuple[str, int] | None = None
    ) -> None:
        assert self.shell is not None
        t, _ = await netns.datagram_endpoint(
            functools.partial(_Endpoint, self.shell, ch), local, remote
        )
        self.shell.transports[(ch, key)] = t
        self.transports.append(t)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg, b, p = self.cfg, self.binds, self.ports
        # the core draws its random sync epochs and device request IDs from the OS CSPRNG
        km = KeyManager(cfg, os.urandom, loop.time())
        api = None
        if self.api is not None:
            sites = self.api.site_of_kme
            api = Etsi014Core(self.api.cfg, os.urandom, lambda kme: km.stock_toward(sites[kme]))
        self.shell = shell = Shell(km, b, api)
        if self.api is not None:
            shell.server = Etsi014Server(shell.feed_api, self.api.pki)
            await shell.server.start(list(self.api.addrs), self.api.port)
        for a in b.north:
            await self._endpoint(Channel.NORTH, a, (a, p.north))
            await self._endpoint(Channel.STATUS, a, (a, p.status))
        for a in b.sync:
            await self._endpoint(Channel.SYNC, a, (a, p.sync))
        for dev, local in b.south_of_idq.items():
            await self._endpoint(Channel.SOUTH, f"{dev[0]}:{dev[1]}", (local, 0), dev)
        shell.timer.arm(shell.core.next_timer())  # the core greets its peers at once
        if self.cli_port is not None:
            await self.cli_server.start(b.north[0] if b.north else "0.0.0.0", self.cli_port)
        log.info(
            "listening",
            extra={
                "host": cfg.name,
                "north": ",".join(f"{a}:{p.north}" for a in b.north),
                "status": ",".join(f"{a}:{p.status}" for a in b.north),
                "sync": ",".join(f"{a}:{p.sync}" for a in b.sync),
                "links": ",".join(x.name for x in cfg.links),
                "idq": ",".join(f"{d[0]}:{d[1]}" for d in b.south_of_idq),
                "serves": ",".join(sorted(map(str, cfg.served_nodes))),
                "site": str(cfg.site),
                "cli_port": self.cli_port or "",
                "etsi014": ",".join(f"https://{a}:{self.api.port}" for a in self.api.addrs)
                if self.api is not None
                else "",
            },
        )

    async def stop(self) -> None:
        if self.shell is None:
            return
        await self.cli_server.stop()
        if self.shell.server is not None:
            await self.shell.server.stop()
        self.shell.timer.cancel()
        self.shell.api_timer.cancel()
        for t in self.transports:
            t.close()
        self.shell.drops.close()
        stopped(log, self.cfg.name, self.shell.counters(), self.state_dir)
