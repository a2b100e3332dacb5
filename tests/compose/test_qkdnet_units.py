"""Issue 18's clear errors and probes, without a testbed: the pieces of ``qkdnet`` that
decide what to say (compose/cli.py, compose/probes.py, compose/clients.py,
daemonkit/reach.py) on the paper topology loaded from its file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compose import cli, clients, probes
from compose.backend import TestbedError
from compose.netns import NetnsTestbed
from daemonkit import reach

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
QKDNET = [sys.executable, "-m", "compose.cli"]


@pytest.fixture
def bed(tmp_path: Path) -> NetnsTestbed:
    return NetnsTestbed(PAPER, tmp_path / "run")  # loaded only: nothing is built


def test_unknown_names_get_did_you_mean(bed: NetnsTestbed) -> None:
    with pytest.raises(
        TestbedError, match=r"no host 'tn31' in paper; did you mean tn3 or tn1 or tn5\?"
    ):
        bed.check_host("tn31")
    with pytest.raises(TestbedError, match=r"no domain 'synk' in paper; did you mean sync\?"):
        bed.check_domain("synk")
    with pytest.raises(TestbedError, match=r"neither a host of paper nor an IPv4 address; did"):
        bed.address("tn31")
    assert bed.address("10.9.9.9") == "10.9.9.9" and bed.address("tn5") == "10.1.1.5"


def test_from_a_host_without_the_control_domain_says_so(bed: NetnsTestbed) -> None:
    with pytest.raises(TestbedError, match=r"etsiA has no interface on ctrl \(it is on qa, "):
        bed.check_reach("etsiA", "tn1")
    bed.check_reach("client", "tn1")
    bed.check_reach("tn1", "etsiA")  # etsiA has no ctrl: tn1 reaches it on qa


def test_host_names_become_addresses_after_address_words(bed: NetnsTestbed) -> None:
    got = cli.with_addresses(bed, "qe-service initiate head tn1 dst tn5 key-length 32")
    assert got == "qe-service initiate head 10.1.1.1 dst 10.1.1.5 key-length 32"
    assert cli.with_addresses(bed, "show tn5") == "show tn5"  # only where an address goes


def test_cli_failures_are_found_in_the_answer() -> None:
    assert cli.cli_failure("show bogus", "% Unknown command") == "% Unknown command"
    assert cli.cli_failure("x", "line\n% error: bad key-length") == "% error: bad key-length"
    row = "tn1-1        head  failed      10.1.1.5        -            -  -                   0  "
    assert cli.cli_failure("qe-service create dst 10.1.1.5 wait", "ID ...\n" + row)
    assert cli.cli_failure("show qe-service", "ID ...\n" + row) is None  # a listing is no failure
    assert cli.cli_failure("show version", "qkdnet node_agent") is None

    class Answer(str):
        status = 1

    assert cli.cli_failure("show version", Answer("fine text")) == "the command failed"


def test_pingall_pairs_are_the_hosts_sharing_a_domain(bed: NetnsTestbed) -> None:
    pairs = probes.pairs(bed)
    # ctrl: tn1..tn5, pce, client (21 pairs); qa, qb, ka, kb: 1 each; sync: 1
    assert len(pairs) == 21 + 5
    assert probes.Pair("sync", "etsiA", "etsiB") in pairs
    assert all(p.domain != "ctrl" or "etsi" not in p.a + p.b for p in pairs)
    assert len(probes.pairs(bed, "ctrl")) == 21


def test_ping_summary_reads_like_iputils() -> None:
    text = probes.summary("tn5", "10.1.1.5", [1.0, None, 3.0, None])
    assert "4 packets transmitted, 2 received, 50% packet loss" in text
    assert "rtt min/avg/max = 1.000/2.000/3.000 ms" in text


def test_etsi_and_pcc_fill_in_the_addresses(bed: NetnsTestbed) -> None:
    where, argv = clients.etsi_argv(bed, "tn1", ["open", "--destination", "tn5"])
    assert where == "tn1"
    assert argv[1:] == [
        "-m",
        "qkd_proxy.client",
        "--proxy",
        "10.2.1.11",
        "open",
        "--destination",
        "10.1.1.5",
    ]
    where, argv = clients.pcc_argv(bed, "tn1", ["--dst=tn5", "--qe"])
    assert where == "client"  # tn1's own PCEP session holds its one session per peer
    assert argv[1:] == [
        "-m",
        "pce.client",
        "--pce",
        "10.1.1.200",
        "--src",
        "10.1.1.1",
        "--dst=10.1.1.5",
        "--qe",
    ]
    with pytest.raises(TestbedError, match="tn3 has no ETSI 004 proxy"):
        clients.etsi_argv(bed, "tn3", ["links"])


ROUTE_TABLE = """Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
ctrl\t0001010A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_reach_tells_a_local_network_from_the_default_route() -> None:
    assert reach.not_local("10.1.1.200", ROUTE_TABLE) is None
    why = reach.not_local("10.2.1.11", ROUTE_TABLE)
    assert why is not None and "only the default route (via 192.0.2.1 on eth0)" in why
    assert reach.not_local("10.2.1.11", ROUTE_TABLE.splitlines()[0]) is not None
    assert reach.not_local("127.0.0.1", "") is None


def _qkdnet(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QKDNET, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def test_topo_validate_and_gen_force(tmp_path: Path) -> None:
    ok = _qkdnet("topo", "validate", str(PAPER))
    assert ok.returncode == 0 and "OK: topology paper, prefix qk, 13 hosts" in ok.stdout
    bad = tmp_path / "bad.yaml"
    text = PAPER.read_text().replace("kind: pce", "kind: nod").replace("10.1.1.5/", "10.1.1/")
    bad.write_text(text.replace("    kind: idq3p", "    kind: idq3", 1))
    r = _qkdnet("topo", "validate", str(bad))
    assert r.returncode == 1
    assert (
        "hosts.pce.kind: 'nod' is not a host kind" in r.stderr and "did you mean node?" in r.stderr
    )
    assert "did you mean idq3p?" in r.stderr and "None" not in r.stderr
    assert r.stderr.strip().endswith("2 problems")
    out = tmp_path / "ring.yaml"
    assert _qkdnet("topo", "gen", "ring", "--nodes", "4", "--out", str(out)).returncode == 0
    again = _qkdnet("topo", "gen", "ring", "--nodes", "5", "--out", str(out))
    assert again.returncode == 1 and "exists; --force overwrites it" in again.stderr
    assert "4 nodes" not in out.read_text() or "tn5" not in out.read_text()
    forced = _qkdnet("topo", "gen", "ring", "--nodes", "5", "--out", str(out), "--force")
    assert forced.returncode == 0 and "tn5" in out.read_text()


def test_a_closed_pipe_ends_quietly() -> None:
    """``qkdnet ... | head``: no BrokenPipeError traceback (issue 18)."""
    r = subprocess.run(
        f"{sys.executable} -m compose.cli --help | head -1; "
        f"{sys.executable} -m compose.cli topo validate {PAPER} | true",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "Traceback" not in r.stderr and "Broken pipe" not in r.stderr, r.stderr


def test_impair_clear_with_loss_is_refused(monkeypatch: pytest.MonkeyPatch, bed: Any) -> None:
    monkeypatch.setattr(cli, "_select", lambda args: bed)
    args = cli.build_parser().parse_args(["impair", "sync", "--loss", "20", "--clear"])
    with pytest.raises(TestbedError, match="--clear removes every impairment: it takes no --loss"):
        cli.cmd_impair(args)
