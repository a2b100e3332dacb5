"""ETSI 014 key delivery over HTTPS (mutual TLS, keep-alive) beside ETSI 004, in namespaces.

    .venv/bin/python bench/keys014.py [--quick]

Brings topologies/paper.yaml up in namespaces (prefix ``q4``, the same as
tests/qkd/test_etsi014_netns.py: do not run both at once), starts both IDQ3P emulators and
both key managers only, then from tn1's namespace, on one keep-alive HTTPS connection to
etsiA with tn1's certificate (aiohttp client): (1) sequential ``enc_keys`` of one 256-bit
key, latency p50/p99; (2) ``enc_keys`` of 256 keys per request, keys per second; (3) 8
requests of one key in flight on 8 connections, keys per second; then tn5 takes the keys
of (1) back through ``dec_keys`` (128 key IDs per request), keys per second. Beside them,
the ETSI 004 figures of bench/keys.py on the same bring-up (its sequential GET_KEY latency
and pipelined keys/s). Needs root. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from compose.backend import quiet
from compose.netns import NetnsTestbed, teardown

HERE = Path(__file__).resolve().parent
PAPER = HERE.parent / "topologies" / "paper.yaml"
QKD_DAEMONS = ("idqA", "idqB", "etsiA", "etsiB")


def _ctx(pki: Path, sae: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(pki / f"{sae}.pem"), str(pki / f"{sae}.key"))
    return ctx


async def master(pki: Path, n_seq: int, n_batch: int) -> dict[str, Any]:
    url = "https://10.2.1.11/api/v1/keys/tn5/enc_keys"
    conn = aiohttp.TCPConnector(ssl=_ctx(pki, "tn1"), limit=1)
    ids: list[str] = []
    async with aiohttp.ClientSession(connector=conn) as s:
        for _ in range(20):  # warm-up: the pair's session opened, the pool filled
            async with s.get(url) as r:
                assert r.status == 200, await r.text()
        lat = []
        for _ in range(n_seq):
            t0 = time.perf_counter()
            async with s.get(url) as r:
                body = await r.json()
            lat.append(time.perf_counter() - t0)
            assert r.status == 200, body
            ids.append(body["keys"][0]["key_ID"])
        lat.sort()
        t0 = time.perf_counter()
        got = 0
        while got < n_batch:
            async with s.post(url, json={"number": 256}) as r:
                body = await r.json()
                assert r.status == 200, body
                got += len(body["keys"])
        batch = got / (time.perf_counter() - t0)
    conc = aiohttp.TCPConnector(ssl=_ctx(pki, "tn1"), limit=8)
    async with aiohttp.ClientSession(connector=conc) as s:

        async def one() -> None:
            async with s.get(url) as r:
                assert r.status == 200, await r.text()

        await asyncio.gather(*(one() for _ in range(8)))  # 8 connections open
        n = n_seq
        t0 = time.perf_counter()
        for i in range(0, n, 8):
            await asyncio.gather(*(one() for _ in range(min(8, n - i))))
        conc_rate = n / (time.perf_counter() - t0)
    return {
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "sequential": n_seq,
        "batch_keys_per_s": batch,
        "batch_keys": got,
        "concurrent_keys_per_s": conc_rate,
        "ids": ids,
    }


async def slave(pki: Path, ids: list[str]) -> dict[str, Any]:
    url = "https://10.2.2.11/api/v1/keys/tn1/dec_keys"
    conn = aiohttp.TCPConnector(ssl=_ctx(pki, "tn5"), limit=1)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter()
        got = 0
        for i in range(0, len(ids), 128):
            body = {"key_IDs": [{"key_ID": k} for k in ids[i : i + 128]]}
            async with s.post(url, json=body) as r:
                out = await r.json()
                assert r.status == 200, out
                got += len(out["keys"])
        return {"dec_keys_per_s": got / (time.perf_counter() - t0), "dec_keys": got}


def wait_listening(tb: NetnsTestbed, hosts: tuple[str, ...], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    for h in hosts:
        log = tb.run_dir / f"{h}.log"
        while not (log.exists() and '"listening"' in log.read_text()):
            if not tb.running(h) or time.monotonic() > deadline:
                out = (tb.run_dir / f"{h}.out").read_text(errors="replace")
                raise RuntimeError(f"{h} is not listening: {out[-2000:]}")
            time.sleep(0.05)


def _run(tb: NetnsTestbed, host: str, args: list[str]) -> dict[str, Any]:
    r = tb.exec(host, [sys.executable, *args], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{host}: {r.stdout} {r.stderr}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a short run")
    p.add_argument("--master", help=argparse.SUPPRESS)
    p.add_argument("--slave", help=argparse.SUPPRESS)
    a = p.parse_args()
    n_seq, n_batch = (500, 5120) if a.quick else (2000, 25600)
    if a.master:
        print(json.dumps(asyncio.run(master(Path(a.master), n_seq, n_batch))))
        return 0
    if a.slave:
        ids = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(slave(Path(a.slave), ids))))
        return 0
    if os.geteuid() != 0:
        print("bench/keys014.py needs root (network namespaces)", file=sys.stderr)
        return 1
    quick = ["--quick"] if a.quick else []
    with tempfile.TemporaryDirectory(prefix="q4bench") as tmp:
        teardown("q4", progress=quiet)
        tb = NetnsTestbed(PAPER, tmp, prefix="q4", progress=quiet)
        try:
            tb.up(start_daemons=False)
            tb.start_all(QKD_DAEMONS)
            wait_listening(tb, QKD_DAEMONS)
            pki = str(tb.run_dir / "pki")
            m = _run(tb, "tn1", [__file__, "--master", pki, *quick])
            ids = m.pop("ids")
            r = tb.exec(
                "tn5",
                [sys.executable, __file__, "--slave", pki],
                input=json.dumps(ids),
                capture_output=True,
                text=True,
                timeout=900,
            )
            if r.returncode != 0:
                raise RuntimeError(f"tn5: {r.stdout} {r.stderr}")
            s = json.loads(r.stdout)
            e = _run(tb, "tn1", [str(HERE / "keys.py"), "--inner", "10.2.1.11", *quick])
        finally:
            tb.down()
    print("ETSI 014 over HTTPS (mutual TLS, keep-alive), tn1 -> etsiA, 256-bit keys:")
    print(
        f"  enc_keys of 1 key, {m['sequential']} sequential: p50 {m['p50_ms']:.2f} ms   "
        f"p99 {m['p99_ms']:.2f} ms"
    )
    print(f"  enc_keys of 256 keys per request: {m['batch_keys_per_s']:.0f} keys/s")
    print(f"  enc_keys of 1 key, 8 in flight: {m['concurrent_keys_per_s']:.0f} keys/s")
    print(f"  dec_keys at etsiB (tn5), 128 IDs per request: {s['dec_keys_per_s']:.0f} keys/s")
    print("ETSI 004 (UDP), tn1 -> etsiA, 32-byte keys (bench/keys.py on the same bring-up):")
    print(
        f"  GET_KEY sequential: p50 {e['p50_ms']:.3f} ms   p99 {e['p99_ms']:.3f} ms;   "
        f"{e['window']} in flight: {e['keys_per_s']:.0f} keys/s"
    )
    print(json.dumps({"etsi014": {**m, **s}, "etsi004": e}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
