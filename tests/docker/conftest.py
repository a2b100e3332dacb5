"""Fixtures of the Docker tests (marker ``docker``).

``image`` builds ``qkdnet:latest`` once per session with ``make image`` (the base image
first when it is missing; later builds come from Docker's cache). ``paper_docker`` brings
the paper topology up as the Compose project ``qkdtest`` under the prefix ``qkt``
(containers ``qkt-tn1``..., bridges ``qkt_ctrl``...), so a user's ``qk`` testbed is never
touched, and always takes it down, checking that no container, network or firewall rule of
``qkt`` is left. A Docker testbed of the paper topology that is already up (any prefix)
makes ``up`` fail, as its subnets are taken.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
PROJECT = "qkdtest"
PREFIX = "qkt"
IMAGE = "qkdnet:latest"


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
    tb = DockerTestbed(PAPER, project=PROJECT, prefix=PREFIX, run_dir=run_dir)
    tb.down()  # whatever a crashed earlier run left
    try:
        tb.up()
        yield tb
    finally:
        tb.down()
    assert tb.leftovers() == []
