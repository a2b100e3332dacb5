"""Forged, reflected and replayed datagrams and floods against the real proxy and emulator
daemons on loopback (tests/qkd/loopback.yaml, ports 36xxx, not those of
test_qkd_daemons.py).

Each attack is followed by a request that needs a round trip through the attacked socket
(an OPEN for the sync socket, a first key of a new length for the device socket, an
answered request for the northbound and device ports): datagrams of one socket are handled
in order, so when that answer comes, every datagram sent before it was handled, and the
counters the daemons write when they stop count all of them. The spoofed-source part sends
raw IPv4 packets and reads the loopback device with a packet socket: it needs root.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemonkit.etsi004 import Etsi004Client
from daemonkit.ratelog import SUPPRESSED
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.ratelimit import LogLimiter

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TOPO = HERE / "loopback.yaml"
NORTH, SYNC, IDQ = 36424, 36626, 36323
A, B = ("127.55.2.11", NORTH), ("127.55.3.11", NORTH)
TN1, TN5 = "127.55.2.1", "127.55.3.5"
A_SYNC, B_SYNC = ("127.55.6.11", SYNC), ("127.55.6.15", SYNC)
IDQ_A = ("127.55.4.2", IDQ)
A_SOUTH_ADDR = "127.55.4.1"
PORTS = {
    "idq3p_emulator": ["--port", str(IDQ)],
    "qkd_proxy": ["--north-port", str(NORTH), "--sync-port", str(SYNC), "--idq-port", str(IDQ)],
}
PACKAGE = {"idqA": "idq3p_emulator", "idqB": "idq3p_emulator"}


class Lab:
    """The four daemons of tests/qkd/loopback.yaml; each life of a host logs to its own file."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.lives: dict[str, int] = {}

    def log(self, host: str) -> Path:
        return self.d / f"{host}.{self.lives[host]}.log"

    def start(self, host: str) -> None:
        package = PACKAGE.get(host, "qkd_proxy")
        self.lives[host] = self.lives.get(host, 0) + 1
        argv = [sys.executable, "-m", package, "--topology", str(TOPO), "--host", host]
        argv += ["--state-dir", str(self.d / f"{host}.{self.lives[host]}")]
        argv += [*PORTS[package], "--log-file", str(self.log(host))]
        self.procs[host] = subprocess.Popen(argv, cwd=ROOT)

    def wait_listening(self, host: str) -> None:
        end = time.monotonic() + 20
        while '"listening"' not in _read(self.log(host)):
            assert self.procs[host].poll() is None, f"{host} exited"
            assert time.monotonic() < end, f"{host} did not start"
            time.sleep(0.02)

    def stop(self, host: str) -> dict[str, int]:
        """SIGTERM, exit status 0, and the counters of the life that ended."""
        p = self.procs[host]
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
        state = self.d / f"{host}.{self.lives[host]}" / f"{host}.counters.json"
        return json.loads(state.read_text())

    def restart(self, host: str) -> dict[str, int]:
        counters = self.stop(host)
        self.start(host)  # at once: within the same second as the stop, as a rule
        self.wait_listening(host)
        return counters


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    hosts = ("idqA", "idqB", "etsiA", "etsiB")
    try:
        for h in hosts:
            lab.start(h)
        for h in hosts:
            lab.wait_listening(h)
        yield lab
    finally:
        for p in lab.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _read(p: Path) -> str:
    return p.read_text() if p.exists() else ""


def _lines(p: Path, *events: str) -> int:
    """Lines of the log (of these events only, if any are named)."""
    lines = _read(p).splitlines()
    return len([x for x in lines if not events or json.loads(x)["msg"] in events])


async def _session(length: int = 32, n: int = 20) -> list[bytes]:
    """Open a session at both ends, take ``n`` keys at each; they are equal."""
    async with Etsi004Client(A, (TN1, 0)) as a, Etsi004Client(B, (TN5, 0)) as b:
        st, h = await a.open("127.55.1.5", key_length=length)
        assert st == etsi.Status.SUCCESSFUL
        assert (await b.open("127.55.1.1", h, key_length=length))[0] == etsi.Status.SUCCESSFUL
        ka = [await a.get_key(h) for _ in range(n)]
        kb = [await b.get_key(h) for _ in range(n)]
        assert all(st == etsi.Status.SUCCESSFUL for st, _, _ in ka + kb)
        assert ka == kb
        assert await a.close(h) == await b.close(h) == etsi.Status.SUCCESSFUL
        return [k for _, _, k in ka]


def _bound(limiter: LogLimiter, seconds: float) -> float:
    """The most lines of one event the budget lets through in ``seconds`` (and a summary
    line every interval, and one at stop)."""
    return limiter.burst + limiter.rate * seconds + seconds / limiter.interval + 2


