"""The two pictures of a real run, as a user makes them: ``qkdnet demo --svg FILE --keep``
(the whole ladder: every host's lane, every kind of message of the workflow, from the
captures of every domain), then ``qkdnet topo draw --live`` of the running testbed (the
LSP's hops with their wavelength), under our prefix ``e2p`` and an index of our own;
nothing is left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.compose.test_pictures import ladder_messages, missing_kinds
from tests.support.e2elab import PAPER

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

PREFIX = "e2p"
SVG = "{http://www.w3.org/2000/svg}"
LANES = ["client", "idqA", "etsiA", "tn1", "pce", "tn2", "tn3", "tn4", "tn5", "etsiB", "idqB"]


def _qkdnet(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "compose.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)


def test_demo_svg_and_live_topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz not installed (make setup)")
    from compose.netns import leftovers, teardown

    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("QKDNET_INDEX", str(index))
    teardown(PREFIX, progress=lambda _line: None)
    ladder, topo = tmp_path / "ladder.svg", tmp_path / "topo.svg"
    try:
        demo_args = ["--svg", str(ladder), "--run-dir", str(tmp_path / "run")]
        demo = _qkdnet(tmp_path, "demo", str(PAPER), "--prefix", PREFIX, "--keep", *demo_args)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        drawn = _qkdnet(tmp_path, "topo", "draw", str(PAPER), "--out", str(topo), "--live")
        drawn_p = _qkdnet(
            tmp_path, "topo", "draw", str(PAPER), "--out", str(topo), "--live", "-p", PREFIX
        )
    finally:
        teardown(PREFIX, progress=lambda _line: None)
    assert leftovers(PREFIX) == []
    # the file's own prefix (qk) is not ours: --live refuses rather than draw without LSPs
    assert drawn.returncode == 1 and "--live" in drawn.stderr
    assert drawn_p.returncode == 0, drawn_p.stderr
    assert f"LSPs of testbed {PREFIX!r}" in drawn_p.stdout

    root = ET.parse(ladder).getroot()
    lanes = [g.get("id") for g in root.iter(f"{SVG}g") if g.get("class") == "lane"]
    # and a lane for OSPF's multicast when the RI LSA drawn first went to it (flooded on
    # the control LAN, rather than retransmitted to one router)
    multicast = {"lane-AllSPFRouters", "lane-AllDRouters"}
    assert [x for x in lanes if x not in multicast] == [f"lane-{h}" for h in LANES]
    msgs = ladder_messages(ladder)
    assert missing_kinds(msgs) == {}
    assert not any("malformed" in m for _p, m, _s, _d in msgs)
    # each protocol between the hosts that speak it, Path hop by hop down the path
    assert ("PCEP", "PCReq", "tn1", "pce") in msgs
    hops = [(s, d) for p, m, s, d in msgs if m == "Path"]
    assert hops[:4] == [("tn1", "tn2"), ("tn2", "tn3"), ("tn3", "tn4"), ("tn4", "tn5")]
    assert {(s, d) for p, _m, s, d in msgs if p == "IDQ3P"} <= {
        ("etsiA", "idqA"),
        ("idqA", "etsiA"),
        ("etsiB", "idqB"),
        ("idqB", "etsiB"),
    }
    assert {(s, d) for p, _m, s, d in msgs if p == "sync"} == {
        ("etsiA", "etsiB"),
        ("etsiB", "etsiA"),
    }
    times = [
        float(g.get("data-t-ms") or 0) for g in root.iter(f"{SVG}g") if g.get("class") == "msg"
    ]
    assert times == sorted(times)
    words = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "PCEP PCReq" in words and "0.000" in words

    words = " ".join("".join(t.itertext()) for t in ET.parse(topo).getroot().iter(f"{SVG}text"))
    # the service's LSP: one hop per TE link of the path, on one wavelength, marked QE
    hops_drawn = words.split("LSP ")[1:]
    assert len(hops_drawn) == 4, words
    assert len({h.split()[1] for h in hops_drawn}) == 1 and all("QE" in h for h in hops_drawn)
