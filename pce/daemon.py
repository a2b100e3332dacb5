"""The PCE daemon: OSPF listener → TED → path computation, PCEP server, telnet CLI.

``python -m pce --topology FILE --host pce`` reads its host section (router ID, control
address, CLI port) and the OSPF timers from the topology, then:

- runs the OSPF core (:mod:`gmpls.ospf.router`) on the control LAN through the raw-socket
  speaker the node agents run too (:mod:`daemonkit.ospf`), with the TED subscribed to its
  LSDB (``--ted static`` instead loads the LSAs the topology's nodes would originate, for
  offline use and benchmarks);
- serves PCEP on TCP 4189 (:mod:`pce.server`);
- serves the CLI on the host's ``cli_port``: the shared command table and telnet server
  (:mod:`daemonkit.cli`), with this daemon's ``show`` commands and (with OSPF) the
  ``show ip ospf ...`` commands registered in it.

``python -m pce`` runs it with the daemon skeleton (:mod:`daemonkit.daemon`): logs are
JSON lines (stdlib logging); SIGTERM/SIGINT shut down cleanly (PCEP Close to every peer,
sockets closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from daemonkit.cli import CliServer, CommandTable, Failed, register_running_config
from daemonkit.daemon import cancel
from daemonkit.ospf import OspfSpeaker, config_lines, ospf_interfaces, register_commands
from gmpls import qe
from gmpls.ospf.lsa import LSA, LSAKey
from gmpls.ospf.router import OspfRouter
from gmpls.pcep.constants import PORT, STATEFUL_FLAG_I, STATEFUL_FLAG_U
from gmpls.pcep.session import SessionConfig
from gmpls.topology import Topology
from pce.compute import PathComputer
from pce.keyroute import links_json
from pce.lspdb import LspDb
from pce.server import PcepServer
from pce.service import PceService
from pce.synth import topology_lsas
from pce.ted import Ted

log = logging.getLogger("pce")


@dataclass(frozen=True, slots=True)
class PceConfig:
    name: str
    router_id: IPv4Address
    control_address: IPv4Address
    pcep_port: int = PORT
    cli_port: int | None = 23
    bind: str | None = None
    ted_source: str = "ospf"  # or "static"
    one_session_per_peer: bool = True
    keepalive: int = 30
    deadtimer: int = 120
    #: (node router ID, site ID) of nodes that are not their site's site node
    qkd_sites: tuple[tuple[IPv4Address, IPv4Address], ...] = ()
    #: RFC 8231 State Timeout Interval: seconds a down PCC's LSPs are kept
    state_timeout: float = 60.0
    #: seconds between checks of the delegated LSPs (besides TED changes and reports)
    recompute_interval: float = 5.0


def config_from_topology(topo: Topology, host: str, **overrides: Any) -> PceConfig:
    h = topo.host(host)
    if h.kind != "pce":
        raise ValueError(f"{host} is a {h.kind}, not a pce")
    ctrl = topo.control_address(host)
    kw: dict[str, Any] = {
        "name": host,
        "router_id": h.router_id or ctrl,
        "control_address": ctrl,
        "cli_port": h.cli_port,
    }
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return PceConfig(**kw)


class PceDaemon:
    def __init__(self, topo: Topology, config: PceConfig) -> None:
        self.topo = topo
        self.config = config
        self.ted = Ted(root=config.router_id if config.ted_source == "ospf" else None)
        self.computer = PathComputer(self.ted)
        self.lsps = LspDb(state_timeout=config.state_timeout)
        self.service = PceService(
            self.computer,
            clock=time.perf_counter,
            lsps=self.lsps,
            qkd_sites=dict(config.qkd_sites),
        )
        self.service.expected_nodes = frozenset(
            h.router_id for h in topo.of_kind("node") if h.router_id is not None
        )
        self.server = PcepServer(
            self.service,
            SessionConfig(
                keepalive=config.keepalive,
                deadtimer=config.deadtimer,
                stateful=STATEFUL_FLAG_U | STATEFUL_FLAG_I,
            ),
            host=config.bind or "0.0.0.0",
            port=config.pcep_port,
            one_session_per_peer=config.one_session_per_peer,
        )
        self.cli = CommandTable()
        self.cli_server = CliServer(self.cli, config.name)
        self._register_commands()
        #: the OSPF speaker on the control LAN (its interface is looked up now); None
        #: with a static TED
        self.ospf: OspfSpeaker | None = None
        if config.ted_source == "ospf":
            router = OspfRouter(
                config.router_id, topo.ospf.area, name=config.name, **topo.ospf.router_timers()
            )
            router.add_lsdb_listener(self._lsdb_changed)
            self.ospf = OspfSpeaker(router, ospf_interfaces(topo, config.name))
            register_commands(self.cli, self.ospf)
        self.started = 0.0
        self._recompute_due: asyncio.TimerHandle | None = None
        #: seconds ``qe-service initiate ... wait`` waits for the head's outcome
        self.initiate_wait = 30.0
        #: set on every PCRpt: ``initiate ... wait`` looks again then (no polling)
        self._reported = asyncio.Event()
        self.server.on_report = self._reported.set
        self._recompute_task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.started = time.time()
        if self.ospf is None:
            self.ted.load(topology_lsas(self.topo))
            log.info("static TED", extra={"event": "ted", "nodes": len(self.ted.nodes())})
        else:
            await self.ospf.start()
        await self.server.start()
        self._recompute_task = asyncio.create_task(self._recompute_loop(), name="pcupd")
        if self.config.cli_port is not None:
            port = await self.cli_server.start(self.config.bind or "0.0.0.0", self.config.cli_port)
            log.info("cli listening", extra={"event": "cli", "port": port})

    def _lsdb_changed(self, key: LSAKey, lsa: LSA | None) -> None:
        changed = self.ted.flush(key) if lsa is None else self.ted.install(lsa)
        if changed:
            self._recompute_soon()
            log.info(
                "ted updated",
                extra={
                    "event": "ted",
                    "lsa": str(key),
                    "op": "flush" if lsa is None else "install",
                    "version": self.ted.version,
                    "qkd_version": self.ted.qkd_version,
                },
            )

    def _recompute_soon(self, delay: float = 0.2) -> None:
        """The TED changed: check the delegated LSPs once the burst of LSAs is in."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the TED loaded outside the loop (tests)
            return
        if self._recompute_due is None:
            self._recompute_due = loop.call_later(delay, self._recompute)

    def _recompute(self) -> None:
        self._recompute_due = None
        try:
            self.server.recompute(asyncio.get_running_loop().time())
        except Exception:
            log.exception("recompute failed", extra={"event": "failure"})

    async def _recompute_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.recompute_interval)
            self._recompute()

    async def stop(self) -> None:
        if self._recompute_due is not None:
            self._recompute_due.cancel()
        if self._recompute_task is not None:
            await cancel([self._recompute_task])
        await self.server.stop()
        await self.cli_server.stop()
        if self.ospf is not None:
            await self.ospf.stop()
        log.info("pce stopped", extra={"event": "stop"})

    # -- CLI ----------------------------------------------------------------------------

    def _register_commands(self) -> None:
        """``show ted``, ``show pcep sessions``, ``show pce statistics``, ``show pce lsp``,
        each with a ``json`` form (the table renders data with the ``text`` function or as
        JSON)."""
        self.cli.register(
            "show ted",
            lambda args: self.ted.as_json(),
            "TE nodes, QE capability and TE links",
            text=_ted_text,
        )
        self.cli.register(
            "show pcep sessions",
            lambda args: self._sessions(),
            "PCEP sessions and their counters",
            text=_sessions_text,
        )
        self.cli.register(
            "show pce statistics",
            lambda args: self._stats(),
            "requests, replies, no-paths, compute time",
            text=_stats_text,
        )
        self.cli.register(
            "qe-service initiate",
            self._initiate,
            "ask the head to set up a QE service (PCInitiate); wait: until it is up or "
            "failed, and why",
            text=_initiation_text,
            args=INITIATE_SYNTAX,
        )
        self.cli.register(
            "qe-service release",
            self._release,
            "remove a QE service this PCE initiated (PCInitiate, R flag)",
            text=_initiation_text,
            args="ID",
        )
        self.cli.register(
            "show qkd links",
            lambda args: self._qkd_links(),
            "QKD links of the TED: key rate, stock, committed consumption, services",
            text=_qkd_links_text,
        )
        self.cli.register(
            "qe-service update",
            self._update,
            "move a delegated LSP to a new path (PCUpd; ID: a service this PCE initiated)",
            text=_update_text,
            args="ID|PCC PLSP-ID [avoid A.B.C.D ...]",
        )
        self.cli.register(
            "show pce lsp",
            lambda args: self.lsps.as_json(asyncio.get_running_loop().time()),
            "the LSPs the PCCs reported (stateful PCE) and the lambdas they hold",
            text=_lsp_text,
        )
        register_running_config(self.cli, self._running_config)

    def _running_config(self) -> list[str]:
        """``show running-config``: the PCE's effective configuration."""
        c = self.config
        out = [f"hostname {c.name}", "!"]
        if self.ospf is not None:
            out += config_lines(self.ospf)
        out += [
            "pce",
            f" router-id {c.router_id}",
            f" address {c.control_address}",
            f" pcep port {c.pcep_port}" + (f" bind {c.bind}" if c.bind else ""),
            f" pcep keepalive {c.keepalive}",
            f" pcep deadtimer {c.deadtimer}",
            f" pcep one-session-per-peer {'yes' if c.one_session_per_peer else 'no'}",
            f" ted source {c.ted_source}",
            f" state-timeout {c.state_timeout:g}",
            f" recompute-interval {c.recompute_interval:g}",
        ]
        out += [f" qkd site {site} node {node}" for node, site in c.qkd_sites]
        out += ["!", "line vty", f" port {c.cli_port if c.cli_port is not None else 'none'}"]
        return [*out, "!"]

    async def _initiate(self, args: list[str]) -> dict[str, Any] | Failed:
        """``... [wait]``: with ``wait``, answer once the head reports the service up or
        failed (with its reason), or after ``initiate_wait`` seconds."""
        wait = "wait" in args
        head, dst, params = parse_initiate([a for a in args if a != "wait"])
        loop = asyncio.get_running_loop()
        ini = self.server.initiate(head, dst, params, loop.time())
        deadline = loop.time() + self.initiate_wait
        while wait and ini.state not in ("up", "failed") and loop.time() < deadline:
            self._reported.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reported.wait(), deadline - loop.time())
        if wait and ini.state == "failed":
            return Failed(ini.as_json(), "failed")
        return ini.as_json()

    def _release(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1 or not args[0].isdigit():
            raise ValueError("usage: qe-service release ID")
        return self.server.release(int(args[0]), asyncio.get_running_loop().time()).as_json()

    def _update(self, args: list[str]) -> dict[str, Any]:
        pcc, plsp_id, avoid = self._parse_update(args)
        lsp = self.server.move(pcc, plsp_id, avoid, asyncio.get_running_loop().time())
        return lsp.as_json()

    def _parse_update(self, args: list[str]) -> tuple[str, int, list[IPv4Address]]:
        """``ID`` (an initiation) or ``PCC PLSP-ID``, then ``avoid A.B.C.D`` pairs."""
        usage = "usage: qe-service update ID|PCC PLSP-ID [avoid A.B.C.D ...]"
        ids = [a for a in args[:2] if a != "avoid"]
        if ids and ids[0].isdigit():
            ini = self.lsps.initiations.get(int(ids[0]))
            if ini is None or ini.plsp_id is None:
                raise ValueError(f"no initiated QE service {ids[0]} with a reported LSP")
            mine = (x for x in self.lsps.all() if (x.head, x.plsp_id) == (ini.head, ini.plsp_id))
            pcc = next((x.pcc for x in mine), str(ini.head))
            target, rest = (pcc, ini.plsp_id), args[1:]
        elif len(ids) == 2 and ids[1].isdigit():
            target, rest = (str(IPv4Address(ids[0])), int(ids[1])), args[2:]
        else:
            raise ValueError(usage)
        if len(rest) % 2 or any(w != "avoid" for w in rest[::2]):
            raise ValueError(usage)
        return target[0], target[1], [IPv4Address(a) for a in rest[1::2]]

    def _sessions(self) -> dict[str, Any]:
        return {
            "sessions": self.server.sessions_json(),
            "accepted": self.server.stats.accepted,
            "closed": self.server.stats.closed,
            "rejected_second_session": self.server.stats.rejected_second_session,
            "close_reasons": self.server.stats.close_reasons,
        }

    def _qkd_links(self) -> dict[str, Any]:
        self.service.keys.expire(asyncio.get_running_loop().time(), self.service.live_services)
        return links_json(self.ted.qkd_graph(), self.service.keys)

    def _stats(self) -> dict[str, Any]:
        data = self.service.stats.as_json()
        data["ted_version"] = self.ted.version
        return data


def _ted_text(d: dict[str, Any]) -> str:
    lines = [
        f"TED version {d['version']}: {len(d['nodes'])} TE nodes, {d['usable_links']} usable links"
    ]
    lines.append(f"{'router':<16} {'TE':<4} {'QE':<4} links")
    for n in d["nodes"]:
        lines.append(
            f"{n['router_id']:<16} {'yes' if n['te_capable'] else 'no':<4} "
            f"{'yes' if n['qe_capable'] else 'no':<4} {len(n['links'])}"
        )
        for lk in n["links"]:
            ch = lk["channels"]
            chs = "-" if ch is None else (f"{len(ch)} ({ch[0]}..{ch[-1]})" if ch else "none")
            lines.append(
                f"    {lk['from']:<18} -> {lk['to']:<18} te-metric {lk['te_metric']:<5} "
                f"bw {lk['max_bandwidth_bps'] / 1e9:g}G lambdas {chs}"
            )
    return "\n".join(lines)


def _qkd_links_text(d: dict[str, Any]) -> str:
    lines = [
        f"QKD links: {len(d['links']) // 2} between {len(d['sites'])} sites, each way its "
        "upstream end's stream; commitments "
        f"{d['committed']} made, {d['released']} released (hold {d['hold_s']:g} s)",
        f"{'from site':<16} {'to site':<16} {'state':<6} {'rate b/s':>9} {'stock bits':>11} "
        f"{'committed':>10} {'free b/s':>11} services",
    ]
    for lk in d["links"]:
        state = ("up" if lk["up"] else "down") if lk["two_way"] else "1-way"
        lines.append(
            f"{lk['from']:<16} {lk['to']:<16} {state:<6} {lk['rate_bps']:>9} {lk['stock_bits']:>11} "
            f"{lk['committed_bps']:>10.0f} {lk['free_bps']:>11.0f} {' '.join(lk['services']) or '-'}"
        )
    return "\n".join(lines)


def _sessions_text(d: dict[str, Any]) -> str:
    lines = [f"{len(d['sessions'])} PCEP sessions ({d['accepted']} accepted, {d['closed']} closed)"]
    lines.append(f"{'peer':<22} {'state':<9} {'uptime':>8} {'ka/dt':>7} {'req':>6} {'err':>5}")
    for s in d["sessions"]:
        kadt = (
            f"{s['peer_keepalive']}/{s['peer_deadtimer']}"
            if s["peer_keepalive"] is not None
            else "-"
        )
        lines.append(
            f"{s['peer']:<22} {s['state']:<9} {s['uptime_s']:>8} {kadt:>7} "
            f"{s['requests']:>6} {s['errors_tx']:>5}"
        )
    return "\n".join(lines)


def _stats_text(d: dict[str, Any]) -> str:
    c = d["compute_ms"]
    lines = [
        f"requests {d['requests']}  replies {d['replies']}  paths {d['paths']}  "
        f"no-paths {d['no_paths']}  QE requests {d['qe_requests']}",
        f"compute ms: mean {c['mean']}  p50 {c['p50']}  p99 {c['p99']}  max {c['max']}"
        f"  (last {c['count']})",
    ]
    for reason, n in sorted(d["no_path_reasons"].items()):
        lines.append(f"  no-path {reason.lower():<32} {n}")
    return "\n".join(lines)


def _lsp_text(d: dict[str, Any]) -> str:
    pccs = [
        f"{p} (syncing)"
        if v["syncing"]
        else p
        if v["up"]
        else f"{p} (down, purge in {v['purge_in_s']} s)"
        for p, v in d["pccs"].items()
    ]
    lines = [
        f"{len(d['lsps'])} LSPs, {d['reservations']} lambda reservations, {d['released']} "
        f"lambdas freed by removals ahead of the TE LSAs; PCCs: {', '.join(pccs)}"
    ]
    lines.append(
        f"{'pcc':<15} {'id':>5} {'name':<16} {'head':<15} {'tail':<15} {'pst':<8} "
        f"{'state':<10} {'D':<2} lambdas"
    )
    for x in d["lsps"]:
        lams = ",".join(str(lam["lambda"]) for lam in x["lambdas"]) or "-"
        lines.append(
            f"{x['pcc']:<15} {x['plsp_id']:>5} {x['name'][:16]:<16} {x['head'] or '-':<15} "
            f"{x['tail'] or '-':<15} {x['pst']:<8} {x['state']:<10} "
            f"{'D' if x['delegated'] else '-':<2} {lams}"
        )
        qe = x["qe"]
        qe_text = (
            f" QE key-length {qe['key_length']} layer {qe['layer']} algorithm {qe['algorithm']}"
            if qe
            else ""
        )
        lines.append(f"    path {' '.join(x['path']) or '-'}{qe_text}")
        if x["error"]:
            lines.append(f"    error {x['error_code'] or '-'}: {x['error']}")
        if x["updates"]:
            pending = f", SRP {x['update_pending']} outstanding" if x["update_pending"] else ""
            lines.append(f"    updates {x['updates']}: {x['update_result']}{pending}")
    lines += [_initiation_text(i) for i in d["initiated"]]
    return "\n".join(lines)


_INT_OPTIONS = {"key-length": "key_length", "layer": "enc_layer", "algorithm": "algorithm"}
_REFRESH = {"time": qe.RefreshType.TIME_MS, "volume": qe.RefreshType.VOLUME_MIB}


#: the syntax of ``qe-service initiate``
INITIATE_SYNTAX = (
    "head A.B.C.D dst A.B.C.D [key-length N] [layer L] [algorithm A] [refresh time|volume V] [wait]"
)


def parse_initiate(args: list[str]) -> tuple[IPv4Address, IPv4Address, qe.QeParams]:
    """``head A.B.C.D dst A.B.C.D [key-length N] [layer L] [algorithm A] [refresh
    time|volume V]`` (the node agents' ``qe-service create`` options, their defaults)."""
    ends: dict[str, IPv4Address] = {}
    kw: dict[str, int] = {}
    i = 0
    while i < len(args):
        word, value = args[i], args[i + 1] if i + 1 < len(args) else ""
        if word in ("head", "dst"):
            ends[word] = IPv4Address(value)
        elif word in _INT_OPTIONS:
            kw[_INT_OPTIONS[word]] = int(value)
        elif word == "refresh" and value in _REFRESH and i + 2 < len(args):
            kw["refresh_type"], kw["refresh_value"] = _REFRESH[value], int(args[i + 2])
            i += 1
        else:
            raise ValueError(f"unknown argument {word!r}")
        i += 2
    if set(ends) != {"head", "dst"}:
        raise ValueError(f"usage: qe-service initiate {INITIATE_SYNTAX}")
    return ends["head"], ends["dst"], qe.QeParams(**kw)


def _update_text(d: dict[str, Any]) -> str:
    return (
        f"LSP {d['plsp_id']} {d['name']} of {d['pcc']}: PCUpd sent (SRP {d['update_pending']}); "
        f"path until the head reports the move: {' '.join(d['path'])}"
    )


def _initiation_text(d: dict[str, Any]) -> str:
    why = f" ({d['reason']})" if d["reason"] else ""
    return f"QE service {d['id']} {d['name']}: {d['head']} -> {d['tail']} {d['state']}{why}"
