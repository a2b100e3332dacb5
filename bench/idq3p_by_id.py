"""GET_KEY_BY_ID throughput of the IDQ3P emulator's core with many scattered key IDs.

    .venv/bin/python bench/idq3p_by_id.py [--quick] [--requests N]

In memory, no sockets: one :class:`Idq3pServer` (box B) is asked for keys of its pair's
stream by ID, 1,024 scattered IDs of 32-byte keys per request (the most one request
carries), all released (a virtual clock one hour into the pair's run). Prints keys per
second and microseconds per key, the delivered-range structure's size and depth, and the
response cache's bytes against its bound. Issue 12 measured 21 s for 200 such requests
with the O(n) list; the same 200 requests are the first figure here. ``--compare`` also
runs the old list (bisect + list.insert) on the same ranges, without the server.
"""

from __future__ import annotations

import argparse
import bisect
import random
import secrets
import time

from gmpls.qkd import idq3p as codec
from idq3p_emulator.core import CACHE_BYTES, Idq3pServer
from idq3p_emulator.events import Datagram
from idq3p_emulator.store import IntervalSet, KeyStore, SeedSource, key_id

RATE, BUFFER = 13.7e6, 1 << 23  # the paper's figures
NOW = 3600.0  # one hour of the pair's clock: about 3 GB of each stream released
IDS_PER_REQUEST = 1024
KEY = 32


def scattered(rng: random.Random, n: int) -> list[int]:
    """``n`` distinct offsets of 32-byte keys, spread over what was released by NOW."""
    slots = int(RATE / 2 * NOW) // 8 // KEY
    return [s * KEY for s in rng.sample(range(slots), n)]


def by_id(requests: int, offsets: list[int]) -> dict[str, float]:
    srv = Idq3pServer(KeyStore(SeedSource(secrets.token_bytes(32)), 1, RATE, BUFFER, 0.0))
    datagrams = [
        codec.encode(
            codec.GetKeyById(
                i,
                KEY,
                tuple(
                    key_id(0, o) for o in offsets[i * IDS_PER_REQUEST : (i + 1) * IDS_PER_REQUEST]
                ),
            )
        )
        for i in range(requests)
    ]
    t0 = time.perf_counter()
    for i, data in enumerate(datagrams):
        srv.handle(Datagram(data, ("10.11.3.1", 40000 + i % 4)), NOW)
    dt = time.perf_counter() - t0
    keys = srv.counters["keys_by_id"]
    assert keys == requests * IDS_PER_REQUEST, srv.counters
    taken = srv.store._taken
    return {
        "requests": requests,
        "seconds": dt,
        "keys": keys,
        "keys_per_s": keys / dt,
        "us_per_key": dt / keys * 1e6,
        "ranges": len(taken),
        "depth": taken.depth(),
        "cache_bytes": srv.cache.nbytes,
    }


def interval_ops(offsets: list[int]) -> float:
    """Seconds for overlaps + add of every range in the treap alone."""
    s = IntervalSet()
    t0 = time.perf_counter()
    for o in offsets:
        if not s.overlaps(o, o + KEY):
            s.add(o, o + KEY)
    return time.perf_counter() - t0


def list_ops(offsets: list[int]) -> float:
    """The same with the old structure: two sorted lists, bisect and list.insert (O(n))."""
    starts: list[int] = []
    ends: list[int] = []
    t0 = time.perf_counter()
    for o in offsets:
        i = bisect.bisect_right(starts, o) - 1
        if (i >= 0 and ends[i] > o) or (i + 1 < len(starts) and starts[i + 1] < o + KEY):
            continue
        starts.insert(i + 1, o)
        ends.insert(i + 1, o + KEY)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="200 requests only")
    p.add_argument("--requests", type=int, help="requests of 1,024 IDs (default 1000)")
    p.add_argument("--compare", action="store_true", help="also time the old O(n) list")
    a = p.parse_args()
    big = a.requests or (200 if a.quick else 1000)
    rng = random.Random(1)
    offsets = scattered(rng, max(big, 200) * IDS_PER_REQUEST)
    print(f"GET_KEY_BY_ID, {IDS_PER_REQUEST} scattered IDs of {KEY}-byte keys per request:")
    for n in sorted({200, big}):
        r = by_id(n, offsets)
        print(
            f"  {r['requests']:5d} requests: {r['seconds']:6.2f} s, {r['keys_per_s']:8.0f} keys/s,"
            f" {r['us_per_key']:5.1f} us/key; {r['ranges']} ranges, treap depth {r['depth']};"
            f" cache {r['cache_bytes'] / 2**20:.2f} MiB (bound {CACHE_BYTES / 2**20:.0f} MiB)"
        )
    n = big * IDS_PER_REQUEST
    t = interval_ops(offsets[:n])
    print(f"  delivered-range treap alone: {n} lookups+inserts in {t:.2f} s ({t / n * 1e6:.1f} us)")
    if a.compare:
        t = list_ops(offsets[:n])
        print(f"  old O(n) list, same ranges:  {n} lookups+inserts in {t:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
