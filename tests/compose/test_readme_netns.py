"""README.md's "Playing with a running testbed", run verbatim (issue 18): every command
of its console block in order, from the repository root with ``.venv/bin`` first on the
PATH, each must exit 0; after ``qe-service create ... wait`` the service is up at both
ends. The same bring-up then checks what the issue found missing on a live testbed:
``ping`` with RTT and loss, ``pingall``, a CLI error's exit status, a killed daemon's
reason in ``status`` and ``cli``, and the PCE's NO-PATH while the TED is incomplete is
covered by tests/pce/test_service.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compose.backend import quiet
from compose.netns import teardown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
pytestmark = pytest.mark.netns


def readme_commands() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Playing with a running testbed") :]
    start = section.index("```console\n") + len("```console\n")
    block = section[start : section.index("\n```", start)]
    return [ln[2:] for ln in block.splitlines() if ln.startswith("$ ")]


def _bash(cmd: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


def test_the_readme_sequence_runs_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "QKDNET_INDEX": str(tmp_path / "index"),  # only this testbed is up, as for a user
    }
    cmds = readme_commands()
    assert (
        cmds[0].startswith("qkdnet up topologies/paper.yaml --wait") and cmds[-1] == "qkdnet down"
    )
    teardown("qk", progress=quiet)
    outputs: dict[str, str] = {}
    try:
        for cmd in cmds:
            if cmd == "qkdnet stop tn3":  # before the README's faults: the findings
                _live_checks(env)
            r = _bash(cmd, env)
            assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
            outputs[cmd] = r.stdout
            if cmd.startswith("qkdnet up"):
                assert re.search(r"\[qk\] ready in [\d.]+ s", r.stdout), r.stdout
    finally:
        _bash("qkdnet down", env)
        teardown("qk", progress=quiet)
    create = next(c for c in cmds if "qe-service create" in c)
    assert re.search(r"\bhead\s+up\b", outputs[create]), outputs[create]
    shown = outputs["qkdnet cli tn5 show qe-service"]
    assert re.search(r"\btail\s+up\b", shown), shown
    assert "0% packet loss" in outputs["qkdnet ping tn1 tn5"]
    assert "*** Results: 0% dropped" in outputs["qkdnet pingall"]


def _live_checks(env: dict[str, str]) -> None:
    """On the README's testbed, before its faults: the issue's findings. Ends with tn3's
    daemon killed, which the README's `qkdnet stop tn3` / `start tn3` then restart."""
    r = _bash("qkdnet cli tn1 show bogus", env)
    assert r.returncode == 1 and "%" in r.stdout + r.stderr
    r = _bash("qkdnet ping tn1 tn31", env)
    assert r.returncode == 1 and "did you mean" in r.stderr and "inet_aton" not in r.stderr
    r = _bash("qkdnet cli tn1 show version --from etsiA", env)
    assert r.returncode == 1 and "etsiA has no interface on ctrl" in r.stderr
    r = _bash("qkdnet status | head -1", env)
    assert r.returncode == 0 and "Traceback" not in r.stderr and "Broken pipe" not in r.stderr
    r = _bash("qkdnet status --all", env)
    assert r.returncode == 0 and re.search(
        r"^qk\s+paper\s+tn1\s+node\s+10\.1\.1\.1/24", r.stdout, re.M
    )
    # a killed daemon: status and cli say why and how to restart it
    pid = _bash(
        "qkdnet status --json | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)["hosts"]["tn3"]["daemons"][0]["pid"])\'',
        env,
    )
    os.kill(int(pid.stdout), 9)
    r = _bash("qkdnet status", env)
    assert "tn3: node_agent (pid" in r.stdout and "is dead" in r.stdout, r.stdout
    assert "restart: qkdnet start tn3 -p qk" in r.stdout
    r = _bash("qkdnet cli tn3 show version", env)
    assert r.returncode == 1 and "tn3's node_agent is dead" in r.stderr, r.stderr
    assert "restart it: qkdnet start tn3 -p qk" in r.stderr
