"""IDQ3P emulator processes on loopback, killed (SIGKILL, as a crash) and started again:
no key delivered after a restart of either box equals a key delivered before it, by
GET_NEXT_KEY or GET_KEY_BY_ID; a key the pair has not released is refused by ID and
counted (issue 12, items 2 and 5).

The two boxes of tests/qkd/loopback.yaml without its pinned seed, given a fresh seed file
(their marks then live beside it), on free ports of their loopback addresses.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gmpls.qkd import idq3p as codec
from idq3p_emulator.store import key_id, split_key_id

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
ADDR = {"idqA": "127.55.4.2", "idqB": "127.55.5.2"}
#: slow enough that a test drains a buffer in a few requests: 62.5 kB/s, 16 KiB per stream
RATE, BUFFER = "1000000", str(2 * 8 * 16384)


def free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


class Box:
    """One emulator process and a client socket to it."""

    def __init__(self, host: str, topo: Path, seed: Path, run: Path) -> None:
        self.host, self.run = host, run
        self.port = free_port(ADDR[host])
        self.argv = [sys.executable, "-m", "idq3p_emulator", "--topology", str(topo)]
        self.argv += ["--host", host, "--seed-file", str(seed), "--port", str(self.port)]
        self.argv += ["--rate-bps", RATE, "--buffer-bits", BUFFER]
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.5)
        self.rid = 0
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.run / f"{self.host}.{self.starts}.log"
        argv = [*self.argv, "--log-file", str(log)]
        with open(self.run / f"{self.host}.out", "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=out)
        end = time.monotonic() + 30
        while '"listening"' not in (log.read_text() if log.exists() else ""):
            assert self.proc.poll() is None, (self.run / f"{self.host}.out").read_text()
            assert time.monotonic() < end, f"{self.host} did not start"
            time.sleep(0.05)

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> dict[str, int]:
        """SIGTERM; the counters of its ``stopped`` log line."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(10) == 0
        log = self.run / f"{self.host}.{self.starts}.log"
        (line,) = [json.loads(x) for x in log.read_text().splitlines() if '"stopped"' in x]
        return line

    def ask(self, msg: codec.AnyMessage) -> codec.Keys:
        data = codec.encode(msg)
        for _ in range(20):  # a lost datagram: the same request ID again
            self.sock.sendto(data, (ADDR[self.host], self.port))
            try:
                reply = codec.decode(self.sock.recv(70000))
            except TimeoutError:
                continue
            if reply.request_id == msg.request_id:
                assert isinstance(reply, codec.Keys)
                return reply
        raise AssertionError(f"{self.host} does not answer")

    def next_keys(self, n: int) -> list[codec.Key]:
        """``n`` fresh 32-byte keys, waiting for the rate to release them."""
        got: list[codec.Key] = []
        while len(got) < n:
            self.rid += 1
            r = self.ask(codec.GetNextKey(self.rid, 32, min(n - len(got), 256)))
            got += r.keys
            if r.status == codec.Status.INSUFFICIENT_KEY:
                time.sleep(0.05)
        return got

    def by_id(self, ids: list[int]) -> codec.Keys:
        self.rid += 1
        return self.ask(codec.GetKeyById(self.rid, 32, tuple(ids)))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Box, Box, Path]]:
    doc = yaml.safe_load((HERE / "loopback.yaml").read_text())
    del doc["qkd"]["deterministic"]  # the seed comes by file, as `qkdnet up` gives it
    topo = tmp_path / "loopback-unpinned.yaml"
    topo.write_text(yaml.safe_dump(doc))
    seed = tmp_path / "secrets" / "idqA-idqB.seed"
    seed.parent.mkdir(mode=0o700)
    seed.write_bytes(secrets.token_bytes(32))
    a, b = (Box(h, topo, seed, tmp_path) for h in ("idqA", "idqB"))
    try:
        a.start()
        b.start()
        yield a, b, seed
    finally:
        for box in (a, b):
            box.sock.close()
            if box.proc is not None and box.proc.poll() is None:
                box.proc.kill()
                box.proc.wait(10)


def test_keys_never_repeat_across_crashes_of_either_box(pair: tuple[Box, Box, Path]) -> None:
    a, b, seed = pair
    before_a = a.next_keys(600)  # several buffers' worth: the marks move on a few times
    served = b.by_id([k.key_id for k in before_a[-300:-100]]).keys
    assert len(served) == 200
    before = {k.material for k in before_a} | {k.material for k in served}

    a.crash()
    a.start()
    after_a = a.next_keys(600)
    assert len({k.material for k in after_a} & before) == 0  # a count: no key printed
    assert (seed.parent / "idqA-idqB.seed.idqA.marks").exists()

    b.crash()
    b.start()
    # what it served before the crash, and what it had not been asked for yet: all refused
    for old in (served, before_a[-100:], after_a[:50]):
        r = b.by_id([k.key_id for k in old])
        assert r.keys == () and r.status == codec.Status.UNKNOWN_KEY_ID
    # keys the pair box hands out from now on are served, none of them an earlier one
    fresh = a.next_keys(300)
    r = b.by_id([k.key_id for k in fresh[-100:]])
    assert r.status == codec.Status.OK and len(r.keys) == 100
    assert [k.material for k in r.keys] == [k.material for k in fresh[-100:]]
    assert len({k.material for k in fresh} & (before | {k.material for k in after_a})) == 0
    # and its own fresh keys are new too
    assert len({k.material for k in b.next_keys(100)} & before) == 0

    # a key far beyond what the pair has released: refused, not taken, counted
    stream, off = split_key_id(fresh[-1].key_id)
    future = b.by_id([key_id(stream, off + 10_000_000)])
    assert future.keys == () and future.status == codec.Status.INSUFFICIENT_KEY
    stopped = b.stop()
    assert stopped["future_id"] == 1 and stopped["keys_by_id"] == 100
    a.stop()


def test_a_box_whose_marks_are_unreadable_does_not_start(pair: tuple[Box, Box, Path]) -> None:
    """It could not promise that no key repeats: one line on stderr, exit status 2."""
    a, _, seed = pair
    a.stop()
    marks = seed.parent / "idqA-idqB.seed.idqA.marks"
    assert json.loads(marks.read_bytes())["stream"] == 0  # positions only, no key
    assert stat.S_IMODE(marks.stat().st_mode) == 0o600
    assert seed.read_bytes() not in marks.read_bytes()
    assert seed.read_bytes().hex() not in marks.read_text()
    marks.write_bytes(b"\x00garbage")
    p = subprocess.run(
        [*a.argv, "--log-file", str(a.run / "idqA.bad.log")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
    assert "marks" in p.stderr and "Traceback" not in p.stderr
