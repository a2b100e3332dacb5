"""``qkdnet wait``'s reading of convergence (compose/converge.py), on a scripted testbed:
the routers' ``show ip ospf neighbor json`` and the PCE's ``show ted json`` as the daemons
print them, no sockets, a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compose import converge
from compose.cliclient import CliError
from gmpls.topology import load

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"


def _nbrs(*states: str) -> str:
    out: dict[str, list[dict[str, Any]]] = {}
    for i, s in enumerate(states):
        out[f"10.1.1.{i + 10}"] = [{"nbrState": s, "state": f"{s}/DROther"}]
    return json.dumps({"neighbors": out})


class ScriptedBed:
    """Round r answers with script[r] (the last round repeats)."""

    prefix = "qk"

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.topology = load(PAPER)
        self.script = script
        self.round = 0

    def cli(self, host: str, command: str, via: str | None = None, timeout: float = 10) -> str:
        step = self.script[min(self.round, len(self.script) - 1)]
        if command == "show pcep sessions json":
            up = step.get("pcc", [1, 2, 3, 4, 5])
            sessions = [{"peer": f"10.1.1.{i}:4189", "state": "Up"} for i in up]
            return json.dumps({"sessions": sessions})
        if command == "show ted json":
            if step["ted"] is None:
                raise CliError("connection refused")
            return json.dumps({"nodes": [{"router_id": f"10.1.1.{i}"} for i in step["ted"]]})
        answer = step.get(host, step["routers"])
        if answer is None:
            raise CliError("connection refused")
        return str(answer)

    def status(self) -> dict[str, Any]:
        step = self.script[min(self.round, len(self.script) - 1)]
        return {"hosts": step.get("status", {})}


def _run(bed: ScriptedBed, timeout: float = 100) -> tuple[converge.Snapshot, float, list[str]]:
    t = [0.0]
    lines: list[str] = []

    def sleep(s: float) -> None:
        t[0] += s
        bed.round += 1

    snap, took = converge.wait(bed, lines.append, timeout, clock=lambda: t[0], sleep=sleep)  # type: ignore[arg-type]
    return snap, took, lines


def test_converges_when_every_router_is_adjacent_and_the_ted_is_complete() -> None:
    bed = ScriptedBed(
        [
            {"routers": None, "ted": None},
            {"routers": _nbrs("Init"), "ted": []},
            {"routers": _nbrs("Full", "ExStart"), "ted": [1, 2]},
            {"routers": _nbrs("Full", "2-Way"), "ted": [1, 2, 3, 4]},
            {"routers": _nbrs("Full", "2-Way"), "ted": [1, 2, 3, 4, 5]},
        ]
    )
    snap, took, lines = _run(bed)
    assert snap.converged and took == 4.0
    assert snap.routers == 6 and sorted(snap.adjacent) == ["pce", "tn1", "tn2", "tn3", "tn4", "tn5"]
    assert snap.ted_nodes == 5 == snap.ted_want
    # one line per change, the last says converged and ready; each names what is waited for
    assert len(lines) == 6 and lines[5] == "[qk] ready in 4.0 s"
    assert "no CLI yet" in lines[0] and "PCE TED ?/5 nodes" in lines[0]
    assert "neighbours Init" in lines[1] and "+2 more" in lines[1]
    assert "neighbours ExStart" in lines[2] and "PCE TED 2/5" in lines[2]
    assert "6/6 routers adjacent" in lines[3] and "PCE TED 4/5" in lines[3]
    assert lines[4].startswith("[qk] converged after 4.0 s: OSPF: 6/6 routers adjacent")


def test_times_out_with_a_heartbeat_and_says_who_is_waiting() -> None:
    stuck = {"routers": _nbrs("Full"), "tn3": _nbrs("Full", "Loading"), "ted": [1, 2, 3, 4, 5]}
    snap, took, lines = _run(ScriptedBed([stuck]), timeout=25)
    assert not snap.converged and took > 25
    assert snap.waiting == {"tn3": "neighbours Loading"}
    assert snap.as_json()["waiting"] == {"tn3": "neighbours Loading"}
    # nothing changes: the first line, then one every HEARTBEAT seconds
    assert len(lines) == 3 and all("tn3 neighbours Loading" in ln for ln in lines)


def test_a_router_without_neighbours_is_not_adjacent() -> None:
    snap = converge.snapshot(ScriptedBed([{"routers": _nbrs(), "ted": [1, 2, 3, 4, 5]}]))  # type: ignore[arg-type]
    assert not snap.converged and set(snap.waiting.values()) == {"no neighbour yet"}


def test_waits_for_every_pcep_session() -> None:
    """OSPF Full and the TED complete are not enough: every node's PCEP session is up."""
    full = {"routers": _nbrs("Full"), "ted": [1, 2, 3, 4, 5]}
    bed = ScriptedBed([{**full, "pcc": [1, 2]}, {**full, "pcc": [1, 2, 3, 5]}, full])
    snap, took, lines = _run(bed)
    assert snap.converged and took == 2.0 and snap.pcc_up == 5
    assert "PCEP 2/5 sessions up" in lines[0] and "PCEP 4/5 sessions up" in lines[1]


def test_a_dead_daemon_ends_the_wait_at_once_naming_it() -> None:
    dead = {
        "tn3": {
            "kind": "node",
            "daemons": [
                {"name": "node_agent", "running": False, "exit": "killed by SIGKILL", "why": []}
            ],
        }
    }
    bed = ScriptedBed([{"routers": _nbrs("Init"), "ted": [], "status": dead}])
    snap, took, lines = _run(bed, timeout=100)
    assert not snap.converged and took == 0.0
    assert snap.dead == {"tn3": "node_agent killed by SIGKILL: it wrote nothing"}
    assert "DEAD: tn3 (node_agent killed by SIGKILL" in lines[-1]
