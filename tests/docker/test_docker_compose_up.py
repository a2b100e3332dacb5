"""``docker-compose up -d`` alone, with the checked-in file, and the README's Docker section.

Both run the paper topology under its own prefix ``qk`` (the checked-in file is used as it
is), so they skip when a Docker testbed ``qk`` is up already, and each takes down what it
started, checking that no container, network, volume, firewall rule or secret is left.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compose import demo
from compose.docker import DockerTestbed, compose_env, leftovers, running_prefixes

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "qk"
QKDNET = [sys.executable, "-m", "compose.cli"]


def _composes() -> list[list[str]]:
    found = []
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if r.returncode == 0:
            found.append(["docker", "compose"])
    return found


@pytest.fixture
def free_prefix(image: str) -> Iterator[None]:
    if PREFIX in running_prefixes():
        pytest.skip(f"a Docker testbed with prefix {PREFIX} is up")
    yield
    DockerTestbed.remove(PREFIX)  # only if the test failed half-way


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``argv`` as a user runs it: without a PYTHONPATH (Debian's docker-compose could not
    run with this checkout on it, compose.docker.compose_env)."""
    r = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout,
        env=compose_env(),
    )  # fmt: skip
    assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _nothing_left(project: str, secrets: Path) -> None:
    assert leftovers(PREFIX) == []
    r = _run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        ROOT,
    )
    assert r.stdout.strip() == ""
    r = _run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"], ROOT
    )
    assert r.stdout.strip() == ""
    assert not secrets.exists() or list(secrets.iterdir()) == []


def _ospf_full_at_tn1(bed: DockerTestbed, timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        full = {
            str(ev.get("peer"))
            for ev in map(_json, bed.logs("tn1").splitlines())
            if ev.get("event") == "ospf_neighbor" and ev.get("new") == "FULL"
        }
        if full or time.monotonic() > deadline:
            return full
        time.sleep(1)


def _json(line: str) -> dict:
    try:
        d = json.loads(line)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


@pytest.mark.parametrize("compose", _composes(), ids=" ".join)
def test_compose_up_alone_gives_a_working_testbed_and_down_leaves_nothing(
    compose: list[str], free_prefix: None, tmp_path: Path
) -> None:
    """A copy of the checked-in docker-compose.yml and the topology, and nothing else: `up
    -d` -> fresh secrets (0600), OSPF FULL, the PCE's TED complete, a QE service up with
    equal keys at both ends, found by `qkdnet` through the containers' labels (`qkdnet cli
    --backend docker` reaches tn1's CLI and shows it Full); `down` ->
    no container, network, volume, DOCKER-USER rule or secret file is left."""
    work = tmp_path / "checkout"
    (work / "topologies").mkdir(parents=True)
    shutil.copy(ROOT / "docker-compose.yml", work)
    shutil.copy(ROOT / "topologies" / "paper.yaml", work / "topologies")
    project = "qkdnetcu"
    secrets = work / "secrets"
    _run([*compose, "-p", project, "up", "-d"], work)
    try:
        files = sorted(p.name for p in secrets.iterdir() if p.is_file())
        assert files == ["etsiA-etsiB.sync", "idqA-idqB.seed"]
        for f in secrets.iterdir():
            if f.is_file():
                assert stat.S_IMODE(f.stat().st_mode) == 0o600 and f.stat().st_size == 32
        # the ETSI 014 PKI beside them (compose/pki.py): its private keys 0600
        assert stat.S_IMODE((secrets / "pki" / "etsiA.key").stat().st_mode) == 0o600
        bed = DockerTestbed.attach(PREFIX)
        assert bed.project == project and bed.compose_file == (work / "docker-compose.yml")
        assert bed.status()["status"] == "up" and len(bed.status()["firewall"]) == 8
        roles = demo.Roles.of(bed.topology)
        ted = demo.wait_for_control_plane(bed, roles, lambda _: None, timeout=90)
        assert len(ted["nodes"]) == 5
        assert _ospf_full_at_tn1(bed), bed.logs("tn1")[-2000:]
        svc = demo.create_service(bed, roles, lambda _: None)
        assert svc["state"] == "up"
        tail = demo.tail_service(bed, roles, svc)
        assert tail is not None
        assert demo.fingerprint_at(svc, 0) == demo.fingerprint_at(tail, 0) is not None
        # the qkdnet command attaches to it too: tn1's CLI, through the client container
        cli = _run([*QKDNET, "cli", "--backend", "docker", "-p", PREFIX, "tn1",
                    "show", "ip", "ospf", "neighbor", "json"], ROOT)  # fmt: skip
        states = {r: e[0]["nbrState"] for r, e in json.loads(cli.stdout)["neighbors"].items()}
        assert "Full" in {st.split("/")[0] for st in states.values()}, states
    finally:
        _run([*compose, "-p", project, "down"], work)
    _nothing_left(project, secrets)


def test_qkdnet_down_takes_down_what_compose_started(free_prefix: None, tmp_path: Path) -> None:
    """`docker-compose up -d` from a copy of the checked-in file, then `qkdnet down
    --backend docker` (not Compose): it finds the project by the containers' labels and
    leaves no container, network, volume, DOCKER-USER rule or secret file."""
    work = tmp_path / "checkout"
    (work / "topologies").mkdir(parents=True)
    shutil.copy(ROOT / "docker-compose.yml", work)
    shutil.copy(ROOT / "topologies" / "paper.yaml", work / "topologies")
    project = "qkdnetqd"
    _run(["docker-compose", "-p", project, "up", "-d"], work)
    try:
        assert PREFIX in running_prefixes()
        down = _run([*QKDNET, "down", "--backend", "docker", "-p", PREFIX], ROOT)
        assert PREFIX not in running_prefixes(), down.stdout + down.stderr
        _nothing_left(project, work / "secrets")
    finally:
        _run(["docker-compose", "-p", project, "down"], work)  # idempotent


def _readme_docker_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```console\n(.*?)```", section, re.S)
    lines = [ln[2:] for ln in block.splitlines() if ln.startswith("$ ")]
    return [ln.split("  #")[0].strip() for ln in lines]


def test_readme_docker_section_works_as_written(free_prefix: None, tmp_path: Path) -> None:
    """From a clean clone of the committed checkout, every command of the README's Docker
    block, as written, in order: all succeed, the demo's keys match, and nothing is left."""
    cmds = _readme_docker_commands()
    assert cmds[0] == "make image" and cmds[-1].startswith("docker-compose down")
    clone = tmp_path / "qkdnet"
    _run(["git", "clone", "-q", str(ROOT), str(clone)], tmp_path)
    outputs = {}
    try:
        for cmd in cmds:
            outputs[cmd] = _run(["bash", "-c", cmd], clone, timeout=1500).stdout
    finally:
        subprocess.run(
            ["docker-compose", "down"], cwd=clone, capture_output=True, check=False,
            env=compose_env(),
        )  # fmt: skip
    demo_out = next(v for k, v in outputs.items() if " demo " in k)
    assert "keys match at both ends" in demo_out
    wait_out = next(v for k, v in outputs.items() if " wait " in k)
    assert "[qk] converged after" in wait_out and "6/6 routers adjacent" in wait_out
    status_out = next(v for k, v in outputs.items() if " status " in k)
    assert f"prefix {PREFIX}: up" in status_out
    _nothing_left(clone.name, clone / "secrets")
