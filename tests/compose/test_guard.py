"""The compose file's guard (compose/guard.py) as a process, against a stand-in ``iptables``
that keeps its chain in a file: rules and fresh secrets before it reports ready, both
gone after SIGTERM. No Docker, no root (the Docker tests run the real one)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"

FAKE_IPTABLES = """#!{python}
import shlex, sys
from pathlib import Path
db = Path({db!r})
args = [a for a in sys.argv[1:] if a != "-w"]
if not db.exists():
    sys.exit(1)  # no DOCKER-USER chain: Docker does not use iptables here
rules = [ln for ln in db.read_text().splitlines() if ln]
op, chain, rest = args[0], args[1], args[2:]
if op == "-S":
    print("-N " + chain)
    print("\\n".join(rules))
elif op == "-C":
    sys.exit(0 if "-A {{}} {{}}".format(chain, shlex.join(rest)) in rules else 1)
elif op == "-I":
    rules.insert(0, "-A {{}} {{}}".format(chain, shlex.join(rest[1:])))
elif op == "-D":
    rules.remove("-A {{}} {{}}".format(chain, shlex.join(rest)))
db.write_text("\\n".join(rules) + "\\n")
"""


def _guard(tmp_path: Path, chain: bool) -> tuple[subprocess.Popen[str], Path, Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    db = tmp_path / "docker-user"
    if chain:
        db.write_text("-A DOCKER-USER -j RETURN\n")
    fake = bin_dir / "iptables"
    fake.write_text(FAKE_IPTABLES.format(python=sys.executable, db=str(db)))
    fake.chmod(0o755)
    ready = tmp_path / "ready"
    secrets = tmp_path / "secrets"
    env = {**os.environ, "PATH": str(bin_dir)}
    argv = [sys.executable, "-m", "compose.guard", "--topology", str(PAPER)]
    argv += ["--secrets", str(secrets), "--ready", str(ready)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the guard did not get ready: {proc.communicate()[0]}")
        time.sleep(0.05)
    return proc, db, secrets, ready


def test_rules_and_secrets_before_ready_and_gone_after_sigterm(tmp_path: Path) -> None:
    proc, db, secrets, ready = _guard(tmp_path, chain=True)
    try:
        rules = [ln for ln in db.read_text().splitlines() if "qkdnet-docker:qk" in ln]
        bridges = {ln.split()[3] for ln in rules}
        # the access domains' bridges are qkdnet's own (docs/docker.md), their frames are
        # bridged all the same
        assert bridges == {
            "qk_ctrl",
            "qk_qa",
            "qk_qb",
            "qk_ka",
            "qk_kb",
            "qk_sync",
            "qk_ea",
            "qk_eb",
        }
        assert all(f"-i {b} -o {b} " in " ".join(rules) for b in bridges)
        files = sorted(f for f in secrets.iterdir() if f.is_file())
        assert [f.name for f in files] == ["etsiA-etsiB.sync", "idqA-idqB.seed"]
        # the ETSI 014 PKI (compose/pki.py): private keys 0600
        certs = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (secrets / "pki").iterdir()}
        assert len(certs) == 10 and certs["ca.key"] == certs["etsiA.key"] == 0o600
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600 and f.stat().st_size == 32
        assert files[0].read_bytes() != files[1].read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert db.read_text() == "-A DOCKER-USER -j RETURN\n"
    assert list(secrets.iterdir()) == [] and not ready.exists()
    assert "removed 8 DOCKER-USER rule(s) and 12 secret file(s)" in out
    # the guard says what it did, never a key byte
    for line in out.splitlines():
        assert line.startswith("qkdnet-guard: "), line


def test_secrets_are_new_on_every_start(tmp_path: Path) -> None:
    seen = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        proc, _, secrets, _ = _guard(tmp_path / run, chain=True)
        seen.append((secrets / "etsiA-etsiB.sync").read_bytes())
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert seen[0] != seen[1]


def test_without_a_docker_user_chain_it_adds_nothing_and_still_serves(tmp_path: Path) -> None:
    proc, db, secrets, _ = _guard(tmp_path, chain=False)
    assert len([f for f in secrets.iterdir() if f.is_file()]) == 2
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "no DOCKER-USER chain" in out and not db.exists()
