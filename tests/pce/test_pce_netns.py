"""The PCE in network namespaces on the paper topology (prefix "pc").

OSPF on the real control LAN feeds the PCE's TED; a PCC in the client namespace asks for
tn1 -> tn5 with the paper's QE metrics and gets the Fig. 9 ERO; after tn3 stops and the
control plane forgets it (dead interval, then the DR's Network LSA), the same request
takes the bypass tn1-tn2-tn4-tn5. tcpdump in the PCE's namespace records the PCEP session
and tshark decodes it.

``test_pce_with_ospf_speakers`` runs stand-in nodes (tests/support/ospf_speaker.py: the same
OSPF core and raw-socket shell, originating the LSAs a node agent would);
``test_pce_with_node_agents`` runs the real node agent daemons once they exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gmpls.ero import encode_subobjects
from gmpls.pcep import examples as ex
from tests.support import tshark

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
NODES = ["tn1", "tn2", "tn3", "tn4", "tn5"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the CLI may not be listening yet
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def ted(tb: Any) -> dict[str, Any]:
    return json.loads(tb.cli("pce", "show ted json", via="client"))


def request(tb: Any) -> dict[str, Any]:
    out = tb.exec(
        "client",
        [sys.executable, "-m", "pce.client", "--pce", "10.1.1.200", "--src", "10.1.1.1",
         "--dst", "10.1.1.5", "--qe", "--json"],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def scenario(tb: Any, stop_tn3: Callable[[], None], tmp_path: Path) -> None:
    pcap = tmp_path / "pcep.pcap"
    dump = tshark.tcpdump(tb, "pce", ["-q", "-i", "ctrl", "tcp port 4189"], pcap)
    try:
        t = wait_for(
            "5 TE nodes and 10 usable links in the TED",
            lambda: (d := ted(tb)) and len(d["nodes"]) == 5 and d["usable_links"] == 10 and d,
        )
        assert [n["router_id"] for n in t["nodes"] if n["qe_capable"]] == ["10.1.1.1", "10.1.1.5"]
        r = request(tb)
        assert r["ok"], r
        assert r["ero_hex"] == encode_subobjects(ex.fig9_ero()).hex()

        stop_tn3()
        wait_for("tn3 gone from the TED", lambda: len(ted(tb)["nodes"]) == 4, timeout=60)
        r2 = request(tb)
        assert r2["ok"], r2
        hops = [h for h in r2["ero"] if ":" in h and not h.startswith(("QE", "label"))]
        assert hops == ["10.1.1.1:1", "10.1.1.2:3", "10.1.1.4:3"]
        assert r2["ero"][-2] == "10.1.1.5/32"
        # tcpdump -U writes each packet as it comes: wait until both replies are on disk
        with contextlib.suppress(AssertionError):
            wait_for("both PCReps in the capture", lambda: _messages(pcap).count("4") >= 2, 15)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    rows = _decode(pcap)
    types = [r[0] for r in rows]
    assert types.count("3") == 2 and types.count("4") == 2
    req = next(r for r in rows if r[0] == "3")
    assert req[1] == "1,255,1,254,1,253,1,252"
    reps = [r for r in rows if r[0] == "4"]
    assert reps[0][2] == "10.1.1.1,10.1.1.2,10.1.1.3,10.1.1.4"
    assert reps[1][2] == "10.1.1.1,10.1.1.2,10.1.1.4"
    assert all(r[3] == "" for r in rows)


def start_pce(tb: Any, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The PCE daemon exactly as ``qkdnet up`` starts it (compose.daemons.plan), started by
    the test itself: the testbed comes up without daemons, the nodes' speakers follow."""
    argv = [sys.executable, "-m", "pce", "--topology", str(tb.topo_file), "--host", "pce"]
    argv += ["--log-file", str(tmp_path / "pce.log")]
    with open(tmp_path / "pce.out", "wb") as out:
        proc: subprocess.Popen[bytes] = tb.popen(
            "pce", argv, env=ENV, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    return proc


def _decode(pcap: Path) -> list[list[str]]:
    tshark = shutil.which("tshark")
    assert tshark
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-Y", "pcep", "-T", "fields", "-E", "occurrence=a",
         "-E", "separator=|", "-e", "pcep.msg", "-e", "pcep.obj.metric.type",
         "-e", "pcep.subobj.unnumb_interfaceID.router_id", "-e", "_ws.malformed"],
        capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    return [line.split("|") for line in out]


def _messages(pcap: Path) -> list[str]:
    return [r[0] for r in _decode(pcap)] if pcap.exists() else []


def test_pce_with_ospf_speakers(testbed_factory: Callable[..., Any], tmp_path: Path) -> None:
    tb = testbed_factory("topologies/paper.yaml", prefix="pc", start_daemons=False)
    speakers = {"pce": start_pce(tb, tmp_path)}
    for n in NODES:
        with open(tmp_path / f"{n}.err", "w") as err:
            speakers[n] = tb.popen(
                n,
                [sys.executable, "-m", "tests.support.ospf_speaker", str(tb.topo_file), n],
                env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
    try:

        def stop_tn3() -> None:
            assert speakers["pce"].poll() is None, (tmp_path / "pce.out").read_text()
            speakers["tn3"].terminate()
            speakers["tn3"].wait(timeout=10)

        scenario(tb, stop_tn3, tmp_path)
    finally:
        for p in speakers.values():
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)


def test_pce_with_node_agents(testbed_factory: Callable[..., Any], tmp_path: Path) -> None:
    """The same with the real node agent daemons (node_agent) as the OSPF-TE speakers."""
    tb = testbed_factory("topologies/paper.yaml", prefix="pd", start_daemons=False)
    pce = start_pce(tb, tmp_path)
    try:
        for n in NODES:
            assert tb.start(n), f"node agent {n} did not start"
        scenario(tb, lambda: tb.stop("tn3"), tmp_path)
        assert pce.poll() is None, (tmp_path / "pce.out").read_text()
    finally:
        pce.terminate()
        pce.wait(timeout=10)