def test_floods_of_malformed_datagrams_are_counted_exactly_and_logged_rate_limited(
    lab: Lab,
) -> None:
    n, batch = 3000, 50
    flood = ("malformed request", SUPPRESSED)  # the lines the flood may cause
    assert all(_lines(lab.log(h), *flood) == 0 for h in ("etsiA", "idqA"))
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((TN1, 0))
        s.settimeout(10)
        probe = etsi.encode(etsi.GetKey(7, b"\x01" * 64))  # answered: unknown handle
        for i in range(0, n, batch):
            for j in range(i, i + batch):
                s.sendto(b"\x01\x04\x00\x00garbage" + j.to_bytes(4, "big"), A)
            s.sendto(probe, A)  # its answer: the batch before it was handled
            assert etsi.decode(s.recv(200)).status == etsi.Status.NO_QKD_CONNECTION
        bad = b"IQ\x01\x01\x00\x00\x00\x09\x00"  # answered with an IDQ3P ERROR
        for _ in range(n // batch):
            for _ in range(batch):
                s.sendto(bad, IDQ_A)
            for _ in range(batch):
                assert s.recv(100)[:4] == b"IQ\x01\xff"
    elapsed = time.monotonic() - t0
    asyncio.run(_session())  # both keep serving
    proxy, emulator = lab.stop("etsiA"), lab.stop("idqA")
    assert proxy["north_malformed"] == n and emulator["malformed"] == n
    limit = _bound(LogLimiter(), elapsed)
    added = {h: _lines(lab.log(h), *flood) for h in ("etsiA", "idqA")}
    total = {h: _lines(lab.log(h)) for h in ("etsiA", "idqA")}
    print(f"{n} malformed datagrams each in {elapsed:.1f} s: flood lines {added} (at most")
    print(f"{limit:.0f} each), whole logs {total}")
    assert 0 < added["etsiA"] <= limit and 0 < added["idqA"] <= limit
    assert '"suppressed"' in _read(lab.log("etsiA"))


# --- spoofed sources (root) ------------------------------------------------------------------
class Capture:
    """Every UDP datagram on the loopback device, read with a packet socket in a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self.seen: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                frame, addr = self.sock.recvfrom(70000)
            except TimeoutError:
                continue
            if addr[2] != socket.PACKET_HOST:
                continue  # each loopback packet shows up once outgoing, once incoming
            ip = frame[14:]
            if ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport, length = struct.unpack("!HHH", ip[ihl : ihl + 6])
            src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            self.seen.append(((src, sport), (dst, dport), ip[ihl + 8 : ihl + length]))

    def catch_up(self) -> None:
        """Wait until every datagram sent so far on lo has been read (a marker is seen)."""
        marker = os.urandom(16)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(marker, ("127.55.6.99", 9))
        end = time.monotonic() + 10
        while not any(d == marker for _, _, d in list(self.seen)):
            assert time.monotonic() < end, "the capture does not see the loopback device"
            time.sleep(0.01)

    def between(self, src: tuple[str, int], dst: tuple[str, int]) -> list[bytes]:
        return [d for s, t, d in list(self.seen) if s == src and t == dst]

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def spoof(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
    """Send a UDP datagram with any source address and port (a raw IPv4 packet; the kernel
    fills in the IP checksum; UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(data), 0) + data
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        17,
        0,
        socket.inet_aton(src[0]),
        socket.inet_aton(dst[0]),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
        s.sendto(ip + udp, (dst[0], 0))


@pytest.mark.skipif(os.geteuid() != 0, reason="raw and packet sockets need root")
def test_reflected_forged_and_replayed_frames_and_forged_device_replies_are_dropped(
    lab: Lab,
) -> None:
    cap = Capture()
    try:
        first = asyncio.run(_session())
        cap.catch_up()
        a_to_b = cap.between(A_SYNC, B_SYNC)
        b_to_a = cap.between(B_SYNC, A_SYNC)
        (a_south,) = {s for s, t, _ in cap.seen if s[0] == A_SOUTH_ADDR and t == IDQ_A}
        assert a_to_b and b_to_a
        # 1. A's own frames sent back to A from B's address and port: the wrong key
        for f in a_to_b:
            spoof(f, B_SYNC, A_SYNC)
        # 2. B's genuine frames from another port of B's host and from another host
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((B_SYNC[0], 0))
            for f in b_to_a:
                s.sendto(f, A_SYNC)
        for f in b_to_a:
            spoof(f, ("127.55.6.99", SYNC), A_SYNC)
        # 3. KEYS replies from the device's address and port, request IDs one would guess
        key = b"\x66" * 16
        for rid in range(1, 101):
            keys = tuple(idq.Key(i, key) for i in range(8))
            spoof(idq.encode(idq.Keys(rid, idq.Status.OK, 16, keys)), IDQ_A, a_south)
        # a first key of a new length needs the device: its reply comes after the forgeries
        second = asyncio.run(_session(length=16))
        assert key not in second
        # 4. B restarts; A's frames captured before are replayed to it from A's address
        lab.restart("etsiB")
        for f in a_to_b:
            spoof(f, A_SYNC, B_SYNC)
        third = asyncio.run(_session())  # A's CREATE reaches B after the replays
        # 5. A restarts at once: B accepts its frames (a new random epoch, not a time)
        a_first = lab.restart("etsiA")
        fourth = asyncio.run(_session())
        assert not set(first) & set(third) and not set(third) & set(fourth)
    finally:
        cap.close()
    b_second = lab.stop("etsiB")
    reflected, foreign = len(a_to_b), 2 * len(b_to_a)
    print(f"reflected {reflected}, foreign {foreign}, forged device replies 100")
    print("etsiA", {k: v for k, v in a_first.items() if k.startswith(("sync", "south"))})
    print("etsiB", {k: v for k, v in b_second.items() if k.startswith("sync")})
    assert a_first["sync_bad_mac"] == reflected
    assert a_first["sync_foreign"] == foreign
    assert a_first["south_unmatched"] == 100
    assert b_second["sync_stale"] >= len(a_to_b)  # and the greeting that found B restarted
    assert b_second["sync_replayed"] == 0 and b_second["sync_accepted"] > 0
