"""The namespace backend on the paper topology (needs root).

One testbed (prefix ``ct``) is shared by the read-only checks of this module; tests that
destroy or crash a testbed bring up their own under ``ct1``..``ct9``. Each one tears down
in a ``finally`` and checks that nothing with its prefix is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, NetNS

from compose import daemons, names, nsutil
from compose.backend import TestbedError
from compose.netns import NetnsTestbed, leftovers, teardown
from compose.state import index_dir, indexed
from tests.support.netns_util import wait_for

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
QKDNET = [sys.executable, "-m", "compose.cli"]


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsTestbed]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    teardown("ct", progress=quiet)
    tb = NetnsTestbed(PAPER, tmp_path_factory.mktemp("run-ct"), prefix="ct", progress=quiet)
    try:
        tb.up(start_daemons=False)
        yield tb
    finally:
        tb.down()
    assert leftovers("ct") == []


def qkdnet(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QKDNET, *args], capture_output=True, text=True, check=check, cwd=ROOT, timeout=60
    )


# --- what up builds ---------------------------------------------------------------------


def test_up_builds_namespaces_bridges_and_veths(paper: NetnsTestbed) -> None:
    topo = paper.topology
    assert {f"ct-{h}" for h in topo.hosts} <= set(nsutil.list_netns())
    with IPRoute() as ipr:
        for d in topo.domains:
            (br,) = ipr.get_links(ifname=f"ct-{d}")
            data = br.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
            assert data.get_attr("IFLA_BR_STP_STATE") == 0
            assert data.get_attr("IFLA_BR_FORWARD_DELAY") == 0
            assert data.get_attr("IFLA_BR_MCAST_SNOOPING") == 0
            assert br["flags"] & 1  # IFF_UP
            assert not ipr.get_addr(index=br["index"], family=socket.AF_INET)
        tn1_ctrl = ipr.get_links(ifname="ct-tn1-ctrl")[0]
        ctrl = ipr.get_links(ifname="ct-ctrl")[0]
        assert tn1_ctrl.get_attr("IFLA_MASTER") == ctrl["index"]
    with NetNS("ct-tn1") as ns:
        got = {
            (a.get_attr("IFA_LABEL"), a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in ns.get_addr(family=socket.AF_INET)
        }
        assert got == {("lo", "127.0.0.1", 8), ("ctrl", "10.1.1.1", 24), ("qa", "10.2.1.1", 24)}


def test_state_file_and_index_record_everything(paper: NetnsTestbed) -> None:
    st = json.loads((paper.run_dir / "state.json").read_text())
    assert st["prefix"] == "ct" and st["status"] == "up"
    assert sorted(st["namespaces"]) == sorted(f"ct-{h}" for h in paper.topology.hosts)
    assert sorted(st["bridges"]) == sorted(f"ct-{d}" for d in paper.topology.domains)
    assert len(st["veths"]) == 21  # 17 IP interfaces, the client hosts ha, hb, two access ports
    assert indexed()["ct"] == paper.run_dir / "state.json"


# --- reachability -----------------------------------------------------------------------


def test_control_lan_reaches_every_router(paper: NetnsTestbed) -> None:
    assert paper.ping("tn1", "tn5")
    for h in ("tn2", "tn3", "tn4", "pce", "client"):
        assert paper.ping("tn1", h), h


def test_qkd_side_domains(paper: NetnsTestbed) -> None:
    assert paper.ping("etsiA", "idqA")
    assert paper.ping("etsiB", "idqB")
    assert paper.ping("etsiA", "10.11.1.15")  # sync channel to etsiB
    assert paper.ping("tn1", "10.2.1.11")  # tn1 to its proxy
    assert paper.ping("tn5", "10.2.2.11")


def test_domains_are_isolated(paper: NetnsTestbed) -> None:
    assert not paper.ping("etsiA", "tn2")  # no route at all
    assert not paper.ping("tn1", "idqA")
    # a route does not help: bridges do not leak into each other (ARP for 10.1.1.2 on qa
    # goes unanswered) and tn1, on both ctrl and qa, does not forward
    with NetNS("ct-etsiA") as ns:
        qa = ns.link_lookup(ifname="qa")[0]
        ns.route("add", dst="10.1.1.2/32", oif=qa)
        ns.route("add", dst="10.1.1.3/32", gateway="10.2.1.1")
    try:
        assert not paper.ping("etsiA", "10.1.1.2", timeout=0.5)
        assert not paper.ping("etsiA", "10.1.1.3", timeout=0.5)
    finally:
        with NetNS("ct-etsiA") as ns:
            ns.route("del", dst="10.1.1.2/32", oif=qa)
            ns.route("del", dst="10.1.1.3/32", gateway="10.2.1.1")


def test_ospf_multicast_is_flooded_on_the_control_lan(paper: NetnsTestbed) -> None:
    group, port = "224.0.0.5", 5999
    receivers = {}
    for h in ("tn2", "tn5", "pce"):
        s = paper.socket(h, socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((group, port))
        mreq = socket.inet_aton(group) + socket.inet_aton(paper.address(h))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.settimeout(3)
        receivers[h] = s
    tx = paper.socket("tn1", socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.1.1.1"))
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        tx.sendto(b"all-spf-routers", (group, port))
        for h, s in receivers.items():
            data, src = s.recvfrom(100)
            assert (data, src[0]) == (b"all-spf-routers", "10.1.1.1"), h
    finally:
        tx.close()
        for s in receivers.values():
            s.close()


# --- exec, status -----------------------------------------------------------------------


def test_exec_runs_inside_the_host(paper: NetnsTestbed) -> None:
    out = paper.exec("tn5", ["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
    assert "10.2.2.5/24" in out.stdout and "10.1.1.5/24" in out.stdout
    assert "10.1.1.1/" not in out.stdout
    r = qkdnet("exec", "-p", "ct", "etsiB", "--", "sh", "-c", "ip -o addr; exit 7", check=False)
    assert r.returncode == 7 and "10.11.1.15/24" in r.stdout


def test_popen_process_lives_in_the_namespace(paper: NetnsTestbed) -> None:
    proc = paper.popen("idqB", ["sleep", "30"])
    try:
        assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat("/run/netns/ct-idqB").st_ino
    finally:
        proc.kill()
        proc.wait()


def test_status_json(paper: NetnsTestbed) -> None:
    st = json.loads(qkdnet("status", "-p", "ct", "--json").stdout)
    assert st["prefix"] == "ct" and st["status"] == "up"
    assert st["domains"]["ctrl"]["bridge"] == "ct-ctrl"
    assert st["domains"]["ctrl"]["state"] == "up"
    tn1 = st["hosts"]["tn1"]
    assert tn1["netns_exists"]
    assert tn1["interfaces"]["qa"] == {"address": "10.2.1.1/24", "veth": "ct-tn1-qa", "state": "up"}
    text = qkdnet("status", "-p", "ct").stdout
    assert "ct-etsiA" in text and "10.11.1.11/24" in text


# --- faults -----------------------------------------------------------------------------


def test_link_down_isolates_a_host_and_up_restores_it(paper: NetnsTestbed) -> None:
    assert paper.ping("tn1", "tn3")
    qkdnet("link", "-p", "ct", "tn3", "ctrl", "down")
    try:
        assert not paper.ping("tn1", "tn3", timeout=0.5)
        assert not paper.ping("tn3", "tn5", timeout=0.5)
        assert paper.ping("tn1", "tn5")  # the rest of the LAN is unaffected
        assert paper.status()["hosts"]["tn3"]["interfaces"]["ctrl"]["state"] != "up"
    finally:
        qkdnet("link", "-p", "ct", "tn3", "ctrl", "up")
    assert paper.ping("tn1", "tn3", timeout=2)


def test_impair_total_loss_and_clear(paper: NetnsTestbed) -> None:
    qkdnet("impair", "-p", "ct", "ctrl", "--loss", "100")
    try:
        assert not paper.ping("tn1", "tn5", timeout=0.5, count=2)
        assert not paper.ping("pce", "client", timeout=0.5)
        assert paper.ping("etsiA", "idqA")  # other domains untouched
        table = subprocess.run(
            ["nft", "list", "table", "bridge", "ct_qkdnet"], capture_output=True, text=True
        ).stdout
        assert '"ct-tn1-ctrl"' in table and '"ct-tn1-qa"' not in table
    finally:
        qkdnet("impair", "-p", "ct", "ctrl", "--clear")
    assert paper.ping("tn1", "tn5")
    assert (
        "ct_qkdnet"
        not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    )


def test_impair_partial_loss_rule(paper: NetnsTestbed) -> None:
    paper.impair("ka", loss=25.5)
    try:
        table = subprocess.run(
            ["nft", "list", "table", "bridge", "ct_qkdnet"], capture_output=True, text=True
        ).stdout
        assert "numgen random mod 10000 < 2550" in table
        assert '"ct-etsiA-ka"' in table and '"ct-idqA-ka"' in table
        assert paper.status()["domains"]["ka"]["impairment"] == {"loss": 25.5}
    finally:
        paper.clear_impair("ka")


def test_impair_delay_uses_netem_or_says_it_is_missing(paper: NetnsTestbed) -> None:
    try:
        paper.impair("kb", delay_ms=20, jitter_ms=5)
    except TestbedError as e:
        assert "netem is not available" in str(e)
        assert paper.state.impairments.get("kb", {}) == {}
        r = qkdnet("impair", "-p", "ct", "kb", "--delay", "20", check=False)
        assert r.returncode == 1 and "netem is not available" in r.stderr
        return
    try:
        out = subprocess.run(
            ["tc", "qdisc", "show", "dev", "ct-idqB-kb"], capture_output=True, text=True
        )
        assert "netem" in out.stdout and "delay 20ms" in out.stdout
    finally:
        paper.clear_impair("kb")


# --- daemons (a stand-in daemon, so this does not depend on the real ones) ---------------

FAKE = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
open(sys.argv[1], "w").write(str(os.stat("/proc/self/ns/net").st_ino))
while True:
    time.sleep(1)
"""


