"""Fuzz the three UDP ports of the key side on a running testbed (namespaces).

``python bench/fuzz_ports.py [--count N] [--seed S] [--prefix P]`` (root) brings
``topologies/paper.yaml`` up (prefix ``e2f``), checks that a QE service can be set up,
then sends ``N`` datagrams (default 3,000) to each of these ports, on both sides of the
QKD link, from a host of the domain the port serves:

=========  =====================================  ===========================================
port       to (from)                              datagrams
=========  =====================================  ===========================================
ETSI 004   etsiA 10.2.1.11:5424 (tn1),            QKD_OPEN / CONNECT_NONBLOCK / CONNECT_
           etsiB 10.2.2.11:5424 (tn5)             BLOCKING / GET_KEY / CLOSE, mutated, some on
                                                  a session really opened first
sync       etsiA 10.11.1.11:5626 (etsiB's         the sync messages, sealed with the pair's
           namespace), etsiB :5626 (etsiA's)      key from the run directory over a mutated
                                                  body (so the decoder behind the MAC runs),
                                                  or mutated after sealing (bad MAC)
IDQ3P      idqA 10.11.2.2:5323 (etsiA),           GET_NEXT_KEY / GET_KEY_BY_ID / STATUS,
           idqB 10.11.3.2:5323 (etsiB)            mutated
=========  =====================================  ===========================================

One datagram in ten is random bytes; the others are valid messages changed by
``bench/fuzz_codecs.py``'s :func:`mutate`. The sealed sync frames carry sequence numbers
far below the proxies' (epoch 0): they are rejected as too old after the decoder has read
them, so the fuzz does not move a receiver's replay window (that is what a fresh
sequence would do, a fault the proxies' own tests cover).

Then, per daemon: still running; no traceback in its log; RSS before and after, and how
much its log grew. Last, a QE service setup and teardown must still work. Exit status 0
when all holds, 1 otherwise. Seeded (``--seed``): the same datagrams every run.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from fuzz_codecs import mutate
from setup import CREATE, PAPER, Telnet, lab
from soak import sample

from compose import keyfiles
from compose.netns import NetnsTestbed
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p, sync

PREFIX = "e2f"
#: datagrams sent before the replies are read
BATCH = 50


@dataclass
class Target:
    name: str
    sender: str  # the host whose namespace sends
    daemon: str
    address: str
    port: int
    make: Callable[[random.Random], bytes]


def etsi_datagrams(tb: NetnsTestbed, node: str, proxy: str) -> Callable[[random.Random], bytes]:
    """ETSI 004 requests, mutated; the handle of a session opened now among them."""
    topo = tb.topology
    peer_node = "tn5" if node == "tn1" else "tn1"
    dst = topo.host(peer_node).router_id
    assert dst is not None
    handle = _open(tb, node, _addr(tb, proxy, node), dst) or bytes(64)
    other = random.Random(0).randbytes(etsi.HANDLE_LEN)
    seeds = [
        etsi.encode(etsi.Open(7, dst, etsi.QoS(32, 0, 0, 1000))),
        etsi.encode(etsi.Open(8, dst, etsi.QoS(32, 0, 0, 1000), other)),
        *[
            etsi.encode(m(9, h))
            for m in (etsi.ConnectNonblock, etsi.GetKey)
            for h in (handle, other)
        ],
        etsi.encode(etsi.ConnectBlocking(10, handle, 100)),
        etsi.encode(etsi.Close(11, other)),
    ]
    return lambda rng: mutate(rng, rng.choice(seeds), etsi.HEADER_LEN)


def sync_datagrams(tb: NetnsTestbed, proxy: str) -> Callable[[random.Random], bytes]:
    """Sync frames sealed with the pair's key over mutated bodies (epoch 0: old sequence
    numbers), or sealed and then mutated."""
    peer = tb.topology.host(proxy).peer
    assert peer is not None
    name = keyfiles.files(tb.topology).get(proxy)
    secret = (tb.run_dir / keyfiles.FOLDER / name[0][1]).read_bytes() if name else b"x" * 32
    h = random.Random(1).randbytes(etsi.HANDLE_LEN)
    a, b = IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5")
    bodies = [
        sync.Create(1, h, a, b, 32),
        sync.CreateResp(2, h, sync.Result.OK),
        sync.Opened(3, h),
        sync.Bind(4, h, 0, 32, (1, 2, 3)),
        sync.Alloc(5, h, 64),
        sync.AllocResp(6, h, sync.Result.OK, 64, 32, (7, 8)),
        sync.Close(7, h),
        sync.Ack(8, h),
    ]
    seq = iter(range(1, 1 << 30))

    def make(rng: random.Random) -> bytes:
        msg = rng.choice(bodies)
        head = sync.MAGIC + bytes([sync.VERSION, msg.TYPE]) + next(seq).to_bytes(8, "big")
        body = msg.encode_body()
        if rng.random() < 0.7:  # a mutated body under a good MAC
            data = head + mutate(rng, body)
            return data + hmac.new(secret, data, hashlib.sha256).digest()
        data = head + body
        return mutate(rng, data + hmac.new(secret, data, hashlib.sha256).digest(), 4)

    return make


def idq_datagrams() -> Callable[[random.Random], bytes]:
    seeds = [
        idq3p.encode(idq3p.GetNextKey(1, 32, 1)),
        idq3p.encode(idq3p.GetNextKey(2, 32, 4)),
        idq3p.encode(idq3p.GetKeyById(3, 32, (1, 2, 3))),
        idq3p.encode(idq3p.StatusRequest(4, 32)),
    ]
    return lambda rng: mutate(rng, rng.choice(seeds), idq3p.HEADER_LEN)


def _addr(tb: NetnsTestbed, host: str, toward: str) -> str:
    topo = tb.topology
    dom = topo.shared_domain(host, toward)
    assert dom is not None, (host, toward)
    return str(topo.host(host).interfaces[dom])


def _open(tb: NetnsTestbed, node: str, proxy: str, dst: IPv4Address) -> bytes | None:
    """A real QKD_OPEN from ``node``: the handle the proxy gave (None: no answer)."""
    s = tb.socket(node, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2.0)
        s.sendto(etsi.encode(etsi.Open(1, dst, etsi.QoS(32, 0, 0, 1000))), (proxy, etsi.PORT))
        reply = etsi.decode(s.recv(4096))
        return reply.key_handle if isinstance(reply, etsi.OpenReply) else None
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def targets(tb: NetnsTestbed) -> list[Target]:
    out = []
    for node, proxy, idq in (("tn1", "etsiA", "idqA"), ("tn5", "etsiB", "idqB")):
        peer = tb.topology.host(proxy).peer
        assert peer is not None
        out += [
            Target(
                f"ETSI 004 {proxy}",
                node,
                proxy,
                _addr(tb, proxy, node),
                etsi.PORT,
                etsi_datagrams(tb, node, proxy),
            ),
            Target(
                f"sync {proxy}",
                peer,
                proxy,
                _addr(tb, proxy, peer),
                sync.PORT,
                sync_datagrams(tb, proxy),
            ),
            Target(f"IDQ3P {idq}", proxy, idq, _addr(tb, idq, proxy), idq3p.PORT, idq_datagrams()),
        ]
    return out


def fuzz(tb: NetnsTestbed, t: Target, count: int, rng: random.Random) -> tuple[int, int, float]:
    """Send ``count`` datagrams; (sent, replies read, seconds)."""
    s = tb.socket(t.sender, socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    sent = replies = 0
    t0 = time.monotonic()
    try:
        for i in range(count):
            data = t.make(rng) if i % 10 else rng.randbytes(rng.randint(0, 200))
            try:
                s.sendto(data, (t.address, t.port))
                sent += 1
            except OSError:
                pass
            if i % BATCH == BATCH - 1:
                time.sleep(0.005)
                replies += _drain(s)
        time.sleep(0.2)
        replies += _drain(s)
    finally:
        s.close()
    return sent, replies, time.monotonic() - t0


def _drain(s: socket.socket) -> int:
    n = 0
    while True:
        try:
            s.recv(65536)
            n += 1
        except (BlockingIOError, InterruptedError):
            return n
        except OSError:
            continue  # an ICMP error reported on the socket


def log_size(tb: NetnsTestbed, host: str) -> int:
    return sum(p.stat().st_size for p in tb.run_dir.glob(f"{host}*.log"))


def tracebacks(tb: NetnsTestbed, host: str) -> int:
    n = 0
    for p in tb.run_dir.glob(f"{host}*.log"):
        text = p.read_text(errors="replace")
        n += text.count("Traceback") + text.count('"exc":')
    return n


def setup_works(tb: NetnsTestbed) -> str:
    """One QE service up and deleted: '' when it worked, else why not."""
    cli = Telnet(tb, "client", "tn1")
    try:
        s = cli.json(f"{CREATE} wait")["services"][0]
        cli.json(f"qe-service delete {s['id']}")
    finally:
        cli.close()
    return "" if s["state"] == "up" else f"QE service {s['state']}: {s['error']}"


def run(tb: NetnsTestbed, count: int, seed: int) -> list[str]:
    problems = []
    why = setup_works(tb)
    if why:
        return [f"before the fuzz: {why}"]
    hosts = sorted(tb.topology.hosts)
    rss0 = sample(tb)
    logs0 = {h: log_size(tb, h) for h in hosts}
    tb0 = {h: tracebacks(tb, h) for h in hosts}
    rng = random.Random(seed)
    print(f"{'port':<16} {'from':<6} {'sent':>6} {'replies':>8} {'s':>6}")
    for t in targets(tb):
        sent, replies, secs = fuzz(tb, t, count, rng)
        print(f"{t.name:<16} {t.sender:<6} {sent:>6} {replies:>8} {secs:>6.1f}", flush=True)
    time.sleep(1.0)
    rss1 = sample(tb)
    print(f"\n{'daemon':<8} {'RSS KiB before':>15} {'after':>8} {'FDs':>4} {'log +bytes':>11}")
    for h in hosts:
        if h not in rss0:
            continue
        if not tb.running(h):
            problems.append(f"{h}: not running after the fuzz")
        if tracebacks(tb, h) > tb0[h]:
            problems.append(f"{h}: a traceback in its log")
        after = rss1.get(h, (0, 0))
        print(
            f"{h:<8} {rss0[h][0]:>15} {after[0]:>8} {after[1]:>4} {log_size(tb, h) - logs0[h]:>11}"
        )
    why = setup_works(tb)
    if why:
        problems.append(f"after the fuzz: {why}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=3000, help="datagrams per port and side")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prefix", default=PREFIX, help=f"testbed name prefix (default {PREFIX})")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("bench/fuzz_ports.py needs root (network namespaces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-ports-") as tmp:
        os.environ["QKDNET_INDEX"] = str(Path(tmp) / "index")
        Path(tmp, "index").mkdir()
        tb = lab(PAPER, Path(tmp) / "run", a.prefix)
        try:
            problems = run(tb, a.count, a.seed)
        finally:
            tb.down()
    print("\nall daemons kept serving, no traceback" if not problems else "\nPROBLEMS:")
    for x in problems:
        print(f"    {x}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
