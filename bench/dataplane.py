"""Throughput and latency ha -> hb across the encrypted data plane, against the same path
unencrypted (docs/dataplane.md#performance).

Run (root, network namespaces): ``.venv/bin/python bench/dataplane.py [--quick]``.

Two ends in namespaces of their own (tests/support/dataplane_pair.py: ha - n1 = channels
= n5 - hb, the names the testbed gives), three modes:

* ``kernel``: tc mirred between access port and channel at n1 and n5, no user space;
* ``plain``: the data-plane shell (node_agent/dataplane.py) with the cipher replaced by a
  copy: what the shell and the system calls cost;
* ``encrypted``: the shell as it runs in the testbed (AES-256-GCM by default).

For each: UDP datagrams of ``--size`` bytes from ha to hb as fast as ha sends for
``--seconds`` (received Mb/s and frames/s at hb), the CPU seconds the head and tail
spent (Mb/s per core = bits carried / CPU seconds of the busier end; CPU seconds per Gb
of both ends), and ping ha -> hb (mean RTT). Then a profile of the encrypted head.
"""

from __future__ import annotations

import argparse
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import dataplane_pair as P  # noqa: E402

PREFIX = "qdpb"

SENDER = """
import socket, sys, time
size, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.3.0.2", 9999))
data = b"x" * size
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    for _ in range(64):
        try:
            s.send(data)
            n += 1
        except OSError:
            pass
print(n)
"""

RECEIVER = """
import socket, sys, time
seconds = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("10.3.0.2", 9999))
s.settimeout(seconds + 3)
n = b = 0
first = last = None
try:
    while True:
        d = s.recv(65535)
        now = time.monotonic()
        first = first or now
        last = now
        n += 1
        b += len(d)
        s.settimeout(1.0)
except OSError:
    pass
print(n, b, (last - first) if first and last else 0.0)
"""


def _ping(count: int) -> float:
    r = P.ping_in(PREFIX, "ha", "10.3.0.2", count, 0.01)
    return float(r["rtt_avg_ms"]) if r.get("received") else float("nan")


def _blast(size: int, seconds: float) -> tuple[int, int, float, int]:
    recv = subprocess.Popen(
        P.nsexec(PREFIX, "hb", sys.executable, "-c", RECEIVER, str(seconds)),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)  # the receiver binds (a bench: no test relies on it)
    sent = P.sh(*P.nsexec(PREFIX, "ha", sys.executable, "-c", SENDER, str(size), str(seconds)))
    out, _ = recv.communicate(timeout=seconds + 10)
    n, b, span = out.split()
    return int(n), int(b), float(span), int(sent.stdout)


# long: one mode end to end, its figures in one dict
def run_mode(mode: str, a: argparse.Namespace, profile: Path | None = None) -> dict[str, Any]:
    P.up(PREFIX)
    ends: list[P.End] = []
    try:
        if mode == "kernel":
            P.kernel_path(PREFIX)
        else:
            extra = ["--profile", str(profile)] if profile else []
            for role in ("head", "tail"):
                ends.append(
                    P.start_end(
                        PREFIX,
                        role,
                        algorithm=a.algorithm,
                        plain=mode == "plain",
                        extra=extra if role == "head" else [],
                    )
                )
            key = P.new_key()
            for e in ends:
                e.key(0, key)
        rtt = _ping(5)  # warm up (ARP) and check the path
        if rtt != rtt:
            raise RuntimeError(f"{mode}: ha cannot ping hb")
        rtt = _ping(a.pings)
        before = [e.status()["cpu_s"] for e in ends]
        n, _b, span, sent = _blast(a.size, a.seconds)
        cpu = [e.status()["cpu_s"] - c for e, c in zip(ends, before, strict=True)]
        st = [e.status() for e in ends]
    finally:
        for e in ends:
            e.stop()
        P.down(PREFIX)
    frame = a.size + 42  # the client's Ethernet frame: UDP + IPv4 + Ethernet headers
    bits = n * frame * 8
    span = span or a.seconds
    out: dict[str, Any] = {
        "mode": mode,
        "sent": sent,
        "received": n,
        "mbps": round(bits / span / 1e6, 1),
        "frames_s": round(n / span),
        "rtt_ms": round(rtt, 3),
    }
    if ends:
        busiest = max(cpu)
        out["cpu_s_head"], out["cpu_s_tail"] = round(cpu[0], 2), round(cpu[1], 2)
        out["mbps_per_core"] = round(bits / busiest / 1e6, 1) if busiest else None
        out["frames_s_per_core"] = round(n / busiest) if busiest else None
        out["cpu_s_per_gb"] = round(sum(cpu) / (bits / 1e9), 2) if bits else None
        out["auth_failures"] = st[1]["auth_failures"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 s per mode, 50 pings")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--size", type=int, default=1472, help="UDP payload bytes (1472: 1514 frames)")
    p.add_argument("--pings", type=int, default=200)
    p.add_argument("--algorithm", type=int, default=10, choices=(10, 11, 12))
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.seconds, a.pings = 3.0, 50
    rows = []
    prof = Path(tempfile.mkdtemp(prefix="qdp-")) / "head.prof"
    for mode in ("kernel", "plain", "encrypted"):
        rows.append(run_mode(mode, a, prof if mode == "encrypted" else None))
        if not a.json:
            print(json.dumps(rows[-1]), flush=True)
    if a.json:
        print(json.dumps(rows))
        return 0
    print("\nmode        Mb/s   frames/s  Mb/s/core  frames/s/core  CPU s/Gb   RTT ms")
    for r in rows:
        print(f"{r['mode']:<10} {r['mbps']:>6} {r['frames_s']:>10} "
              f"{r.get('mbps_per_core') or '-':>10} {r.get('frames_s_per_core') or '-':>14} "
              f"{r.get('cpu_s_per_gb') or '-':>9} {r['rtt_ms']:>8}")  # fmt: skip
    if prof.exists():
        print("\nwhere the encrypted head's time goes (cProfile, top 12 by own time):")
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