def _planned_testbed(
    monkeypatch: pytest.MonkeyPatch, run_dir: Path, prefix: str, plan: Any
) -> tuple[NetnsTestbed, list[str]]:
    """The paper testbed under ``prefix`` (not up yet, nothing left of an earlier run) whose
    daemons ``plan`` decides, and the list its progress lines go to."""
    monkeypatch.setattr(daemons, "plan", plan)
    teardown(prefix, progress=quiet)
    lines: list[str] = []
    return NetnsTestbed(PAPER, run_dir, prefix=prefix, progress=lines.append), lines


def test_daemons_start_stop_start_and_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def plan(topo, host, topo_file, run_dir, generators=None):
        if host.kind != "idq3p":
            return "not in this test"
        marker = run_dir / f"{host.name}.ns"
        argv = [sys.executable, "-c", FAKE, str(marker)]
        return [daemons.Launch("fake", argv, run_dir / f"{host.name}.out", marker)]

    tb, lines = _planned_testbed(monkeypatch, tmp_path, "ct1", plan)
    try:
        tb.up()
        assert any("daemon idqA" in ln and "pid" in ln for ln in lines)
        (d,) = tb.running("idqA")
        marker = tmp_path / "idqA.ns"
        for _ in range(100):
            if marker.exists() and marker.read_text():
                break
            time.sleep(0.05)
        assert int(marker.read_text()) == os.stat("/run/netns/ct1-idqA").st_ino
        assert list(tb.stop("idqA")) == [d.pid]
        assert not nsutil.alive(d.pid)
        assert tb.running("idqA") == []
        (new,) = tb.start("idqA")
        assert new != d.pid and tb.running("idqA")[0].pid == new
        with pytest.raises(TestbedError, match="already running"):
            tb.start("idqA")
        survivors = [x.pid for x in tb.running("idqB")] + [new]
    finally:
        tb.down()
    assert not any(nsutil.alive(p) for p in survivors)
    assert leftovers("ct1") == []


