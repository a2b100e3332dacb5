"""The paper's workflow in Docker (``make docker-e2e``): the namespace end-to-end proof,
against the containers.

``qkdnet demo TOPOLOGY --backend docker --json --keep --capture DIR`` brings the project
up (captures from tcpdump inside the containers), has the client container telnet to tn1
and create the QE service with the paper's parameters, and prints the JSON of issue 6.
The ladder must be Fig. 6's and both fingerprints equal. Then tn3 is killed (``docker
kill``): tn1 must notice, and a new service must go over the bypass tn2:3-tn4:1. The
project is always taken down.

The topology is the paper's relocated to 10.20x.x.x with prefix ``qkt`` (see conftest), so
that a user's Docker testbed of the paper topology may stay up meanwhile; the expected
ladder and paths are the paper's, moved the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from compose.docker import DockerTestbed, leftovers, teardown

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
QKDNET = [sys.executable, "-m", "compose.cli"]
PREFIX = "qkt"
PARAMS = "key-length 32 layer 2 algorithm 10 refresh time 1000"


@pytest.fixture(scope="module")
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Path, DockerTestbed]]:
    request.getfixturevalue("image")  # built (or found in the cache) only when needed
    relocate: Callable[..., Path] = request.getfixturevalue("relocate")
    run_dir = tmp_path_factory.mktemp("docker-demo")
    topo = relocate(PAPER, run_dir, PREFIX)
    captures = run_dir / "captures"
    opts = ["--json", "--keep", "--capture", str(captures)]
    teardown(PREFIX)
    try:
        r = subprocess.run(
            [*QKDNET, "demo", str(topo), "--backend", "docker", "--run-dir", str(run_dir), *opts],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
        assert r.returncode == 0, f"demo failed:\n{r.stdout[-3000:]}\n{r.stderr[-4000:]}"
        yield json.loads(r.stdout), captures, DockerTestbed.attach(PREFIX)
    finally:
        down = subprocess.run(
            [*QKDNET, "down", "--backend", "docker", "--prefix", PREFIX],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=180,
        )
        assert down.returncode == 0, down.stderr
        assert leftovers(PREFIX) == []


def _addr(tb: DockerTestbed, *hosts: str) -> list[str]:
    return [tb.address(h) for h in hosts]


def test_ladder_is_the_papers(demo: tuple[dict[str, Any], Path, DockerTestbed]) -> None:
    result, _, tb = demo
    t1, t2, t3, t4, t5, pce = _addr(tb, "tn1", "tn2", "tn3", "tn4", "tn5", "pce")
    expected = [
        (t1, pce, "PCReq"),
        (pce, t1, "PCRep"),
        *[(a, b, "Path") for a, b in ((t1, t2), (t2, t3), (t3, t4), (t4, t5))],
        *[(a, b, "Resv") for a, b in ((t5, t4), (t4, t3), (t3, t2), (t2, t1))],
    ]
    rungs = [
        (r["src"], r["dst"], r["msg"])
        for r in result["ladder"]
        if r["msg"] in ("PCReq", "PCRep", "Path", "Resv")
    ]
    assert rungs == expected
    assert result["path"] == [t1, t2, t3, t4, t5]
    assert result["setup_ms"] is not None and result["setup_ms"] > 0
    assert result["malformed_frames"] == []


def test_fingerprints_are_equal_at_both_ends(
    demo: tuple[dict[str, Any], Path, DockerTestbed],
) -> None:
    result, _, _ = demo
    fp = result["fingerprints"]
    assert set(fp) == {"tn1", "tn5"}
    assert fp["tn1"] is not None and len(fp["tn1"]) == 16 and fp["tn1"] == fp["tn5"]


def test_captures_came_from_the_containers(
    demo: tuple[dict[str, Any], Path, DockerTestbed],
) -> None:
    result, captures, tb = demo
    assert set(result["captures"]) == set(tb.topology.domains)
    for path in result["captures"].values():
        assert Path(path).parent == captures.resolve()
    assert (captures / "ctrl.pcap").stat().st_size > 24
    assert (captures / "qa.pcap").stat().st_size > 24  # tn1 asked etsiA for the key


def _cli_json(tb: DockerTestbed, host: str, command: str, timeout: float = 15) -> Any:
    return json.loads(tb.cli(host, f"{command} json", via="client", timeout=timeout))


def _until(what: str, fn: Callable[[], Any], seconds: float) -> Any:
    """Poll ``fn`` until it returns something true; the bound only ends a hopeless wait."""
    deadline = time.monotonic() + seconds
    while not (got := fn()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.5)
    return got


def _service_summary(s: dict[str, Any]) -> str:
    """What a failed assertion on a service prints: its state, error and code first."""
    return (
        f"state {s.get('state')!r}, error {s.get('error')!r}, code {s.get('code')!r}, "
        f"path {s.get('path')}; the service: {s}"
    )


def _ted_nodes(tb: DockerTestbed) -> list[str]:
    return [n["router_id"] for n in _cli_json(tb, "pce", "show ted")["nodes"]]


def test_kill_tn3_then_a_new_service_takes_the_bypass(
    demo: tuple[dict[str, Any], Path, DockerTestbed],
) -> None:
    """docs/qe-service.md#a-node-dies: the user waits until tn1 reports the service failed
    and the PCE's ``show ted`` no longer lists tn3; a new service then takes the bypass at
    the first attempt, whichever router was the control LAN's DR (tests/e2e/
    test_tn3_failover.py repeats this in memory with tn3 as DR, BDR and DROther)."""
    _, _, tb = demo
    t1, t2, t3, t4, t5 = _addr(tb, "tn1", "tn2", "tn3", "tn4", "tn5")
    create = f"qe-service create dst {t5} {PARAMS} wait"
    s = _cli_json(tb, "tn1", create, timeout=40)["services"][0]
    assert s["state"] == "up" and s["path"] == [t1, t2, t3, t4, t5], _service_summary(s)
    tb.kill("tn3")  # docker kill: no PathTear, no OSPF goodbye
    gone = _until(
        "tn1 notices tn3's death",
        lambda: next(
            (
                x
                for x in _cli_json(tb, "tn1", "show qe-service")["services"]
                if x["id"] == s["id"] and x["state"] != "up"
            ),
            None,
        ),
        30,
    )
    assert gone["state"] == "failed", _service_summary(gone)
    _until("the PCE's TED drops tn3 (OSPF dead interval)", lambda: t3 not in _ted_nodes(tb), 40)
    s2 = _cli_json(tb, "tn1", create, timeout=40)["services"][0]
    assert s2["state"] == "up" and s2["path"] == [t1, t2, t4, t5], (
        f"{_service_summary(s2)}; the PCE's TED now: {_ted_nodes(tb)}"
    )
    tails = _cli_json(tb, "tn5", "show qe-service")["services"]
    (tail,) = [t for t in tails if t["key_handle_prefix"] == s2["key_handle_prefix"]]
    assert tail["fingerprint"] == s2["fingerprint"]
