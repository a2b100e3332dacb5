"""``qkdnet wait`` (and ``qkdnet up --wait``): until the control plane has converged, with
progress a person can follow on a large topology.

Ready means: every daemon runs and every daemon with a CLI answers on it; every GMPLS
router with a CLI (kinds ``node`` and ``pce``) has at least one OSPF neighbour and every
neighbour it has is ``Full`` (or ``2-Way``, which two DROthers stay in); and, when the
topology has a PCE, the PCE's TED holds every node's router ID and every node has its
PCEP session to the PCE up. Each round asks every router ``show ip ospf neighbor json``,
every other daemon with a CLI (key managers) ``show version``, and the PCE ``show ted
json`` and ``show pcep sessions json``, through the backend's
:meth:`~compose.backend.Testbed.cli`; a line of progress is printed whenever the picture
changes, and every :data:`HEARTBEAT` seconds anyway, so a long wait never looks hung. A
daemon that has died ends the wait at once (waiting longer cannot help), naming it. Nothing
here decides anything about OSPF: it only reads what the daemons show.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compose.backend import Testbed, TestbedError
from compose.cliclient import CliError

Progress = Callable[[str], None]
ROUTER_KINDS = ("node", "pce")
#: neighbour states that mean "adjacent as it will get" (RFC 2328 10.4: DROthers stay 2-Way)
SETTLED = ("Full", "2-Way")
#: seconds between progress lines while nothing changes
HEARTBEAT = 10.0


@dataclass
class Snapshot:
    """What the routers and the PCE show at one moment."""

    routers: int = 0
    adjacent: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)  # router -> what it waits for
    ted_nodes: int | None = None  # None: no PCE in the topology (or it does not answer)
    ted_want: int = 0
    pcc_up: int | None = None  # nodes whose PCEP session is up (None: no PCE)
    silent: list[str] = field(default_factory=list)  # other daemons whose CLI does not answer
    dead: dict[str, str] = field(default_factory=dict)  # host -> why its daemon is dead

    @property
    def converged(self) -> bool:
        ted_ok = self.ted_nodes is None or self.ted_nodes >= self.ted_want
        pcc_ok = self.pcc_up is None or self.pcc_up >= self.ted_want
        ospf_ok = len(self.adjacent) == self.routers and not self.waiting
        return ospf_ok and ted_ok and pcc_ok and not self.silent and not self.dead

    def line(self) -> str:
        out = f"OSPF: {len(self.adjacent)}/{self.routers} routers adjacent"
        if self.waiting:
            shown = sorted(self.waiting.items())[:4]
            more = f", +{len(self.waiting) - 4} more" if len(self.waiting) > 4 else ""
            out += " (waiting: " + ", ".join(f"{h} {w}" for h, w in shown) + more + ")"
        if self.ted_want:
            have = "?" if self.ted_nodes is None else str(self.ted_nodes)
            out += f"; PCE TED {have}/{self.ted_want} nodes"
            pcc = "?" if self.pcc_up is None else str(self.pcc_up)
            out += f"; PCEP {pcc}/{self.ted_want} sessions up"
        if self.silent:
            out += f"; no CLI answer yet from {', '.join(sorted(self.silent)[:4])}"
            out += f" (+{len(self.silent) - 4})" if len(self.silent) > 4 else ""
        if self.dead:
            out += "; DEAD: " + ", ".join(f"{h} ({w})" for h, w in sorted(self.dead.items()))
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "converged": self.converged,
            "routers": self.routers,
            "adjacent": sorted(self.adjacent),
            "waiting": dict(sorted(self.waiting.items())),
            "ted_nodes": self.ted_nodes,
            "ted_want": self.ted_want,
            "pcc_up": self.pcc_up,
            "silent": sorted(self.silent),
            "dead": dict(sorted(self.dead.items())),
        }


def _router_state(bed: Testbed, host: str) -> str | None:
    """None when the router is adjacent; else what it waits for (a few words)."""
    try:
        data = json.loads(bed.cli(host, "show ip ospf neighbor json", timeout=5))
    except (CliError, TestbedError, OSError, ValueError):
        return "no CLI yet"
    states = [e["nbrState"] for entries in data.get("neighbors", {}).values() for e in entries]
    if not states:
        return "no neighbour yet"
    pending = sorted(s for s in states if s not in SETTLED)
    if pending:
        return "neighbours " + "/".join(dict.fromkeys(pending))
    return None


def snapshot(bed: Testbed) -> Snapshot:
    """Ask every router and the PCE once."""
    topo = bed.topology
    routers = [h.name for h in topo.of_kind(*ROUTER_KINDS) if h.cli_port is not None]
    nodes = {str(h.router_id) for h in topo.of_kind("node")}
    snap = Snapshot(routers=len(routers), ted_want=len(nodes) if topo.of_kind("pce") else 0)
    for host in routers:
        why = _router_state(bed, host)
        if why is None:
            snap.adjacent.append(host)
        else:
            snap.waiting[host] = why
    for h in topo.hosts.values():
        if h.cli_port is not None and h.kind not in ROUTER_KINDS:
            try:
                bed.cli(h.name, "show version", timeout=5)
            except (CliError, TestbedError, OSError):
                snap.silent.append(h.name)
    for pce in topo.of_kind("pce")[:1]:
        if pce.cli_port is None:
            continue
        try:
            ted = json.loads(bed.cli(pce.name, "show ted json", timeout=5))
            snap.ted_nodes = len(nodes & {n["router_id"] for n in ted.get("nodes", [])})
        except (CliError, TestbedError, OSError, ValueError, KeyError, TypeError):
            snap.ted_nodes = None
        snap.pcc_up = _pcc_up(bed, pce.name)
    snap.dead = dead_daemons(bed)
    return snap


def _pcc_up(bed: Testbed, pce: str) -> int | None:
    """How many nodes have their PCEP session to the PCE up (None: no answer)."""
    topo = bed.topology
    addrs = {str(a) for h in topo.of_kind("node") for a in h.interfaces.values()}
    try:
        data = json.loads(bed.cli(pce, "show pcep sessions json", timeout=5))
        peers = {
            str(x["peer"]).rpartition(":")[0]
            for x in data.get("sessions", [])
            if x.get("state") == "Up"
        }
    except (CliError, TestbedError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return len(peers & addrs)


def dead_daemons(bed: Testbed) -> dict[str, str]:
    """{host: why} for each daemon that was started and is not running now (from the
    backend's status: the namespace backend's daemons, the Docker backend's containers)."""
    try:
        hosts = bed.status().get("hosts", {})
    except (TestbedError, OSError):
        return {}
    out = {}
    for h, info in hosts.items():
        for d in info.get("daemons", []):
            if not d.get("running", True):
                why = (d.get("why") or ["it wrote nothing"])[-1]
                out[h] = f"{d['name']} {d.get('exit', 'died')}: {why}"
        note = str(info.get("note", ""))
        if "exited with code" in note and h not in out:
            out[h] = note
        if info.get("state") in ("exited", "dead"):
            out[h] = f"container {info['state']} {info.get('exit_code', '')}".strip()
    return out


def wait(
    bed: Testbed,
    progress: Progress,
    timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Snapshot, float]:
    """Poll :func:`snapshot` until converged or ``timeout`` s; progress on every change and
    every :data:`HEARTBEAT` s. Returns the last snapshot and the seconds waited."""
    t0 = clock()
    last, last_at = "", t0
    while True:
        snap = snapshot(bed)
        now = clock()
        line = snap.line()
        if snap.converged:
            progress(f"[{bed.prefix}] converged after {now - t0:.1f} s: {line}")
            progress(f"[{bed.prefix}] ready in {now - t0:.1f} s")
            return snap, now - t0
        if snap.dead:  # waiting cannot bring a dead daemon back
            progress(f"[{bed.prefix}] {now - t0:5.1f} s  {line}")
            return snap, now - t0
        if line != last or now - last_at >= HEARTBEAT:
            progress(f"[{bed.prefix}] {now - t0:5.1f} s  {line}")
            last, last_at = line, now
        if now - t0 > timeout:
            return snap, now - t0
        sleep(1.0)
