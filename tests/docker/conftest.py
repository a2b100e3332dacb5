"""Fixtures of the Docker tests (marker ``docker``).

``image`` builds ``qkdnet:latest`` once per session with ``make image`` (the base image
first when it is missing; later builds come from Docker's cache). ``paper_docker`` brings
the paper topology up as the Compose project ``qkdtest`` under the prefix ``qkt``
(containers ``qkt-tn1``..., bridges ``qkt_ctrl``...) and always takes it down, checking
that no container, network or firewall rule of ``qkt`` is left.

Docker refuses two networks with overlapping subnets, so the tests run a *relocated* copy
of the paper topology (:func:`relocated`: every 10.B.x.x moves to 10.(B+200).x.x, router IDs
with their addresses; nothing else changes). A user's Docker testbed of the paper topology
may then stay up while the tests run, and neither touches the other.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
PROJECT = "qkdtest"
PREFIX = "qkt"
IMAGE = "qkdnet:latest"


def _move(addr: str, offset: int) -> str:
    a = ipaddress.IPv4Address(addr)
    if a not in ipaddress.IPv4Network("10.0.0.0/8"):
        return addr
    o = a.packed
    return str(ipaddress.IPv4Address(bytes([o[0], o[1] + offset, o[2], o[3]])))


def relocated(topology: Path, dest: Path, prefix: str, offset: int = 200) -> Path:
    """A copy of ``topology`` in ``dest`` with ``prefix`` and every 10.B.x.x address and
    subnet moved to 10.(B+offset).x.x (same file name, so containers mount the same path)."""
    doc: dict[str, Any] = yaml.safe_load(topology.read_text())
    doc["prefix"] = prefix
    for d in doc["domains"].values():
        net = ipaddress.IPv4Network(d["subnet"])
        d["subnet"] = f"{_move(str(net.network_address), offset)}/{net.prefixlen}"
    for h in doc["hosts"].values():
        h["interfaces"] = {k: _move(v, offset) for k, v in h["interfaces"].items()}
        if "router_id" in h:
            h["router_id"] = _move(h["router_id"], offset)
    out = dest / topology.name
    out.write_text(
        f"# {topology.name} relocated by the Docker tests: prefix {prefix}, 10.B -> "
        f"10.(B+{offset})\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    return out


@pytest.fixture(scope="session")
def relocate() -> Callable[..., Path]:
    """:func:`relocated`, for test modules (conftest is not importable from them)."""
    return relocated


def _engine_up() -> bool:
    if shutil.which("docker") is None:
        return False
    r = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    return r.returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not _engine_up():
        pytest.skip("no Docker Engine reachable (docker info failed)")


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """``make image``; returns the image ID."""
    r = subprocess.run(
        ["make", "-s", "image"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=1500
    )
    assert r.returncode == 0, f"make image failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def paper_docker(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from compose.docker import DockerTestbed

    run_dir = tmp_path_factory.mktemp("docker-run")
    topo = relocated(PAPER, run_dir, PREFIX)
    tb = DockerTestbed(topo, project=PROJECT, run_dir=run_dir)
    tb.down()  # whatever a crashed earlier run left
    try:
        tb.up()
        yield tb
    finally:
        tb.down()
    assert tb.leftovers() == []
