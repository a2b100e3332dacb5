"""Where the keys come from: fresh random secrets per bring-up, handed over by file.

No shipped or generated topology holds key material; ``compose.keyfiles`` (what ``qkdnet
up`` calls) writes a seed per emulator pair and a sync key per proxy pair, 0700/0600, new
every time; the emulators and proxies of tests/qkd/loopback.yaml without its pinned
values, run as processes on loopback (ports 366xx) with those files, give equal keys at
both ends, other keys after a second bring-up, and never log a secret.
"""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from compose import keyfiles, topogen
from daemonkit.etsi004 import Etsi004Client
from gmpls.qkd import etsi004 as etsi
from gmpls.topology import DeterministicKeys, Topology, load
from qkd_proxy.client import fingerprint

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
NORTH, SYNC, IDQ = 36424, 36626, 36323
TN1, TN5 = "127.55.2.1", "127.55.3.5"
A, B = ("127.55.2.11", NORTH), ("127.55.3.11", NORTH)


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml")), ids=str)
def test_shipped_topologies_hold_no_secret(path: Path) -> None:
    assert load(path).qkd.deterministic == DeterministicKeys()
    text = path.read_text()
    for word in ("deterministic", "key_seed", "sync_secret", "sync_key", "seed:"):
        assert word not in text, word


@pytest.mark.parametrize("shape", topogen.SHAPES)
def test_generated_topologies_hold_no_secret(shape: str, tmp_path: Path) -> None:
    doc = topogen.generate(shape, 6, qe=True)
    assert set(doc["qkd"]) == {"secret_key_rate_bps", "buffer_bits"}
    out = tmp_path / "gen.yaml"
    out.write_text(topogen.dump(doc))
    assert load(out).qkd.deterministic == DeterministicKeys()


def test_secret_files_are_private_fresh_and_one_per_pair(tmp_path: Path) -> None:
    topo = load(ROOT / "topologies" / "paper.yaml")
    folder = tmp_path / "run" / keyfiles.FOLDER
    first = keyfiles.write(topo, folder)
    assert [p.name for p in first] == ["etsiA-etsiB.sync", "idqA-idqB.seed"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    before = {p.name: p.read_bytes() for p in first}
    for p in first:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert len(p.read_bytes()) == keyfiles.SIZE
    assert before["etsiA-etsiB.sync"] != before["idqA-idqB.seed"]
    again = {p.name: p.read_bytes() for p in keyfiles.write(topo, folder)}
    assert set(again) == set(before)
    assert all(again[n] != before[n] for n in before)  # new material every bring-up
    assert sorted(x.name for x in folder.iterdir()) == sorted(before)  # no temporary left
    # both ends of a pair are handed the same file
    assert keyfiles.daemon_args(topo, "idqA", "S") == ["--seed-file", "S/idqA-idqB.seed"]
    assert keyfiles.daemon_args(topo, "idqB", "S") == ["--seed-file", "S/idqA-idqB.seed"]
    assert keyfiles.daemon_args(topo, "etsiB", "S") == ["--sync-key-file", "S/etsiA-etsiB.sync"]
    assert keyfiles.daemon_args(topo, "tn1", "S") == []


def test_a_pinned_part_gets_no_file(tmp_path: Path) -> None:
    topo = load(HERE / "loopback.yaml")  # pins both (qkd.deterministic)
    assert keyfiles.files(topo) == {}
    assert keyfiles.write(topo, tmp_path / "s") == []


# --- the daemons with their files, on loopback ----------------------------------------


@pytest.fixture
def unpinned(tmp_path: Path) -> Topology:
    """tests/qkd/loopback.yaml without its pinned (deterministic) key material."""
    doc = yaml.safe_load((HERE / "loopback.yaml").read_text())
    del doc["qkd"]["deterministic"]
    path = tmp_path / "loopback-unpinned.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load(path)


def bring_up(topo: Topology, run: Path) -> tuple[str, str]:
    """The four QKD daemons with fresh secret files in ``run/secrets``; the fingerprints
    of key 0 of one key stream at both ends. Checks that every daemon stops with 0 and that
    no log or output holds a secret."""
    assert topo.path is not None
    run.mkdir()
    folder = run / keyfiles.FOLDER
    secrets = [p.read_bytes() for p in keyfiles.write(topo, folder)]
    ports = {
        "idq3p_emulator": ["--port", str(IDQ)],
        "qkd_proxy": ["--north-port", str(NORTH), "--sync-port", str(SYNC), "--idq-port", str(IDQ)],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for host, pkg in (
            ("idqA", "idq3p_emulator"),
            ("idqB", "idq3p_emulator"),
            ("etsiA", "qkd_proxy"),
            ("etsiB", "qkd_proxy"),
        ):
            argv = [sys.executable, "-m", pkg, "--topology", str(topo.path), "--host", host]
            argv += ["--log-file", str(run / f"{host}.log"), *ports[pkg]]
            argv += keyfiles.daemon_args(topo, host, folder)
            with open(run / f"{host}.out", "wb") as out:
                procs[host] = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=out)
        for host, p in procs.items():
            end = time.monotonic() + 20
            while '"listening"' not in _read(run / f"{host}.log"):
                assert p.poll() is None, f"{host} exited: {_read(run / f'{host}.out')}"
                assert time.monotonic() < end, f"{host} did not start"
                time.sleep(0.05)
        fps = asyncio.run(_key_zero())
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {h: p.wait(10) for h, p in procs.items()}
    assert codes == {h: 0 for h in procs}
    for f in run.iterdir():
        if f.is_file():
            data = f.read_bytes()
            for s in secrets:
                assert s not in data and s.hex().encode() not in data, f.name
                assert s.hex().upper().encode() not in data, f.name
    return fps


async def _key_zero() -> tuple[str, str]:
    async with Etsi004Client(A, (TN1, 0)) as a, Etsi004Client(B, (TN5, 0)) as b:
        st, h = await a.open("127.55.1.5")
        assert st == etsi.Status.SUCCESSFUL
        assert (await b.open("127.55.1.1", h))[0] == etsi.Status.SUCCESSFUL
        sa, ia, ka = await a.get_key(h)
        sb, ib, kb = await b.get_key(h)
        assert (sa, ia, sb, ib) == (etsi.Status.SUCCESSFUL, 0, etsi.Status.SUCCESSFUL, 0)
        await a.close(h)
        await b.close(h)
        return fingerprint(ka), fingerprint(kb)


def _read(p: Path) -> str:
    return p.read_text(errors="replace") if p.exists() else ""


def test_two_bring_ups_give_equal_keys_at_both_ends_and_other_keys_each_time(
    unpinned: Topology, tmp_path: Path
) -> None:
    first = bring_up(unpinned, tmp_path / "run1")
    second = bring_up(unpinned, tmp_path / "run2")
    assert first[0] == first[1] and second[0] == second[1]
    assert first[0] != second[0]


def test_a_directory_docker_left_in_place_of_a_secret_is_replaced(tmp_path: Path) -> None:
    """A plain `docker compose up` before `qkdnet compose secrets` leaves an empty directory
    where each mounted file should be; making the secrets afterwards replaces it."""
    topo = load(ROOT / "topologies" / "paper.yaml")
    (tmp_path / "idqA-idqB.seed").mkdir()
    made = keyfiles.write(topo, tmp_path)
    assert all(p.is_file() and len(p.read_bytes()) == keyfiles.SIZE for p in made)
