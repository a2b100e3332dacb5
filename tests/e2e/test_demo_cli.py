"""``qkdnet demo`` as a user runs it (``make demo`` runs the same with the default
prefix): the command, in a subprocess, with ``--json --capture``, under our prefix
``e2d``. It must print the issue's JSON with the Fig. 6 ladder and equal fingerprints,
exit 0, keep one pcap per domain, and leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.e2elab import LADDER, PAPER

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

PREFIX = "e2d"


def test_qkdnet_demo_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    from compose.netns import leftovers, teardown

    # an index of our own: a `qkdnet down` elsewhere on the machine cannot take it away
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("QKDNET_INDEX", str(index))
    teardown(PREFIX, progress=lambda _line: None)
    caps = tmp_path / "caps"
    argv = [sys.executable, "-m", "compose.cli", "demo", str(PAPER)]
    argv += ["--prefix", PREFIX, "--json", "--capture", str(caps)]
    argv += ["--run-dir", str(tmp_path / "run")]
    try:
        r = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp_path,
        )
    finally:
        teardown(PREFIX, progress=lambda _line: None)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert {"setup_ms", "path", "ladder", "fingerprints", "captures"} <= set(out)
    rungs = [(x["src"], x["dst"], x["msg"]) for x in out["ladder"] if x["msg"] != "LS Update (RI)"]
    assert rungs == LADDER
    assert set(out["ladder"][0]) == {"t_ms", "src", "dst", "proto", "msg"}
    assert out["setup_ms"] > 0 and out["path"] == [f"10.1.1.{i}" for i in range(1, 6)]
    fp = out["fingerprints"]
    assert len(fp["tn1"]) == 16 and fp["tn1"] == fp["tn5"]
    assert set(out["captures"]) == {"ctrl", "qa", "qb", "ka", "kb", "sync", "ea", "eb"}
    for path in out["captures"].values():
        assert Path(path).parent == caps and Path(path).stat().st_size > 24
    assert out["malformed_frames"] == []
    # progress went to stderr, the service was deleted, nothing is left
    assert "PCE TED: 5/5 nodes" in r.stderr and "qe-service delete" in r.stderr
    assert leftovers(PREFIX) == []
