"""GET_KEY latency and throughput through an ETSI 004 proxy pair in namespaces.

    .venv/bin/python bench/keys.py [--quick]

Builds the QKD half of topologies/paper.yaml in namespaces (prefix ``qq``, the same as
tests/qkd/test_netns.py: do not run both at once), starts both IDQ3P emulators and both
proxies, then from tn1's namespace: (1) sequential QKD_GET_KEY of 32-byte keys, one at a
time, and prints the latency p50/p99; (2) many requests in flight at once and prints the
keys per second. Goal (issue 5): p50 <= 1 ms and >= 10,000 keys/s. Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qkd_proxy import codec as etsi  # noqa: E402
from qkd_proxy.client import Etsi004Client  # noqa: E402


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
        left = n_tput
        got = 0

        async def worker() -> None:
            nonlocal left, got
            while left > 0:
                left -= 1
                st, _, _ = await c.get_key(h)
                if st == etsi.Status.SUCCESSFUL:
                    got += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(window)])
        dt = time.perf_counter() - t0
        await c.close(h)
    return {
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "mean_ms": sum(lat) / len(lat) * 1000,
        "keys_per_s": got / dt,
        "retransmissions": c.retransmissions,
        "sequential": n_seq,
        "pipelined": got,
        "window": window,
    }


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
    from qkd_proxy.nslab import QkdLab

    with tempfile.TemporaryDirectory(prefix="qqbench") as tmp:
        lab = QkdLab(ROOT / "topologies" / "paper.yaml", Path(tmp))
        try:
            lab.up()
            lab.start_daemons()
            time.sleep(0.5)
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
            r = lab.exec("tn1", *args, timeout=900)
            if r.returncode != 0:
                print(r.stdout, r.stderr, file=sys.stderr)
                return 1
            res = json.loads(r.stdout)
        finally:
            lab.stop_all()
            lab.down()
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
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
