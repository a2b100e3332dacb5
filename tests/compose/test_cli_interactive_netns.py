"""``qkdnet cli`` against a real node agent in its namespace (needs root): the interactive
session driven through a pseudo-terminal (pexpect): abbreviations, ``?`` help, Tab
completion from the daemon, history, Ctrl-D; one-shot commands with unquoted words and
the exit status of a failing command; the outputs the issue found wrong.

One testbed (prefix ``ia``, the paper topology) with only tn1's node agent running is
shared by the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from compose.netns import NetnsTestbed, leftovers, teardown
from tests.support.netns_util import wait_for

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
QKDNET = [sys.executable, "-m", "compose.cli"]


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsTestbed]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    teardown("ia", progress=quiet)
    tb = NetnsTestbed(PAPER, tmp_path_factory.mktemp("run-ia"), prefix="ia", progress=quiet)
    try:
        tb.up(start_daemons=False)
        tb.start("tn1")
        wait_for(lambda: "tn1" in tb.cli("tn1", "show version"), 30, "tn1's CLI")
        yield tb
    finally:
        tb.down()
    assert leftovers("ia") == []


def qkdnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QKDNET, *args], capture_output=True, text=True, check=False, cwd=ROOT, timeout=60
    )


def test_one_shot_commands_unquoted_with_their_status(bed: NetnsTestbed) -> None:
    r = qkdnet("cli", "-p", "ia", "tn1", "sh", "ip", "ospf", "int")
    assert r.returncode == 0, r.stderr
    assert "10.1.1.1" in r.stdout
    r = qkdnet("cli", "-p", "ia", "tn1", "show", "bogus")
    assert (r.returncode, r.stdout.strip()) == (1, "% Unknown command: show bogus")
    r = qkdnet("cli", "-p", "ia", "tn1", "qe-service", "create")
    assert r.returncode == 1
    assert "usage: qe-service create dst A.B.C.D [key-length N]" in r.stdout
    assert "[delegate] [wait]" in r.stdout


def test_outputs_the_issue_found_wrong(bed: NetnsTestbed) -> None:
    def attached() -> bool | str:
        out = bed.cli("tn1", "show ip ospf route")
        lines = [x for x in out.splitlines() if "directly attached" in x]
        # the control LAN and the stub network of tn1's QKD-side interface, each named
        named = all(x.partition("attached to ")[2].strip() for x in lines)
        return (len(lines) >= 2 and named) or out

    wait_for(attached, 30, "tn1's routes, directly attached to named interfaces")
    assert not bed.cli("tn1", "show version").lstrip().startswith("{")
    assert not bed.cli("tn1", "show ip ospf te-link").lstrip().startswith("{")
    assert json.loads(bed.cli("tn1", "show ip ospf te-link json"))["1"]["teMetric"] == 10
    lsps = bed.cli("tn1", "show mpls lsp json")
    assert "Label(" not in lsps and json.loads(lsps)["node"] == "tn1"
    cfg = bed.cli("tn1", "show running-config")
    assert cfg.startswith("hostname tn1") and " ospf router-id 10.1.1.1" in cfg.splitlines()


def test_interactive_session(bed: NetnsTestbed, tmp_path: Path) -> None:
    env = {**os.environ, "QKDNET_HISTORY": str(tmp_path / "history"), "TERM": "dumb"}
    c = pexpect.spawn(
        sys.executable,
        ["-m", "compose.cli", "cli", "-p", "ia", "tn1"],
        cwd=str(ROOT),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    try:
        c.expect_exact("tn1# ")
        c.sendline("sh ip ospf int")  # an abbreviation
        c.expect_exact("10.1.1.1")
        c.expect_exact("tn1# ")
        c.send("sh ip ospf ?")  # context help at once, then the line again
        c.expect(r"neighbor +OSPF neighbors")
        c.expect_exact("tn1# sh ip ospf ")
        c.send("te\t")  # completion from the daemon's candidates
        c.expect_exact("te-link ")
        c.sendline("")
        c.expect(r"link +remote router")
        c.expect_exact("tn1# ")
        c.sendline("sh bogus")
        c.expect_exact("% Unknown command: sh bogus")
        c.expect_exact("tn1# ")
        c.sendeof()
        c.expect(pexpect.EOF)
    finally:
        c.close()
    assert c.exitstatus == 0
    history = (tmp_path / "history").read_text().splitlines()
    assert "sh ip ospf int" in history and "sh bogus" in history
