"""Pack mode (``qkdnet up --pack N``) speaks the same protocols: the paper topology with FRR
ospfd beside it on the control LAN (``fr1``), its ten Python daemons in three processes of
at most four daemons each (prefix ``pk``), captured on every domain from the first packet.

Checked: no Python daemon runs in a host's namespace (the packs run in the root namespace
and open their sockets in the hosts'), FRR is Full with the DR and BDR and holds the same
LSDB as tn1, the paper's QE service comes up with equal keys at both ends over five
refreshes, tshark finds nothing malformed on the control LAN, and one packed daemon can be
stopped and started again while the rest of its pack runs on.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from compose import nsutil
from tests.support import tshark
from tests.support.e2elab import PAPER, Lab, private_index, restore_index, start_lab, stop_lab
from tests.support.frr import frr_nbrs, lsdb_frr, lsdb_ours

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PACK = 4
PYTHON_HOSTS = ["tn1", "tn2", "tn3", "tn4", "tn5", "pce", "etsiA", "etsiB", "idqA", "idqB"]


def _topology(out: Path) -> Path:
    """paper.yaml with FRR ospfd as ``fr1`` (10.1.1.60, priority 0) on the control LAN."""
    doc = yaml.safe_load(PAPER.read_text())
    doc["hosts"]["fr1"] = {
        "kind": "frr",
        "router_id": "10.1.1.60",
        "interfaces": {"ctrl": "10.1.1.60"},
        "ospf_priority": 0,
    }
    path = out / "paper-frr.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    assert shutil.which("vtysh") and shutil.which("tshark"), "make setup installs FRR, tshark"
    run = tmp_path_factory.mktemp("pk-run")
    old = private_index(run)
    try:
        lab = start_lab(_topology(run), "pk", run, pack=PACK)
        try:
            yield lab
        finally:
            stop_lab(lab)
    finally:
        restore_index(old)


def _until(what: str, cond: Any, timeout: float, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {v!r})")
        time.sleep(step)


def test_the_python_daemons_run_in_packs_outside_the_hosts_namespaces(lab: Lab) -> None:
    st = lab.tb.state
    assert sorted(st.packed) == sorted(PYTHON_HOSTS)
    assert [p.name for p in st.packs] == ["pack-0", "pack-1", "pack-2"]
    pids = {h: [d.pid for d in st.daemons[h]] for h in PYTHON_HOSTS}
    assert {p for ps in pids.values() for p in ps} == {p.pid for p in st.packs}
    assert all(nsutil.alive(p.pid, p.started) for p in st.packs)
    inside = nsutil.pids_in_netns(lab.tb.netns(h) for h in PYTHON_HOSTS)
    assert inside == {}, f"processes inside the packed hosts' namespaces: {inside}"
    # the FRR host runs its own processes in its own namespace, as without --pack
    assert nsutil.pids_in_netns([lab.tb.netns("fr1")])


def test_frr_is_full_with_the_dr_and_bdr_and_holds_tn1s_lsdb(lab: Lab) -> None:
    ours = {"10.1.1.1", "10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.200"}

    def adjacent() -> dict[str, str] | None:
        nb = frr_nbrs(lab.tb)
        full = [r for r, s in nb.items() if s == "Full"]
        return nb if set(nb) == ours and len(full) == 2 else None

    nb = _until("FRR sees our six routers, Full with DR and BDR", adjacent, 60)
    assert set(nb.values()) <= {"Full", "2-Way"}, nb
    same = _until(
        "FRR's LSDB equal to tn1's",
        lambda: lsdb_frr(lab.tb) == lsdb_ours(lab.tb, "tn1") or None,
        30,
    )
    assert same
    routers = {e[2] for e in lsdb_frr(lab.tb) if e[0] == "1"}
    assert ours | {"10.1.1.60"} <= routers


def test_the_papers_service_has_equal_keys_at_both_ends_over_five_refreshes(lab: Lab) -> None:
    head = lab.cli_json(
        "tn1", "qe-service create dst 10.1.1.5 key-length 32 refresh time 200 wait"
    )["services"][0]
    assert head["state"] == "up", head

    def refreshed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        h = lab.cli_json("tn1", f"show qe-service {head['id']}")["services"][0]
        tails = [
            s
            for s in lab.cli_json("tn5", "show qe-service")["services"]
            if s["role"] == "tail" and s["key_handle_prefix"] == head["key_handle_prefix"]
        ]
        if not tails or min(h["refresh_count"], tails[0]["refresh_count"]) < 5:
            return None
        return h, tails[0]

    h, t = _until("five refreshes at both ends", refreshed, 30)
    hk = {k["index"]: k["fingerprint"] for k in h["keys"]}
    tk = {k["index"]: k["fingerprint"] for k in t["keys"]}
    assert set(range(6)) <= set(hk) & set(tk)
    assert all(hk[i] == tk[i] for i in range(6)), (hk, tk)
    assert len(set(hk.values())) == len(hk), "a key repeated"
    lab.cli("tn1", f"qe-service delete {head['id']}")


def test_nothing_malformed_on_the_control_lan(lab: Lab) -> None:
    lab.tb.capture_stop()
    pcap = lab.pcap("ctrl")
    assert tshark.run(pcap, "-Y", "ospf || pcep || rsvp").strip(), "nothing captured"
    assert tshark.run(pcap, "-Y", "_ws.malformed") == "", pcap


def test_one_packed_daemon_stops_and_starts_while_its_pack_runs_on(lab: Lab) -> None:
    tb = lab.tb
    pack = tb.state.packed["tn3"]
    others = [h for h, p in tb.state.packed.items() if p == pack and h != "tn3"]
    assert others
    tb.stop("tn3")
    assert tb.running("tn3") == []
    assert all(tb.running(h) for h in others)
    with pytest.raises(OSError), tb.socket("client") as s:
        s.settimeout(5)
        s.connect(("10.1.1.3", 23))  # tn3's CLI is gone with it
    assert tb.start("tn3") == [next(p.pid for p in tb.state.packs if p.name == pack)]
    version = _until("tn3's CLI back", lambda: _version(lab), 20, step=0.5)
    assert "router ID 10.1.1.3" in version


def _version(lab: Lab) -> str | None:
    try:
        return lab.cli("tn3", "show version", timeout=5)
    except Exception:
        return None


def test_a_request_for_a_host_not_in_the_pack_is_an_error(lab: Lab) -> None:
    ctl = lab.tb.run_dir / "pack-0.ctl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(ctl))
        s.sendall(b"stop nobody\nlist\n")
        f = s.makefile("r")
        assert f.readline().strip() == "error nobody is not in this pack"
        assert f.readline().split()[0] == "ok"
