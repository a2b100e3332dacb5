"""``qkdnet up --wait --json`` and ``qkdnet wait`` on the paper topology in namespaces
(prefix ``cw``): quiet and one JSON object with ``--json``, progress lines without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compose.netns import leftovers, teardown

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
QKDNET = [sys.executable, "-m", "compose.cli"]


def qkdnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QKDNET, *args], capture_output=True, text=True, check=False, cwd=ROOT, timeout=180
    )


def test_up_wait_json_is_one_object_and_wait_prints_progress(tmp_path: Path) -> None:
    teardown("cw")
    try:
        up = qkdnet("up", str(PAPER), "--prefix", "cw", "--run-dir", str(tmp_path), "--wait",
                    "90", "--json")  # fmt: skip
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        out = json.loads(up.stdout)  # nothing but the object: no progress line
        assert out["prefix"] == "cw" and out["up"] is True
        conv = out["converge"]
        assert conv["converged"] is True and conv["waiting"] == {}
        assert conv["routers"] == 6 and len(conv["adjacent"]) == 6
        assert conv["ted_nodes"] == conv["ted_want"] == 5
        again = qkdnet("wait", "--prefix", "cw", "--timeout", "30")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("[cw] converged after ")
        assert "OSPF: 6/6 routers adjacent; PCE TED 5/5 nodes" in again.stdout
    finally:
        qkdnet("down", "--prefix", "cw")
    assert leftovers("cw") == []