def test_daemon_that_dies_at_once_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def plan(topo, host, topo_file, run_dir, generators=None):
        if host.name != "pce":
            return "not in this test"
        argv = [sys.executable, "-c", "import sys; print('bad flag --frobnicate'); sys.exit(2)"]
        return [daemons.Launch("pce", argv, run_dir / "pce.out", run_dir / "pce.log")]

    tb, lines = _planned_testbed(monkeypatch, tmp_path, "ct2", plan)
    try:
        tb.up()
        assert any(
            "pce" in ln and "exited at once (2): bad flag --frobnicate" in ln for ln in lines
        )
        assert (
            tb.status()["hosts"]["pce"]["note"] == "pce exited with code 2: bad flag --frobnicate"
        )
    finally:
        tb.down()


# --- down: idempotent, after a crash, without a state file ------------------------------


def test_cli_up_down_leaves_nothing_and_down_twice_is_fine(tmp_path: Path) -> None:
    teardown("ct3", progress=quiet)
    try:
        r = qkdnet("up", str(PAPER), "--prefix", "ct3", "--run-dir", str(tmp_path), "--no-daemons")
        assert "[ct3] bridge ct3-ctrl" in r.stdout and "[ct3] up:" in r.stdout
        assert "ct3-tn1" in nsutil.list_netns()
        r = qkdnet("up", str(PAPER), "--prefix", "ct3", "--run-dir", str(tmp_path), check=False)
        assert r.returncode == 1 and "already in use" in r.stderr
    finally:
        r = qkdnet("down", "--prefix", "ct3")
    assert leftovers("ct3") == []
    assert "ct3" not in indexed()
    assert (
        "qkdnet:ct3"
        not in subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    )
    r = qkdnet("down", "--prefix", "ct3")
    assert r.returncode == 0
    # by topology file: the copy in the run dir carries the prefix
    r = qkdnet("down", str(tmp_path / "topology.yaml"))
    assert r.returncode == 0


