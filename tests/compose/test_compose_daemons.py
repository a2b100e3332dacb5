"""The kind -> daemon table, the FRR/BIRD config hook, and FRR + BIRD in namespaces."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from compose import daemons
from compose.daemons import Launch, plan
from compose.netns import NetnsTestbed
from gmpls.topology import Host, Topology, load

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"


@pytest.fixture
def paper() -> Topology:
    return load(PAPER)


def launches(x: list[Launch] | str) -> list[Launch]:
    assert isinstance(x, list), x
    return x


def as_kind(t: Topology, name: str, kind: str) -> Host:
    return dataclasses.replace(t.hosts[name], kind=kind)


@pytest.mark.parametrize(
    ("host", "package", "secret"),
    [
        ("tn1", "node_agent", ["--access-if", "access"]),  # tn1's access domain ea
        ("tn3", "node_agent", []),
        ("pce", "pce", []),
        (
            "etsiA",
            "qkd_proxy",
            ["--sync-key-file", "secrets/etsiA-etsiB.sync", "--pki-dir", "pki"],
        ),
        ("idqB", "idq3p_emulator", ["--seed-file", "secrets/idqA-idqB.seed"]),
    ],
)
def test_python_kinds(
    paper: Topology, tmp_path: Path, host: str, package: str, secret: list[str]
) -> None:
    """Emulators and proxies get their pair's secret file in the run directory."""
    (launch,) = launches(plan(paper, paper.hosts[host], PAPER, tmp_path))
    secret = [x if x.startswith("--") or x == "access" else str(tmp_path / x) for x in secret]
    assert launch.argv == [
        sys.executable,
        "-m",
        package,
        "--topology",
        str(PAPER),
        "--host",
        host,
        "--log-file",
        str(tmp_path / f"{host}.log"),
        *secret,
    ]
    assert launch.out == tmp_path / f"{host}.out"


def test_client_hosts_run_no_daemon(paper: Topology, tmp_path: Path) -> None:
    assert plan(paper, paper.hosts["client"], PAPER, tmp_path) == "client hosts run no daemon"
    assert plan(paper, paper.hosts["ha"], PAPER, tmp_path) == (
        "client hosts of an access domain run no daemon"
    )


def test_frr_plan_and_config_hook(paper: Topology, tmp_path: Path) -> None:
    paper = dataclasses.replace(paper, prefix="ct0")  # its runtime dir is /run/qkdnet/ct0
    h = as_kind(paper, "tn2", "frr")
    calls = []

    def custom(t: Topology, host: Host, workdir: Path) -> dict[str, str]:
        calls.append(host.name)
        return {"zebra.conf": "hostname custom\n", "ospfd.conf": "! from the hook\n"}

    zebra, ospfd = launches(plan(paper, h, PAPER, tmp_path, {"frr": custom}))
    assert calls == ["tn2"]
    rt = daemons.frr_runtime_dir("ct0", "tn2")
    try:
        assert (rt / "ospfd.conf").read_text() == "! from the hook\n"
        assert (tmp_path / "frr-tn2").resolve() == rt.resolve()
        assert zebra.argv[0].endswith("/zebra") and ospfd.wait_for == rt / "zserv.api"
        assert ["-z", str(rt / "zserv.api")] == ospfd.argv[5:7]
        # the run directory of a testbed brought up again: the last teardown copied the
        # runtime directory in where the link goes (its logs); the new plan replaces it
        (tmp_path / "frr-tn2").unlink()
        (tmp_path / "frr-tn2").mkdir()
        (tmp_path / "frr-tn2" / "ospfd.log").write_text("the last run\n")
        launches(plan(paper, h, PAPER, tmp_path, {"frr": custom}))
        assert (tmp_path / "frr-tn2").resolve() == rt.resolve()
    finally:
        shutil.rmtree(rt.parent, ignore_errors=True)


def test_builtin_frr_config(paper: Topology, tmp_path: Path) -> None:
    files = daemons.frr_config(paper, as_kind(paper, "tn2", "frr"), tmp_path)
    ospfd = files["ospfd.conf"]
    assert " ospf router-id 10.1.1.2" in ospfd
    assert " network 10.1.1.0/24 area 0.0.0.0" in ospfd
    assert " ip ospf hello-interval 1" in ospfd and " ip ospf dead-interval 4" in ospfd
    assert " capability opaque" in ospfd and " router-info area" in ospfd
    assert " timers throttle spf 50 200 5000" in ospfd  # the topology's SPF throttling
    assert "passive-interface" not in ospfd  # tn2 has the control LAN only


