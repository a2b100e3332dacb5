"""The data-plane shell (node_agent/dataplane.py) on real sockets: two ends in namespaces
of their own (tests/support/dataplane_pair.py: ha - n1 = channels te1l1/te1l2 = n5 - hb),
keyed by hand as the QE service keys them. One bring-up for every check (module fixture).

What the paper testbed proves end to end over the LSP (tests/dataplane/test_dataplane_e2e_netns.py)
is proved here for the shell alone: ping both ways, ciphertext on the channel (no plaintext
marker, tshark finds nothing malformed), rekeys under a ping at 20/s losing nothing, a
flipped-bit frame and a replayed frame dropped and counted, traffic reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dataplane.test_dataplane_tshark import fields
from tests.support import dataplane_pair as P

pytestmark = pytest.mark.netns

PREFIX = "qdpt"
MARKER = "716b646e65742d6d61726b6572212121"  # "qkdnet-marker!!!", the pings' payload


def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ping(src: str, dst: str, count: int, interval: float = 0.05) -> dict[str, Any]:
    return P.ping_in(PREFIX, src, dst, count, interval, pattern=MARKER)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[P.End, P.End]]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    P.up(PREFIX)
    ends: list[P.End] = []
    try:
        ends = [P.start_end(PREFIX, "head"), P.start_end(PREFIX, "tail")]
        key = P.new_key()
        for e in ends:
            e.key(0, key)
        head, tail = ends
        wait_for(lambda: ping("ha", "10.3.0.2", 1)["received"] == 1, 20, "a first ping")
        yield head, tail
    finally:
        for e in ends:
            e.stop()
        P.down(PREFIX)


def test_ping_both_ways_and_ciphertext_on_the_channel(
    pair: tuple[P.End, P.End], tmp_path: Path
) -> None:
    head, tail = pair
    pcap = tmp_path / "te1l1.pcap"
    dump = subprocess.Popen(
        P.nsexec(
            PREFIX,
            "n1",
            "tcpdump",
            "-U",
            "-i",
            "te1l1",
            "-w",
            str(pcap),
            "ether",
            "proto",
            "0x88b5",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, 10, "tcpdump to start")
        r1 = ping("ha", "10.3.0.2", 10, 0.02)
        r2 = ping("hb", "10.3.0.1", 10, 0.02)
        assert r1["lost"] == 0 and r2["lost"] == 0, (r1, r2)
        wait_for(lambda: pcap.stat().st_size > 20 * 100, 10, "the capture of 20 frames")
    finally:
        dump.terminate()
        dump.wait()
    raw = pcap.read_bytes()
    assert bytes.fromhex(MARKER) not in raw and b"qkdnet-marker" not in raw
    rows = fields(pcap, "", "frame.protocols", "qkdnet.dataplane.direction", "_ws.malformed",
                  "_ws.expert")  # fmt: skip
    assert len(rows) >= 20
    for proto, direction, malformed, experts in rows:
        assert proto.endswith("qkdnet.dataplane") and direction == "0"
        assert malformed == "" and experts == ""
    h, t = head.status(), tail.status()
    assert h["frames_encrypted"] >= 20 and t["frames_decrypted"] >= 20
    assert t["frames_encrypted"] >= 20 and h["frames_decrypted"] >= 20
    assert h["dataplane"] == {"access": "access", "tx": "te1l1", "rx": "te1l2"}
    assert t["dataplane"] == {"access": "access", "tx": "te1l2", "rx": "te1l1"}


def test_rekeys_under_a_ping_at_20_per_second_lose_nothing(pair: tuple[P.End, P.End]) -> None:
    head, tail = pair
    start = head.status()["key_index"]
    proc = subprocess.Popen(
        P.nsexec(PREFIX, "ha", *P.ping_argv("10.3.0.2", 60, 0.05)),
        stdout=subprocess.PIPE,
        text=True,
        cwd=P.ROOT,
    )
    for k in range(start + 1, start + 6):  # five refreshes, the tail 20 ms after the head
        key = P.new_key()
        time.sleep(0.4)
        head.key(k, key)
        time.sleep(0.02)
        tail.key(k, key)
    out, _ = proc.communicate(timeout=60)
    assert json.loads(out)["lost"] == 0, out
    wait_for(lambda: head.status()["key_index"] == tail.status()["key_index"] == start + 5,
             10, "both ends sending under the last key")  # fmt: skip
    h, t = head.status(), tail.status()
    assert h["auth_failures"] == t["auth_failures"] == 0
    assert h["rekeys"] >= 5 and t["rekeys"] >= 5
    assert len(h["rx_keys"]) <= 4


def _inject(mode: str) -> None:
    """Resend the next QE frame n1 sends on te1l1, flipped or as it was."""
    inj = subprocess.Popen(
        P.nsexec(
            PREFIX,
            "n1",
            sys.executable,
            "-m",
            "tests.support.dataplane_pair",
            "inject",
            "te1l1",
            mode,
        ),
        stdout=subprocess.PIPE,
        text=True,
        cwd=P.ROOT,
    )
    assert inj.stdout is not None
    assert inj.stdout.readline().strip() == "ready"  # bound: the next frame sent is its
    for _ in range(20):
        ping("ha", "10.3.0.2", 2, 0.05)
        if inj.poll() is not None:
            break
    out, _ = inj.communicate(timeout=20)
    assert mode in out


def test_a_flipped_bit_is_dropped_and_counted(pair: tuple[P.End, P.End]) -> None:
    _head, tail = pair
    before = tail.status()
    _inject("flip")
    wait_for(lambda: tail.status()["auth_failures"] == before["auth_failures"] + 1, 10,
             "the auth failure counted")  # fmt: skip
    assert ping("ha", "10.3.0.2", 3, 0.05)["lost"] == 0  # the service goes on


def test_a_replayed_frame_is_dropped_and_counted(pair: tuple[P.End, P.End]) -> None:
    _head, tail = pair
    before = tail.status()
    _inject("replay")
    wait_for(lambda: tail.status()["replays"] == before["replays"] + 1, 10, "the replay counted")
    assert tail.status()["auth_failures"] == before["auth_failures"]


def test_traffic_is_reported_for_volume_refresh(pair: tuple[P.End, P.End]) -> None:
    head, _tail = pair
    ping("ha", "10.3.0.2", 5, 0.02)

    def reported() -> bool:
        s = head.status()
        return s["traffic_reported"] == s["bytes_encrypted"] + s["bytes_decrypted"]

    wait_for(reported, 10, "every byte reported")
    assert head.status()["traffic_reported"] > 0