def test_down_after_kill_9_of_up_midway(tmp_path: Path) -> None:
    teardown("ct4", progress=quiet)
    up = subprocess.Popen(
        [*QKDNET, "up", str(PAPER), "--prefix", "ct4", "--run-dir", str(tmp_path), "--no-daemons"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert up.stdout is not None
        hosts_seen = 0
        for line in up.stdout:
            if "] host " in line:
                hosts_seen += 1
                if hosts_seen == 4:
                    up.send_signal(signal.SIGKILL)
                    break
        up.wait(timeout=10)
        assert up.returncode == -signal.SIGKILL
        assert leftovers("ct4")  # it really was killed midway, with things behind
        st = json.loads((tmp_path / "state.json").read_text())
        assert st["status"] == "building"
    finally:
        r = qkdnet("down", "--prefix", "ct4")
    assert "removed" in r.stdout
    assert leftovers("ct4") == []


def test_down_without_state_file_sweeps_by_prefix(tmp_path: Path) -> None:
    teardown("ct5", progress=quiet)
    tb = NetnsTestbed(PAPER, tmp_path, prefix="ct5", progress=quiet)
    try:
        tb.up(start_daemons=False)
        stray = tb.popen("tn2", ["sleep", "60"], start_new_session=True)
        (tmp_path / "state.json").unlink()
        (index_dir() / "ct5.json").unlink()
        r = qkdnet("down", "--prefix", "ct5")
        assert "other process" in r.stdout
        stray.wait(timeout=5)
        assert stray.returncode == -signal.SIGTERM
    finally:
        teardown("ct5", progress=quiet)
    assert leftovers("ct5") == []


def test_down_never_touches_other_prefixes(paper: NetnsTestbed, tmp_path: Path) -> None:
    teardown("ct6", progress=quiet)  # ct6 is a prefix that shares "ct" as a string prefix
    assert "ct-tn1" in nsutil.list_netns()
    assert leftovers("ct6") == []
    assert paper.ping("tn1", "tn2")


def test_names_of_a_long_host_use_the_hash_form(tmp_path: Path) -> None:
    text = PAPER.read_text().replace("etsiA", "proxyAAA").replace("prefix: qk ", "prefix: ct7 ")
    topo_file = tmp_path / "long.yaml"
    topo_file.write_text(text)
    teardown("ct7", progress=quiet)
    tb = NetnsTestbed(topo_file, tmp_path / "run", progress=quiet)
    assert tb.prefix == "ct7"
    try:
        tb.up(start_daemons=False)
        v = names.veth_name("ct7", "proxyAAA", "sync")
        assert len(v) == 15 and "-" not in v[4:]
        with IPRoute() as ipr:
            assert ipr.link_lookup(ifname=v)
        assert tb.ping("proxyAAA", "10.11.1.15")
    finally:
        tb.down()
    assert leftovers("ct7") == []


LINE_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 23)); s.listen(4)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    f = c.makefile("rwb")
    f.write(b"tn1# "); f.flush()
    for line in f:
        cmd = line.decode().strip()
        if cmd == "exit":
            break
        f.write(f"you are {peer[0]}, you said {cmd}\\r\\n".encode() + b"tn1# "); f.flush()
    c.close()
