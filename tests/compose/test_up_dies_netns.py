"""``qkdnet up`` when daemons die at start (issue 18: `up` returned 0 although two daemons
had died): it names each with the last line of its output, takes the testbed down again
and exits 1; one that dies at once and one that dies half a second later alike."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from compose import cli, daemons
from compose.backend import quiet
from compose.netns import leftovers, teardown

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
pytestmark = pytest.mark.netns

DIE = "import sys, time; time.sleep(float(sys.argv[1])); print(sys.argv[2]); sys.exit(int(sys.argv[3]))"


def test_up_fails_and_cleans_up_when_daemons_die(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def plan(topo: Any, host: Any, topo_file: Path, run_dir: Path, generators: Any = None) -> Any:
        how = {
            "pce": ("0", "bad flag --frobnicate", "2"),
            "etsiA": ("0.5", "secret too short", "1"),
        }
        if host.name not in how:
            return "not in this test"
        argv = [sys.executable, "-c", DIE, *how[host.name]]
        out = run_dir / f"{host.name}.fake.out"
        return [daemons.Launch("fake", argv, out, run_dir / f"{host.name}.log")]

    monkeypatch.setattr(daemons, "plan", plan)
    monkeypatch.setenv("QKDNET_INDEX", str(tmp_path / "index"))
    teardown("cu1", progress=quiet)
    rc = cli.main(["up", str(PAPER), "-p", "cu1", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1
    # at once (within 0.3 s) or caught while up watches: the same cause either way
    assert re.search(r"qkdnet up: pce: fake (exited with code|exit status) 2: bad flag", err), err
    assert "qkdnet up: etsiA: fake exit status 1: secret too short" in err, err
    assert "2 daemon(s) died at start; taking cu1 down again" in err
    assert leftovers("cu1") == []
