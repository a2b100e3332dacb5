"""``qkdnet up|status|down --backend docker`` (prefix ``qkv``, its own project): the same
commands as the namespace backend, dispatched by compose/cli.py to compose/docker.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from compose.docker import leftovers, teardown

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
QKDNET = [sys.executable, "-m", "compose.cli"]


def qkdnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QKDNET, *args], capture_output=True, text=True, cwd=ROOT, timeout=180, check=False
    )


def test_up_status_down_through_the_cli(
    image: str, tmp_path: Path, relocate: Callable[..., Path]
) -> None:
    teardown("qkv")
    topo = relocate(ROOT / "topologies" / "paper.yaml", tmp_path, "qkv")
    try:
        up = qkdnet(
            "up", str(topo), "--backend", "docker", "--run-dir", str(tmp_path), "--no-daemons",
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert "up: 13 containers, 6 networks" in up.stdout
        assert (tmp_path / "docker-compose.yml").exists()
        st = qkdnet("status", "--backend", "docker", "--prefix", "qkv", "--json")
        assert st.returncode == 0, st.stderr
        status = json.loads(st.stdout)
        assert status["status"] == "up" and status["project"] == "qkdnet-qkv"
        assert all(h["state"] == "running" for h in status["hosts"].values())
        assert {h["role"] for h in status["hosts"].values()} == {"client", "host", "idle"}
        table = qkdnet("status", "--backend", "docker", "--prefix", "qkv")
        assert "qkv-tn1" in table.stdout and "10.201.1.254" in table.stdout
        down = qkdnet("down", "--backend", "docker", "--prefix", "qkv")
        assert down.returncode == 0, down.stderr
        assert "[qkv] down" in down.stdout
        assert leftovers("qkv") == []
        again = qkdnet("down", "--backend", "docker", "--prefix", "qkv")
        assert again.returncode == 0, again.stderr  # idempotent
    finally:
        teardown("qkv")
    assert leftovers("qkv") == []