"""


def test_cli_command_reaches_the_host_cli(paper: NetnsTestbed) -> None:
    server = paper.popen(
        "tn1", [sys.executable, "-c", LINE_SERVER, "10.1.1.1"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "listening\n"
        r = qkdnet("cli", "-p", "ct", "tn1", "show version", "--from", "client")
        assert r.stdout == "you are 10.1.1.100, you said show version\n"
        assert paper.cli("tn1", "show qe-service") == "you are 10.1.1.1, you said show qe-service"
    finally:
        server.kill()
        server.wait()


def test_generated_ring_comes_up(tmp_path: Path) -> None:
    topo = tmp_path / "ring.yaml"
    r = qkdnet("topo", "gen", "ring", "--nodes", "40", "--out", str(topo), "--prefix", "ctr")
    assert "ring of 40 nodes" in r.stdout
    teardown("ctr", progress=quiet)
    tb = NetnsTestbed(topo, tmp_path / "run", progress=quiet)
    try:
        tb.up(start_daemons=False)
        assert len(tb.state.namespaces) == 42
        assert tb.ping("tn1", "tn40") and tb.ping("tn40", "pce")
    finally:
        tb.down()
    assert leftovers("ctr") == []


def test_a_generated_qkd_network_runs(tmp_path: Path) -> None:
    """``topo gen --qkd --qe``: every daemon of the generated QKD network runs and each key
    manager has its links up (docs/topology.md#generated-topologies)."""
    topo = tmp_path / "ringq.yaml"
    qkdnet(
        "topo",
        "gen",
        "ring",
        "--nodes",
        "4",
        "--qkd",
        "--qe",
        "--out",
        str(topo),
        "--prefix",
        "ctq",
    )
    teardown("ctq", progress=quiet)
    tb = NetnsTestbed(topo, tmp_path / "run", progress=quiet)
    try:
        tb.up()
        hosts = tb.status()["hosts"]
        assert len(hosts) == 2 + 4 + 4 + 8 + 2  # and a client host behind each QE end
        for name, h in hosts.items():
            if h["kind"] not in ("client", "host"):  # no daemon
                assert [d["running"] for d in h["daemons"]] == [True], (name, h["note"])

        def links_up(km: str) -> bool:
            rows = json.loads(tb.cli(km, "show qkd links json", via=f"tn{km[2:]}"))
            return len(rows) == 2 and all(r["up"] for r in rows)

        for i in range(1, 5):
            wait_for(partial(links_up, f"km{i}"), 30, f"km{i}'s two QKD links up")
    finally:
        tb.down()
    assert leftovers("ctq") == []


def test_commands_without_a_prefix_use_the_only_testbed_up(tmp_path: Path) -> None:
    """With a private index (``$QKDNET_INDEX``) nothing else is up, so ``status`` and
    ``down`` need no argument; with two testbeds up they refuse to guess."""
    env = {**os.environ, "QKDNET_INDEX": str(tmp_path / "index")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*QKDNET, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
        )

    for p in ("cta", "ctb"):
        teardown(p, progress=quiet)
    try:
        assert (
            run(
                "up", str(PAPER), "-p", "cta", "--run-dir", str(tmp_path / "a"), "--no-daemons"
            ).returncode
            == 0
        )
        assert json.loads(run("status", "--json").stdout)["prefix"] == "cta"
        assert run("exec", "tn1", "--", "true").returncode == 0
        assert (
            run(
                "up", str(PAPER), "-p", "ctb", "--run-dir", str(tmp_path / "b"), "--no-daemons"
            ).returncode
            == 0
        )
        r = run("status")  # issue 18: it used to pick one silently
        assert r.returncode == 1 and "several testbeds are up (cta, ctb)" in r.stderr
        table = run("status", "--all").stdout.splitlines()
        assert table[0].split() == ["PREFIX", "TOPOLOGY", "HOST", "KIND", "ADDRESS", "DAEMON"]
        assert any(ln.split()[:3] == ["ctb", "paper", "tn1"] for ln in table)
        assert any(ln.split()[:3] == ["cta", "paper", "pce"] for ln in table)
        assert "none (never started)" in run("status", "-p", "cta").stdout
        r = run("status", "-p", "ctc")
        assert r.returncode == 1 and "no testbed with prefix 'ctc' is up" in r.stderr
        assert "did you mean ctb or cta?" in r.stderr
        r = run("down")
        assert r.returncode == 1 and "several testbeds are up (cta, ctb)" in r.stderr
        assert run("down", "--all").returncode == 0
        assert run("down").stdout == "no testbed is up\n"
    finally:
        for p in ("cta", "ctb"):
            teardown(p, progress=quiet)
    assert leftovers("cta") == [] and leftovers("ctb") == []
