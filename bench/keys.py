"""GET_KEY latency and throughput through an ETSI 004 proxy pair in namespaces.

    .venv/bin/python bench/keys.py [--quick]

Brings topologies/paper.yaml up in namespaces with compose's builder (prefix ``qq``, the
same as tests/qkd/test_qkd_netns.py: do not run both at once), starts both IDQ3P emulators
and both proxies only, then from tn1's namespace: (1) sequential QKD_GET_KEY of 32-byte keys, one at a
time through ``Etsi004Client`` (what the node agents use), and prints the latency p50/p99;
(2) 32 requests in flight at once from a lean UDP sender, and prints the keys per second; and
the CPU time each daemon used. Goal (issue 5): p50 <= 1 ms and >= 10,000 keys/s. Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from compose.backend import quiet
from compose.netns import NetnsTestbed, teardown
from daemonkit.etsi004 import Etsi004Client
from gmpls.qkd import etsi004 as etsi

PAPER = Path(__file__).resolve().parents[1] / "topologies" / "paper.yaml"
QKD_DAEMONS = ("idqA", "idqB", "etsiA", "etsiB")


def pipelined(proxy: str, handle: bytes, n: int, window: int) -> tuple[int, float]:
    """Keep ``window`` GET_KEYs in flight on one plain UDP socket until ``n`` are answered;
    a lean sender, so that the figure is the proxy's rather than the client library's."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((proxy, etsi.PORT))
    s.settimeout(0.2)
    prefix = bytes([etsi.VERSION, etsi.MsgType.GET_KEY, 0, 0])
    base = 0x40000000
    sent = 0
    outstanding: dict[int, bytes] = {}
    got = 0
    t0 = time.perf_counter()
    while got < n:
        while len(outstanding) < window and sent < n:
            rid = base + sent
            data = prefix + rid.to_bytes(4, "big") + handle
            outstanding[rid] = data
            s.send(data)
            sent += 1
        try:
            reply = s.recv(2048)
        except TimeoutError:
            for data in outstanding.values():  # lost: same request ID, answered from cache
                s.send(data)
            continue
        rid = int.from_bytes(reply[4:8], "big")
        if outstanding.pop(rid, None) is not None:
            if int.from_bytes(reply[8:12], "big") != etsi.Status.SUCCESSFUL:
                raise RuntimeError(f"GET_KEY status {int.from_bytes(reply[8:12], 'big')}")
            got += 1
    dt = time.perf_counter() - t0
    s.close()
    return got, dt


async def inner(proxy: str, n_seq: int, n_tput: int, window: int) -> dict[str, float]:
    async with Etsi004Client((proxy, etsi.PORT), rto=0.2) as c:
        st, h = await c.open("10.1.1.5", key_length=32)
        assert st == etsi.Status.SUCCESSFUL, st
        for _ in range(200):  # warm-up: pool filled, first blocks bound
            await c.get_key(h)
        lat = []
        for _ in range(n_seq):
            t0 = time.perf_counter()
            st, _, key = await c.get_key(h)
            lat.append(time.perf_counter() - t0)
            assert st == etsi.Status.SUCCESSFUL and len(key) == 32, st
        lat.sort()
        retrans = c.retransmissions
        got, dt = pipelined(proxy, h, n_tput, window)
        await c.close(h)
    return {
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "mean_ms": sum(lat) / len(lat) * 1000,
        "keys_per_s": got / dt,
        "retransmissions": retrans,
        "sequential": n_seq,
        "pipelined": got,
        "window": window,
    }


def wait_listening(tb: NetnsTestbed, hosts: tuple[str, ...], timeout: float = 20.0) -> None:
    """Until each daemon's log says it listens."""
    deadline = time.monotonic() + timeout
    for h in hosts:
        log = tb.run_dir / f"{h}.log"
        while not (log.exists() and '"listening"' in log.read_text()):
            if not tb.running(h) or time.monotonic() > deadline:
                out = (tb.run_dir / f"{h}.out").read_text(errors="replace")
                raise RuntimeError(f"{h} is not listening: {out[-2000:]}")
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a short run")
    p.add_argument("--inner", help=argparse.SUPPRESS)
    p.add_argument("--window", type=int, default=32, help="requests in flight (throughput)")
    a = p.parse_args()
    n_seq, n_tput = (1000, 5000) if a.quick else (10000, 50000)
    if a.inner:
        print(json.dumps(asyncio.run(inner(a.inner, n_seq, n_tput, a.window))))
        return 0
    if os.geteuid() != 0:
        print("bench/keys.py needs root (network namespaces)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="qqbench") as tmp:
        teardown("qq", progress=quiet)  # leftovers of a crashed earlier run
        tb = NetnsTestbed(PAPER, tmp, prefix="qq", progress=quiet)
        try:
            tb.up(start_daemons=False)
            tb.start_all(QKD_DAEMONS)
            wait_listening(tb, QKD_DAEMONS)
            args = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--inner",
                "10.2.1.11",
                "--window",
                str(a.window),
            ]
            if a.quick:
                args.append("--quick")
            pids = {h: d.pid for h in QKD_DAEMONS for d in tb.running(h)}
            cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
            r = tb.exec("tn1", args, capture_output=True, text=True, timeout=900)
            cpu = {n: cpu_seconds(pid) - cpu0[n] for n, pid in pids.items()}
            if r.returncode != 0:
                print(r.stdout, r.stderr, file=sys.stderr)
                return 1
            res = json.loads(r.stdout)
        finally:
            tb.down()
    print(f"GET_KEY 32-byte keys through etsiA (tn1 namespace), {res['sequential']} sequential:")
    print(
        f"  latency p50 {res['p50_ms']:.3f} ms   p99 {res['p99_ms']:.3f} ms   "
        f"mean {res['mean_ms']:.3f} ms   (goal p50 <= 1 ms)"
    )
    print(
        f"  throughput {res['keys_per_s']:.0f} keys/s with {res['window']} in flight, "
        f"{res['pipelined']} keys   (goal >= 10000 keys/s)"
    )
    print(f"  client retransmissions: {res['retransmissions']}")
    keys = res["sequential"] + res["pipelined"] + 200
    print(
        "  daemon CPU during the run: "
        + ", ".join(f"{n} {c:.2f} s" for n, c in sorted(cpu.items()))
        + f"  (etsiA {cpu['etsiA'] / keys * 1e6:.0f} us per GET_KEY)"
    )
    res["cpu_s"] = cpu
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
