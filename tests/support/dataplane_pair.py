"""Two data-plane ends in namespaces of their own, without the GMPLS testbed: what the
data-plane shell's netns test and bench/dataplane.py share.

Four namespaces ``{p}-ha``, ``{p}-n1``, ``{p}-n5``, ``{p}-hb``; veth pairs ``ha:eth0 <->
n1:access``, ``n5:access <-> hb:eth0`` (MTU 1500) and two channels ``n1:te1l1 <->
n5:te1l1`` (head to tail) and ``n1:te1l2 <-> n5:te1l2`` (tail to head), MTU 1600, the
names the GMPLS testbed gives (docs/dataplane.md). ha is 10.3.0.1/24, hb 10.3.0.2/24.
Offloads are turned off where ethtool exists (else UDP/ICMP only: TCP would build GSO
frames larger than a channel carries).

Modes of a pair: ``encrypted`` (one :class:`node_agent.dataplane.Dataplane` per end,
``python -m tests.support.dataplane_pair end ...``), ``plain`` (the same shell, the
cipher replaced by a copy: what the cryptography costs) and ``kernel`` (tc mirred between
access and channel: no user space at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("ha", "n1", "n5", "hb")
LSP_FIELDS = ("10.1.1.5", 1, "10.1.1.1", "10.1.1.1", 1)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def ns(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"


def nsexec(prefix: str, name: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns(prefix, name), *argv]


def down(prefix: str) -> None:
    for n in NAMES:
        sh("ip", "netns", "del", ns(prefix, n), check=False)


def up(prefix: str) -> None:
    """The four namespaces and their links (anything of an earlier run removed first)."""
    down(prefix)
    for n in NAMES:
        sh("ip", "netns", "add", ns(prefix, n))
        sh(*nsexec(prefix, n, "ip", "link", "set", "lo", "up"))
    links = [
        ("ha", "eth0", "n1", "access", 1500),
        ("n1", "te1l1", "n5", "te1l1", 1600),
        ("n1", "te1l2", "n5", "te1l2", 1600),
        ("n5", "access", "hb", "eth0", 1500),
    ]
    for i, (a, ai, b, bi, mtu) in enumerate(links):
        ta, tb = f"qdp{os.getpid() % 10000}a{i}", f"qdp{os.getpid() % 10000}b{i}"
        sh("ip", "link", "add", ta, "type", "veth", "peer", "name", tb)
        for tmp, n, final in ((ta, a, ai), (tb, b, bi)):
            sh("ip", "link", "set", tmp, "netns", ns(prefix, n))
            sh(*nsexec(prefix, n, "ip", "link", "set", tmp, "name", final))
            sh(*nsexec(prefix, n, "ip", "link", "set", final, "mtu", str(mtu), "up"))
            if shutil.which("ethtool"):
                sh(*nsexec(prefix, n, "ethtool", "-K", final, "tso", "off", "gso", "off",
                           "gro", "off", "tx", "off", "rx", "off"), check=False)  # fmt: skip
    sh(*nsexec(prefix, "ha", "ip", "addr", "add", "10.3.0.1/24", "dev", "eth0"))
    sh(*nsexec(prefix, "hb", "ip", "addr", "add", "10.3.0.2/24", "dev", "eth0"))


def kernel_path(prefix: str) -> None:
    """The unencrypted reference: access <-> channel by tc mirred in n1 and n5."""
    for n, pairs in (("n1", (("access", "te1l1"), ("te1l2", "access"))),
                     ("n5", (("te1l1", "access"), ("access", "te1l2")))):  # fmt: skip
        for src, dst in pairs:
            sh(*nsexec(prefix, n, "tc", "qdisc", "add", "dev", src, "clsact"), check=False)
            sh(*nsexec(prefix, n, "tc", "filter", "add", "dev", src, "ingress", "protocol",
                       "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress",
                       "redirect", "dev", dst))  # fmt: skip


@dataclass
class End:
    """A running end: its process, fed keys and asked for status on stdin."""

    proc: subprocess.Popen[str]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def key(self, index: int, key: bytes) -> None:
        self.send(f"key {index} {key.hex()}")

    def status(self) -> dict[str, Any]:
        self.send("status")
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the data-plane end exited")
            if line.startswith("{"):
                out: dict[str, Any] = json.loads(line)
                return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_end(
    prefix: str,
    role: str,
    *,
    algorithm: int = 10,
    plain: bool = False,
    stderr: IO[Any] | None = None,
    extra: list[str] | None = None,
) -> End:
    node = "n1" if role == "head" else "n5"
    argv = [sys.executable, "-m", "tests.support.dataplane_pair", "end", role,
            "--algorithm", str(algorithm)] + (["--plain"] if plain else [])  # fmt: skip
    argv += extra or []
    proc = subprocess.Popen(
        nsexec(prefix, node, *argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    end = End(proc)
    end.status()  # up and attached
    return end


def new_key(n: int = 32) -> bytes:
    return secrets.token_bytes(n)


# --- inside a namespace: one end -----------------------------------------------------------


@dataclass(frozen=True)
class _Channel:
    local_if: int
    lam: int


@dataclass(frozen=True)
class _CrossConnect:
    lsp: Any
    role: str
    fwd_in: _Channel | None
    fwd_out: _Channel | None
    rev_in: _Channel | None
    rev_out: _Channel | None


def _plain_end() -> type:
    """A DataplaneEnd whose cipher is a copy (the bench's "plain" mode)."""
    from gmpls.dataplane import core

    class _Copy:
        def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
            return data + bytes(16)

        def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
            return data[:-16]

    class PlainEnd(core.DataplaneEnd):
        def handle(self, event: Any, now: float) -> list[Any]:
            out = super().handle(event, now)
            for sa in self.keys.values():
                sa.cipher = _Copy()  # type: ignore[assignment]
            return out

    return PlainEnd


async def _run_end(role: str, algorithm: int, plain: bool) -> None:
    from gmpls.qe_service import events as QE
    from gmpls.rsvp.events import LspKey
    from node_agent import dataplane

    if plain:
        dataplane.DataplaneEnd = _plain_end()  # type: ignore[misc]
    a, t, s, e, i = LSP_FIELDS
    lsp = LspKey(IPv4Address(a), int(t), IPv4Address(s), IPv4Address(e), int(i))
    traffic = [0]
    dp = dataplane.Dataplane(
        "access",
        node=role,
        router_id=IPv4Address(s) if role == "head" else IPv4Address(a),
        on_traffic=lambda sid, n: traffic.__setitem__(0, traffic[0] + n),
    )
    await dp.start()
    fwd, rev = _Channel(1, 1), _Channel(1, 2)
    if role == "head":
        cc = _CrossConnect(lsp, role, None, fwd, rev, None)
    else:
        cc = _CrossConnect(lsp, role, fwd, None, None, rev)
    dp.attach(cc)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "key":
            key = bytes.fromhex(line[2])
            dp.on_key(QE.DataplaneKey(lsp, "pair", int(line[1]), algorithm, key))
        elif line[0] == "status":
            st = dp.status("pair")
            st["traffic_reported"] = traffic[0]
            st["cpu_s"] = time.process_time()
            print(json.dumps(st), flush=True)
    dp.on_stop(QE.DataplaneStop(lsp, "pair"))
    dp.detach(lsp)
    await dp.stop()


def _inject(ifname: str, mode: str, timeout: float) -> None:
    """Take the next QE frame sent out of ``ifname`` and send it again: as it was
    (``replay``) or with one bit of its header flipped (``flip``). Prints what it did."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0x0003))
    s.settimeout(timeout)
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING and data[12:14] == b"\x88\xb5":
            break
    frame = bytearray(data)
    if mode == "flip":
        # one bit of the packet number (2^40 up): a fresh number, so the frame is not
        # refused as a replay of the one just sent, and the tag (the header is its
        # additional data) no longer verifies
        frame[14 + 12] ^= 0x01
    s.send(bytes(frame))
    print(json.dumps({"mode": mode, "key_index": int.from_bytes(frame[16:20], "big"),
                      "pn": int.from_bytes(frame[24:32], "big")}), flush=True)  # fmt: skip


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _echo(ident: int, seq: int, payload: bytes) -> bytes:
    head = bytes([8, 0, 0, 0]) + ident.to_bytes(2, "big") + seq.to_bytes(2, "big")
    csum = _checksum(head + payload).to_bytes(2, "big")
    return head[:2] + csum + head[4:] + payload


# long: one loop that sends on time and reads the answers between sends
def icmp_ping(
    dst: str, count: int, interval: float, size: int = 56, pattern: str = "00", wait: float = 2.0
) -> dict[str, Any]:
    """ICMP echo ``count`` times every ``interval`` s with ``size`` payload bytes of
    ``pattern`` (hex); what came back (this machine has no ping binary)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    ident = os.getpid() & 0xFFFF
    unit = bytes.fromhex(pattern) or b"\0"
    payload = (unit * (size // len(unit) + 1))[:size]
    sent: dict[int, float] = {}
    rtts: list[float] = []
    seq = 0
    next_send = time.monotonic()
    end: float | None = None
    while True:
        now = time.monotonic()
        while seq < count and now >= next_send:
            seq += 1
            sent[seq] = now
            s.sendto(_echo(ident, seq, payload), (dst, 0))
            next_send += interval
        if seq >= count and end is None:
            end = now + wait
        if end is not None and (now >= end or len(rtts) == count):
            break
        left = (next_send if seq < count else end or now) - now
        r, _, _ = select.select([s], [], [], max(0.0, left))
        if r:
            data, (src, _) = s.recvfrom(65535)
            ihl = (data[0] & 0x0F) * 4
            typ, rid, rseq = data[ihl], data[ihl + 4 : ihl + 6], data[ihl + 6 : ihl + 8]
            n = int.from_bytes(rseq, "big")
            if typ == 0 and src == dst and int.from_bytes(rid, "big") == ident and n in sent:
                rtts.append(time.monotonic() - sent.pop(n))
    s.close()
    return {
        "sent": count,
        "received": len(rtts),
        "lost": count - len(rtts),
        "rtt_avg_ms": round(sum(rtts) / len(rtts) * 1000, 3) if rtts else None,
    }


def ping_argv(dst: str, count: int, interval: float = 0.05, size: int = 56,
              pattern: str = "00") -> list[str]:  # fmt: skip
    """The command line of :func:`icmp_ping` in a namespace (prints one JSON line)."""
    return [sys.executable, "-m", "tests.support.dataplane_pair", "ping", dst, "--count",
            str(count), "--interval", str(interval), "--size", str(size), "--pattern",
            pattern]  # fmt: skip


def ping_in(prefix: str, node: str, dst: str, count: int, interval: float = 0.05,
            size: int = 56, pattern: str = "00") -> dict[str, Any]:  # fmt: skip
    r = sh(*nsexec(prefix, node, *ping_argv(dst, count, interval, size, pattern)), check=False)
    if r.returncode != 0:
        return {"sent": count, "received": 0, "lost": count, "error": r.stderr[-300:]}
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.dataplane_pair")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("end")
    e.add_argument("role", choices=("head", "tail"))
    e.add_argument("--algorithm", type=int, default=10)
    e.add_argument("--plain", action="store_true")
    e.add_argument("--profile", help="write a cProfile of the end to this file")
    i = sub.add_parser("inject")
    i.add_argument("ifname")
    i.add_argument("mode", choices=("flip", "replay"))
    i.add_argument("--timeout", type=float, default=10.0)
    g = sub.add_parser("ping")
    g.add_argument("dst")
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--interval", type=float, default=0.05)
    g.add_argument("--size", type=int, default=56)
    g.add_argument("--pattern", default="00")
    a = p.parse_args(argv)
    if a.cmd == "end" and a.profile:
        import cProfile

        run = "asyncio.run(_run_end(a.role, a.algorithm, a.plain))"
        cProfile.runctx(run, globals(), {"a": a}, a.profile)
    elif a.cmd == "end":
        asyncio.run(_run_end(a.role, a.algorithm, a.plain))
    elif a.cmd == "ping":
        print(json.dumps(icmp_ping(a.dst, a.count, a.interval, a.size, a.pattern)))
    else:
        _inject(a.ifname, a.mode, a.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
