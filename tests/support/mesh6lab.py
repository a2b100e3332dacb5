"""``topologies/mesh6.yaml`` in namespaces: the six-site QKD network (docs/topology.md#mesh6).

:func:`start_mesh6` brings it up under a prefix of ours (never the file's ``m6``) with
every domain captured from the start, like :func:`tests.support.e2elab.start_lab` (it is
that function), and waits until the PCE's TED lists n1..n6 with n1 and n4 QE capable and
n1's PCEP session is up. The helpers below read what the tests check: who is Full with
whom on the control LAN, which addresses a namespace holds, which daemons run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.e2elab import ROOT, Lab, start_lab

MESH6 = ROOT / "topologies" / "mesh6.yaml"
NODES = [f"n{i}" for i in range(1, 7)]
#: the OSPF routers of the control LAN (the PCE listens, priority 0)
ROUTERS = [*NODES, "pce"]


def start_mesh6(prefix: str, run_dir: Path) -> Lab:
    return start_lab(MESH6, prefix, run_dir)


def neighbor_states(lab: Lab, router: str) -> dict[str, str]:
    """``router``'s OSPF neighbours on the control LAN: router ID -> state (``Full/DR``,
    ``2-Way/DROther``...)."""
    data = lab.cli_json(router, "show ip ospf neighbor", timeout=10)
    return {rid: entries[0]["state"] for rid, entries in data["neighbors"].items()}


def lan_is_converged(lab: Lab) -> bool | str:
    """True when one router is DR and every other router is Full with it and sees every
    router as a neighbour (Full with the DR and BDR, 2-Way with the other DROthers, as
    RFC 2328 §10.4 has it on a broadcast network); else what is missing."""
    topo = lab.tb.topology
    rid = {r: str(topo.host(r).router_id) for r in ROUTERS}
    states = {r: neighbor_states(lab, r) for r in ROUTERS}
    drs = {
        n for r in ROUTERS for n, s in states[r].items() if s.endswith("/DR") and s[:4] == "Full"
    }
    if len(drs) != 1:
        return f"DR seen as: {sorted(drs)}"
    dr = next(iter(drs))
    for r in ROUTERS:
        others = {rid[x] for x in ROUTERS if x != r}
        if set(states[r]) != others:
            return f"{r} sees {sorted(states[r])}"
        if rid[r] != dr and not states[r][dr].startswith("Full"):
            return f"{r} is {states[r][dr]} with the DR {dr}"
    return True


def addresses(lab: Lab, host: str) -> dict[str, str]:
    """Interface name -> ``ADDRESS/LEN`` inside ``host``'s namespace (``lo`` left out)."""
    r = lab.tb.exec(host, ["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True)
    out = {}
    for link in json.loads(r.stdout):
        for a in link.get("addr_info", []):
            if link["ifname"] != "lo":
                out[link["ifname"]] = f"{a['local']}/{a['prefixlen']}"
    return out


def listening(lab: Lab, host: str) -> dict[str, Any] | None:
    """The ``listening`` line of a Python daemon's JSON log, or None before it."""
    log = lab.run_dir / f"{host}.log"
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        if '"listening"' in line:
            return dict(json.loads(line))
    return None
