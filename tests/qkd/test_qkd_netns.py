"""The issue's namespace proofs on the paper topology's QKD half (prefix ``qq``).

topologies/paper.yaml is brought up by compose's namespace builder with only the QKD
daemons running (both IDQ3P emulators, both proxies); tn1 and tn5 use the command-line
client in their own namespaces.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from compose.backend import quiet
from compose.netns import NetnsTestbed, teardown
from idq3p_emulator.store import make_keyfile
from tests.support import tshark

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]
PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
EMULATORS, PROXIES = ("idqA", "idqB"), ("etsiA", "etsiB")
QKD_DOMAINS = ("qa", "qb", "ka", "kb", "sync")
A, B = "10.2.1.11", "10.2.2.11"
TN1_RID, TN5_RID = "10.1.1.1", "10.1.1.5"


def wait_listening(tb: NetnsTestbed, since: dict[str, int], timeout: float = 20.0) -> None:
    """Until each daemon's log says it listens, after ``since`` (the log's size before it
    started: a restarted daemon appends to the same log)."""
    deadline = time.monotonic() + timeout
    for host, offset in since.items():
        log = tb.run_dir / f"{host}.log"
        while not (log.exists() and b'"listening"' in log.read_bytes()[offset:]):
            if not tb.running(host):
                out = (tb.run_dir / f"{host}.out").read_text(errors="replace")
                raise RuntimeError(f"{host} is not running: {out[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}: not listening after {timeout:g} s")
            time.sleep(0.05)


def start_qkd(tb: NetnsTestbed, emulator_args: Sequence[str] = ()) -> None:
    """The two IDQ3P emulators (with ``emulator_args``), then the two proxies; waits until
    they listen."""
    since = {}
    for h in (*EMULATORS, *PROXIES):
        log = tb.run_dir / f"{h}.log"
        since[h] = log.stat().st_size if log.exists() else 0
    for h in EMULATORS:
        assert tb.start(h, extra_args=emulator_args), h
    for h in PROXIES:
        assert tb.start(h), h
    wait_listening(tb, since)


def stop_qkd(tb: NetnsTestbed) -> dict[str, int | None]:
    """SIGTERM to the four daemons; each one's exit status."""
    return {h: code for h in (*EMULATORS, *PROXIES) for code in tb.stop(h).values()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsTestbed]:
    teardown("qq", progress=quiet)  # leftovers of a crashed earlier run
    tb = NetnsTestbed(PAPER, tmp_path_factory.mktemp("qqlab"), prefix="qq", progress=quiet)
    codes: dict[str, int | None] = {}
    try:
        tb.up(start_daemons=False)
        # a second SAE address on each end's side
        tb.exec("tn1", ["ip", "addr", "add", "10.2.1.99/24", "dev", "qa"], check=True)
        tb.exec("tn5", ["ip", "addr", "add", "10.2.2.99/24", "dev", "qb"], check=True)
        start_qkd(tb)
        yield tb
    finally:
        codes = stop_qkd(tb)
        tb.down()
    assert all(c == 0 for c in codes.values()), codes  # clean SIGTERM shutdown


def udp_payloads(pcap: bytes) -> list[tuple[str, str, int, bytes]]:
    """(source, destination, destination port, payload) of the IPv4/UDP frames of an
    Ethernet pcap (tcpdump -w)."""
    out = []
    pos = 24
    while pos + 16 <= len(pcap):
        n = int.from_bytes(pcap[pos + 8 : pos + 12], "little")
        frame = pcap[pos + 16 : pos + 16 + n]
        pos += 16 + n
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl :]
        src = ".".join(str(b) for b in frame[26:30])
        dst = ".".join(str(b) for b in frame[30:34])
        length = int.from_bytes(udp[4:6], "big")
        out.append((src, dst, int.from_bytes(udp[2:4], "big"), udp[8:length]))
    return out


def cli(lab: NetnsTestbed, host: str, *args: str, bind: str | None = None) -> dict:
    """``python -m qkd_proxy.client`` in ``host``'s namespace toward its proxy."""
    proxy = A if host == "tn1" else B
    extra = ["--bind", bind] if bind else []
    argv = [sys.executable, "-m", "qkd_proxy.client", "--proxy", proxy, *extra, *args]
    p = lab.exec(host, argv, capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"client failed ({p.returncode}): {p.stdout} {p.stderr}")
    return dict(json.loads(p.stdout))


