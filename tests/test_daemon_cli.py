"""The daemons' common command line (daemonkit/daemon.py): ``python -m PACKAGE`` with a
broken topology, an unknown host, a host of another kind or a bad flag says so in one
line on stderr and exits with status 2, never with a traceback; a daemon that cannot
start says why in one line and exits 1; SIGTERM stops a running daemon cleanly."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemonkit import daemon
from gmpls.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "topologies" / "paper.yaml"
#: package -> a host of its kind in the paper topology
DAEMONS = {"node_agent": "tn1", "pce": "pce", "qkd_proxy": "etsiA", "idq3p_emulator": "idqA"}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The paper topology with two problems: an unknown key and a dead interval that does
    not exceed the hello interval."""
    text = PAPER.read_text().replace("  dead_interval: 4", "  dead_interval: 1\n  colour: blue")
    assert text != PAPER.read_text()
    path = tmp_path_factory.mktemp("topo") / "broken.yaml"
    path.write_text(text)
    return path


def run(package: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", package, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def one_line(p: subprocess.CompletedProcess[str]) -> str:
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


@pytest.mark.parametrize("package", sorted(DAEMONS))
def test_broken_topology_is_one_line_and_status_2(
    package: str, broken: Path, tmp_path: Path
) -> None:
    p = run(package, "--topology", str(broken), "--host", DAEMONS[package], cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert re.fullmatch(rf"{package}: broken\.yaml: \S.* \(and 1 more problem\)", one_line(p))
    assert p.stdout == ""


@pytest.mark.parametrize("package", sorted(DAEMONS))
def test_unknown_host_or_wrong_kind_is_one_line_and_status_2(package: str, tmp_path: Path) -> None:
    p = run(package, "--topology", str(PAPER), "--host", "nosuch", cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p) == f"{package}: paper: no host 'nosuch'"
    p = run(package, "--topology", str(PAPER), "--host", "client", cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p).startswith(f"{package}: host client is of kind client, not ")


@pytest.mark.parametrize("package", sorted(DAEMONS))
def test_bad_flag_is_one_line_and_status_2(package: str, tmp_path: Path) -> None:
    args = ["--topology", str(PAPER), "--host", DAEMONS[package], "--no-such-flag"]
    p = run(package, *args, cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p) == f"python -m {package}: error: unrecognized arguments: --no-such-flag"


def test_a_bad_key_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pair.key").write_bytes(b"not a key file")
    args = ["--topology", str(PAPER), "--host", "idqA", "--key-file", "pair.key"]
    p = run("idq3p_emulator", *args, cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p) == "idq3p_emulator: not an IDQ3P key file (magic IDQ3PKEY missing)"


@pytest.mark.parametrize(
    ("package", "needs"),
    [
        ("idq3p_emulator", "no key material: give --seed-file FILE"),
        ("qkd_proxy", "no sync key: give --sync-key-file FILE"),
    ],
)
def test_without_key_material_the_daemon_refuses_to_start(
    package: str, needs: str, tmp_path: Path
) -> None:
    """The paper topology pins no key: an emulator or a proxy given no secret file is a
    config error (one line, status 2), never a daemon serving predictable keys."""
    p = run(package, "--topology", str(PAPER), "--host", DAEMONS[package], cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p).startswith(f"{package}: {needs}")


@pytest.mark.parametrize(
    ("package", "flag"), [("idq3p_emulator", "--seed-file"), ("qkd_proxy", "--sync-key-file")]
)
def test_a_short_or_missing_secret_file_is_a_config_error(
    package: str, flag: str, tmp_path: Path
) -> None:
    (tmp_path / "short").write_bytes(b"0123456789")
    base = ["--topology", str(PAPER), "--host", DAEMONS[package], flag]
    p = run(package, *base, "short", cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p) == f"{package}: short: holds 10 bytes, a secret needs at least 16"
    p = run(package, *base, "absent", cwd=tmp_path)
    assert p.returncode == 2
    assert one_line(p).startswith(f"{package}: [Errno 2] No such file or directory")


# --- the skeleton in process -------------------------------------------------------------


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    """daemon.main sets up the root logger: put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


class Fake:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail is not None:
            raise self.fail
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        self.calls.append("stop")


def test_sigterm_stops_the_daemon(tmp_path: Path) -> None:
    fake = Fake()

    def build(a: argparse.Namespace, topo: Topology) -> Fake:
        assert (a.host, topo.name, a.state_dir) == ("tn1", "paper", tmp_path)
        return fake

    argv = ["--topology", str(PAPER), "--host", "tn1", "--log-file", str(tmp_path / "log")]
    assert daemon.main("fake", "node", build, [*argv, "--state-dir", str(tmp_path)]) == 0
    assert fake.calls == ["start", "stop"]
    for h in logging.getLogger().handlers:
        h.flush()
    log = (tmp_path / "log").read_text()
    assert '"event": "start"' in log and '"event": "stop"' in log


def test_a_daemon_that_cannot_start_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = Fake(OSError(99, "Cannot assign requested address"))
    argv = ["--topology", str(PAPER), "--host", "pce", "--log-file", str(tmp_path / "log")]
    assert daemon.main("fake", "pce", lambda a, t: fake, argv) == daemon.EXIT_START
    assert fake.calls == ["start", "stop"]
    err = capsys.readouterr().err
    assert err == "fake: cannot start: [Errno 99] Cannot assign requested address\n"
    for h in logging.getLogger().handlers:
        h.flush()
    assert '"event": "start_failed"' in (tmp_path / "log").read_text()


def test_a_build_error_names_the_cause(capsys: pytest.CaptureFixture[str]) -> None:
    def build(a: argparse.Namespace, topo: Topology) -> Fake:
        raise daemon.ConfigError("tn1 has no TE link 7")

    assert daemon.main("fake", "node", build, ["--topology", str(PAPER), "--host", "tn1"]) == 2
    assert capsys.readouterr().err == "fake: tn1 has no TE link 7\n"