def test_builtin_configs_make_the_other_domains_stubs(paper: Topology, tmp_path: Path) -> None:
    """tn1 is also on qa: a passive stub network for FRR, a stub interface for BIRD."""
    h = as_kind(paper, "tn1", "frr")
    files = daemons.frr_config(paper, h, tmp_path, link_params=["metric 20"])
    assert " network 10.2.1.0/24 area 0.0.0.0" in files["ospfd.conf"]
    assert " passive-interface qa" in files["ospfd.conf"]
    assert "  enable\n  metric 20\n exit-link-params" in files["zebra.conf"]
    bird = daemons.bird_config(paper, h, tmp_path)["bird.conf"]
    assert 'interface "qa" { stub yes; };' in bird and 'interface "ctrl" {' in bird


@pytest.mark.interop
def test_generated_configs_pass_the_daemons_own_check(paper: Topology, tmp_path: Path) -> None:
    h = as_kind(paper, "tn1", "frr")  # with a stub domain (qa) and link parameters
    for name, text in {
        **daemons.frr_config(paper, h, tmp_path, link_params=["metric 20", "admin-grp 0x1"]),
        **daemons.bird_config(paper, h, tmp_path),
    }.items():
        (tmp_path / name).write_text(text)
    tmp_path.chmod(0o755)
    for d in ("zebra", "ospfd"):
        r = subprocess.run(
            [
                f"/usr/lib/frr/{d}",
                "-C",
                "-f",
                str(tmp_path / f"{d}.conf"),
                "-i",
                str(tmp_path / f"{d}.pid"),
                "--vty_socket",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    r = subprocess.run(
        ["bird", "-p", "-c", str(tmp_path / "bird.conf")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


OSPF3 = """\
name: ospf3
prefix: ct9
domains:
  ctrl: {subnet: 10.1.1.0/24}
ospf: {hello_interval: 1, dead_interval: 4}
hosts:
  r1: {kind: frr, router_id: 10.1.1.1, interfaces: {ctrl: 10.1.1.1}}
  r2: {kind: frr, router_id: 10.1.1.2, interfaces: {ctrl: 10.1.1.2}}
  r3: {kind: bird, router_id: 10.1.1.3, interfaces: {ctrl: 10.1.1.3}}
"""


def _output_until(tb: NetnsTestbed, host: str, argv: list[str], done: Callable[[str], bool]) -> str:
    """What ``argv`` prints in ``host``, run every 0.5 s (60 times at most) until ``done``."""
    out = ""
    for _ in range(60):
        out = tb.exec(host, argv, capture_output=True, text=True).stdout
        if done(out):
            break
        time.sleep(0.5)
    return out


@pytest.mark.netns
@pytest.mark.interop
@pytest.mark.slow
def test_frr_and_bird_hosts_form_ospf_adjacencies(
    testbed_factory: Callable[..., NetnsTestbed], tmp_path: Path
) -> None:
    topo = tmp_path / "ospf3.yaml"
    topo.write_text(OSPF3)
    tb = testbed_factory(topo, prefix="ct9")
    assert [d.name for d in tb.running("r1")] == ["zebra", "ospfd"]
    assert [d.name for d in tb.running("r3")] == ["bird"]
    vty = str(daemons.frr_runtime_dir("ct9", "r1"))
    # adjacencies need the 4 s wait timer, then the exchange
    ospf = ["vtysh", "--vty_socket", vty, "-c", "show ip ospf neighbor"]
    out = _output_until(tb, "r1", ospf, lambda text: text.count("Full/") == 2)
    assert "10.1.1.2" in out and "10.1.1.3" in out and out.count("Full/") == 2, out
    # BIRD's view may still be exchanging with the other FRR router
    birdc = ["birdc", "-s", str(tb.run_dir / "bird-r3" / "bird.ctl"), "show", "ospf", "neighbors"]
    bird = _output_until(tb, "r3", birdc, lambda text: text.count("Full/") == 2)
    assert bird.count("Full/") == 2, bird