def open_pair(lab: NetnsTestbed) -> str:
    o = cli(lab, "tn1", "open", "--destination", TN5_RID)
    assert o["status"] == 0
    return o["key_handle"]


def test_tn5_gets_the_same_100_keys_as_tn1(lab: NetnsTestbed) -> None:
    h = open_pair(lab)
    a = cli(lab, "tn1", "get", "--handle", h, "--count", "100")
    assert a["status"] == 0 and "key" not in a["keys"][0]
    o = cli(lab, "tn5", "open", "--destination", TN1_RID, "--handle", h)
    assert o == {"status": 0, "key_handle": h, "status_name": "SUCCESSFUL"}
    b = cli(lab, "tn5", "get", "--handle", h, "--count", "100")
    assert b["status"] == 0
    assert [k["index"] for k in a["keys"]] == list(range(100))
    assert a["keys"] == b["keys"]
    assert len({k["fingerprint"] for k in a["keys"]}) == 100
    assert cli(lab, "tn1", "close", "--handle", h) == {"status": 0, "status_name": "SUCCESSFUL"}
    assert cli(lab, "tn5", "close", "--handle", h) == {"status": 0, "status_name": "SUCCESSFUL"}


def test_an_address_that_did_not_open_the_handle_is_refused(lab: NetnsTestbed) -> None:
    h = open_pair(lab)
    # an address that is no node's (10.2.1.99, on tn1's host): the proxy does not serve
    # it, whatever it asks: status 4, no session, nothing kept
    r = cli(lab, "tn1", "get", "--handle", h, bind="10.2.1.99")
    assert r == {"status": 4, "keys": [], "status_name": "NO_QKD_CONNECTION"}
    r = cli(lab, "tn1", "open", "--destination", TN5_RID, bind="10.2.1.99")
    assert r["status"] == 4
    # at the peer proxy, only tn5 (the named destination) may join, and then only it
    cli(lab, "tn5", "open", "--destination", TN1_RID, "--handle", h)
    r = cli(lab, "tn5", "get", "--handle", h, bind="10.2.2.99")
    assert r["status"] == 4
    # the refusals consumed nothing: both owners get index 0
    a = cli(lab, "tn1", "get", "--handle", h)
    b = cli(lab, "tn5", "get", "--handle", h)
    assert a["keys"] == b["keys"] and a["keys"][0]["index"] == 0


