"""The node agent daemon: builds the pieces of one GMPLS node and runs them.

Pieces: the OSPF-TE speaker (:mod:`node_agent.ospf_te` on :mod:`daemonkit.ospf`), on a
site node the advertisement of its site's QKD links (:mod:`node_agent.qkd_links`), the
telnet CLI (:mod:`daemonkit.cli`) on the host's ``cli_port``, and, unless ``ospf_only``,
RSVP-TE and the QE service (``setup(daemon)`` of :mod:`node_agent.qe_service`), which plug
in through the daemon::

    def setup(daemon: NodeDaemon) -> None:
        agent = RsvpAgent.from_topology(daemon.topo, daemon.host, ...)
        daemon.add_component(agent)                     # async start()/stop()
        daemon.cli.register("show rsvp neighbor", ...)  # CLI commands with json forms
        daemon.ospf_listeners.append(fn)                # OSPF actions (LSDB changes ...)
        daemon.ospf.set_link_resources(local_if, ...)   # re-advertise a TE link

Components start in the order they were added (OSPF first) and stop in reverse order; one
that cannot start stops the daemon with its cause.
``python -m node_agent`` runs it with the daemon skeleton (:mod:`daemonkit.daemon`):
SIGTERM or SIGINT stops it cleanly. Logs are JSON lines (stdlib logging): one per event,
with the node name and the event's fields; no key material is ever logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from daemonkit.cli import CliServer, CommandTable, register_running_config
from daemonkit.ospf import config_lines, register_commands
from gmpls.ospf.events import Action
from gmpls.topology import Topology
from gmpls.units import bps_text
from node_agent.ospf_te import OspfTeAgent, register_te_commands
from node_agent.qe_service import setup as setup_qe_service
from node_agent.qkd_links import QkdLinkAgent
from node_agent.qkd_links import register_commands as register_qkd_commands

log = logging.getLogger("node_agent")


def _version_text(v: dict[str, Any]) -> str:
    qe = "QE capable" if v["qeCapable"] else "not QE capable"
    return (
        f"node_agent on {v['node']}, router ID {v['routerId']}, {qe}\n"
        f"uptime {v['uptimeSecs']} s\n"
        f"components: {', '.join(v['components'])}"
    )


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class NodeDaemon:
    """One GMPLS node: OSPF-TE, the CLI, RSVP-TE and the QE service."""

    def __init__(
        self,
        topo: Topology,
        host: str,
        *,
        cli_port: int | None = None,
        cli_bind: str = "0.0.0.0",
        state_dir: Path | None = None,
        ospf: OspfTeAgent | None = None,
        ospf_only: bool = False,
        qkd_stock_threshold: float = 0.10,
    ) -> None:
        self.topo = topo
        self.host = host
        self.state_dir = state_dir
        h = topo.host(host)
        self.cli_port = cli_port if cli_port is not None else h.cli_port
        self.cli_bind = cli_bind
        self.cli = CommandTable()
        self.cli_server = CliServer(self.cli, host)
        #: callables fed every OSPF action other than Send (LSDB/neighbor changes)
        self.ospf_listeners: list[Callable[[Action], None]] = []
        self.ospf = ospf or OspfTeAgent.from_topology(topo, host, on_action=self._ospf_action)
        self.ospf.on_action = self._ospf_action
        self.components: list[Component] = [self.ospf]
        self.started_at = time.time()
        register_commands(self.cli, self.ospf)
        register_te_commands(self.cli, self.ospf)
        #: the site node's advertisement of its site's QKD links (None on other nodes)
        self.qkd_links = QkdLinkAgent.from_topology(
            topo, host, self.ospf, stock_fraction=qkd_stock_threshold
        )
        if self.qkd_links is not None:
            self.components.append(self.qkd_links)
            register_qkd_commands(self.cli, self.qkd_links)
        self.cli.register(
            "show version", lambda args: self._version(), "daemon and node", text=_version_text
        )
        register_running_config(self.cli, self._running_config)
        if not ospf_only:
            setup_qe_service(self)

    def add_component(self, c: Component) -> None:
        self.components.append(c)

    def _version(self) -> dict[str, Any]:
        h = self.topo.host(self.host)
        return {
            "node": self.host,
            "routerId": str(h.router_id),
            "qeCapable": h.qe.capable,
            "uptimeSecs": round(time.time() - self.started_at, 1),
            "components": [type(c).__name__ for c in self.components],
        }

    def _running_config(self) -> list[str]:
        """``show running-config``: what this node runs with (topology and flags)."""
        h, t = self.topo.host(self.host), self.topo
        out = [f"hostname {self.host}", "!"]
        names = self.ospf.router.stub_names
        for d, a in sorted(h.interfaces.items()):
            if d == t.control_domain:
                continue
            net = t.domains[d].subnet
            name = names.get(net, d)
            out += [
                f"interface {name}",
                f" description domain {d}",
                f" ip address {a}/{net.prefixlen}",
            ]
            out.append("!")
        out += config_lines(self.ospf)
        out += ["mpls-te on", f"mpls-te router-address {h.router_id}", "!"]
        for k in t.te_links_of(self.host):
            out += [
                f"te-link {k.local_if}",
                f" remote {k.remote} router-id {k.remote_router_id} interface {k.remote_if}",
                f" metric {k.metric}",
                f" max-bandwidth {bps_text(k.bandwidth_mbps * 1e6)}",
                f" lambdas {' '.join(map(str, k.lambdas)) or 'none'}",
                "!",
            ]
        r = t.rsvp
        out += [
            "rsvp",
            f" refresh-interval {r.refresh_ms} ms",
            f" keep-multiplier {r.keep_multiplier}",
            f" hello-interval {r.hello_ms} ms",
            "!",
            "qe-service",
            f" capable {'yes' if h.qe.capable else 'no'}",
            f" proxy {h.qe.proxy or 'none'}",
            "!",
            "line vty",
            f" port {self.cli_port if self.cli_port is not None else 'none'}",
            "!",
        ]
        return out

    def _ospf_action(self, a: Action) -> None:
        for fn in self.ospf_listeners:
            try:
                fn(a)
            except Exception:
                log.exception("ospf listener failed", extra={"node": self.host})

    async def start(self) -> None:
        """Start every component in order; one that cannot start raises, naming itself and
        the cause (the skeleton then stops the daemon and exits with it)."""
        for c in self.components:
            try:
                await c.start()
            except Exception as e:
                raise RuntimeError(f"{type(c).__name__}: {e}") from e
        if self.cli_port is not None:
            port = await self.cli_server.start(self.cli_bind, self.cli_port)
            log.info("cli listening", extra={"node": self.host, "event": "cli", "port": port})

    async def stop(self) -> None:
        await self.cli_server.stop()
        for c in reversed(self.components):
            try:
                await c.stop()
            except Exception:
                log.exception("component stop failed", extra={"node": self.host})