def test_1000_keys_match_with_20_percent_loss_capture_has_no_key_replays_rejected(
    lab: NetnsTestbed,
) -> None:
    pcap = lab.run_dir / "sync.pcap"
    dump = tshark.tcpdump(lab, "etsiA", ["-i", "sync", "-n", "udp"], pcap)
    try:
        for d in QKD_DOMAINS:  # 20 % of the frames crossing any QKD domain are dropped
            lab.impair(d, loss=20)
        h = open_pair(lab)
        a = cli(lab, "tn1", "get", "--handle", h, "--count", "1000", "--show-key")
        cli(lab, "tn5", "open", "--destination", TN1_RID, "--handle", h)
        b = cli(lab, "tn5", "get", "--handle", h, "--count", "1000", "--show-key")
        dropped = sum(lab.dropped().values())
    finally:
        for d in QKD_DOMAINS:
            lab.clear_impair(d)
        time.sleep(0.3)
        dump.send_signal(signal.SIGTERM)
        dump.wait(10)
    assert dropped > 200  # the loss really happened
    assert a["status"] == 0 and b["status"] == 0
    assert [k["index"] for k in a["keys"]] == list(range(1000))  # no gap, no repeat
    assert a["keys"] == b["keys"]
    keys = [bytes.fromhex(k["key"]) for k in a["keys"]]
    assert len(set(keys)) == 1000
    data = pcap.read_bytes()
    assert bytes.fromhex(h) in data  # the capture did see the sync channel's sessions
    assert not [k for k in keys if k in data]

    # captured frames of etsiB, each twice, and a forged one, sent from etsiB's host but not
    # from its sync port: only the peer's sync address and port may send sync frames (replays
    # that pass that check fail on epoch or window: tests/qkd/test_qkd_attacks_loopback.py)
    frames = [
        p
        for src, dst, port, p in udp_payloads(data)
        if (src, dst, port) == ("10.11.1.15", "10.11.1.11", 5626)
    ]
    assert len(frames) > 10
    forged = bytearray(frames[-1])
    forged[20] ^= 0xFF
    replay = [*frames[:5], *frames[:5], bytes(forged)]
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('10.11.1.15',0))\n"
        "for h in sys.argv[1:]: s.sendto(bytes.fromhex(h),('10.11.1.11',5626))\n"
    )
    lab.exec("etsiB", [sys.executable, "-c", script, *[f.hex() for f in replay]], timeout=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        foreign = [
            line
            for line in (lab.run_dir / "etsiA.log").read_text().splitlines()
            if '"sync frame rejected"' in line and json.loads(line).get("why") == "source"
        ]
        if len(foreign) >= len(replay):
            break
        time.sleep(0.1)
    assert len(foreign) == len(replay)


def test_exhaustion_returns_insufficient_key_promptly(lab: NetnsTestbed) -> None:
    # restart the pair on a key file holding 50 keys of 32 bytes per direction
    keyfile = lab.run_dir / "pair.key"
    keyfile.write_bytes(make_keyfile(os.urandom(2 * 50 * 32)))
    stop_qkd(lab)
    start_qkd(lab, ["--key-file", str(keyfile)])
    h = open_pair(lab)
    a = cli(lab, "tn1", "get", "--handle", h, "--count", "60")
    assert a["status"] == 2 and len(a["keys"]) == 50
    cli(lab, "tn5", "open", "--destination", TN1_RID, "--handle", h)
    b = cli(lab, "tn5", "get", "--handle", h, "--count", "60")
    assert b == a
    # answered at the first transmission: no retransmission needed (first timeout 1 s)
    script = (
        "import asyncio,sys\n"
        "from daemonkit.etsi004 import Etsi004Client\n"
        "async def m():\n"
        f"  async with Etsi004Client(('{A}', 5424), rto=1.0) as c:\n"
        f"    st, idx, key = await c.get_key(bytes.fromhex('{h}'))\n"
        "    print(int(st), c.last_attempts)\n"
        "asyncio.run(m())\n"
    )
    p = lab.exec("tn1", [sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["2", "1"], p.stderr


def test_two_bring_ups_make_private_secrets_and_other_keys(tmp_path: Path) -> None:
    """``up`` writes fresh secret files (folder 0700, files 0600) that the emulators and
    proxies are given; each bring-up's key 0 is equal at tn1 and tn5, and differs from the
    other bring-up's (prefix ``qr``)."""
    fps, secrets = [], []
    for i in range(2):
        teardown("qr", progress=quiet)
        tb = NetnsTestbed(PAPER, tmp_path / f"run{i}", prefix="qr", progress=quiet)
        codes: dict[str, int | None] = {}
        try:
            tb.up(start_daemons=False)
            folder = tb.run_dir / "secrets"
            assert folder.stat().st_mode & 0o777 == 0o700
            files = sorted(folder.iterdir())
            assert [f.name for f in files] == ["etsiA-etsiB.sync", "idqA-idqB.seed"]
            assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
            secrets.append([f.read_bytes() for f in files])
            start_qkd(tb)
            h = open_pair(tb)
            a = cli(tb, "tn1", "get", "--handle", h)
            assert cli(tb, "tn5", "open", "--destination", TN1_RID, "--handle", h)["status"] == 0
            b = cli(tb, "tn5", "get", "--handle", h)
            assert a["keys"][0]["index"] == b["keys"][0]["index"] == 0
            assert a["keys"][0]["fingerprint"] == b["keys"][0]["fingerprint"]
            fps.append(a["keys"][0]["fingerprint"])
            logs = b"".join(f.read_bytes() for f in tb.run_dir.glob("*.log"))
            logs += b"".join(f.read_bytes() for f in tb.run_dir.glob("*.out"))
            for s in secrets[-1]:
                assert s not in logs and s.hex().encode() not in logs
        finally:
            codes = stop_qkd(tb)
            tb.down()
        assert all(c == 0 for c in codes.values()), codes
    assert fps[0] != fps[1]
    assert all(x != y for x, y in zip(secrets[0], secrets[1], strict=True))
