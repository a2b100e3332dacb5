"""What summary refresh (RFC 2961 §5) saves: bytes on the wire and receiver time per
refresh period, full Path refreshes against one Srefresh, for N LSPs over one link.

Run: ``.venv/bin/python bench/rsvp_refresh.py [--quick]``.

Two cores, A and B, joined by one TE link with as many lambdas as LSPs; A heads N LSPs
to B, each on its own explicit lambda. Once they are up (every Path acknowledged), the bench takes the N Path messages A
would send whole and the Srefresh(es) A sends instead, and times B receiving each.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from ipaddress import IPv4Address

from gmpls import ero
from gmpls.core import Tick
from gmpls.rsvp import events as E
from gmpls.rsvp.core import RR_CAPABLE, RsvpCore
from gmpls.rsvp.message import Message

A, B = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")


@dataclass(frozen=True)
class Link:
    local_if: int
    remote_router_id: IPv4Address
    remote_if: int
    remote_control: IPv4Address
    lambdas: tuple[int, ...]


def lsps_up(n: int) -> tuple[RsvpCore, RsvpCore]:
    """A and B with n LSPs A -> B up and every trigger acknowledged."""
    lambdas = tuple(range(1, n + 1))
    cores = {
        A: RsvpCore(A, A, [Link(1, B, 1, B, lambdas)], hello_ms=0, name="A"),
        B: RsvpCore(B, B, [Link(1, A, 1, A, lambdas)], hello_ms=0, name="B", instance=2),
    }
    queue = []
    for t in range(1, n + 1):  # LSP t on lambda t (an explicit label: a LABEL_SET of one)
        route = [ero.Unnumbered(A, 1), ero.Label(ero.lambda_label(t)), ero.Ipv4Prefix(B, 32)]
        queue += [(A, a) for a in cores[A].handle(E.CreateLsp(t, route), 0.0)]
    while queue:
        src, a = queue.pop(0)
        if isinstance(a, E.Send):
            queue += [(a.dst, b) for b in cores[a.dst].handle(E.Received(src, a.data), 0.0)]
    assert len(cores[B].psbs) == n and not cores[A].pending
    return cores[A], cores[B]


def per_message(b: RsvpCore, datas: list[bytes], seconds: float) -> float:
    """Microseconds for B to take in all of ``datas`` once (the best of several runs)."""
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for d in datas:
            b.handle(E.Received(A, d), 1.0)
        best = min(best, time.perf_counter() - t)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.1 s per measurement")
    seconds = 0.1 if ap.parse_args().quick else 1.0
    print(
        f"{'LSPs':>5} {'full Path bytes':>16} {'Srefresh bytes':>15} {'full us':>9} "
        f"{'Srefresh us':>12}"
    )
    for n in (1, 10, 100, 360, 1000):
        a, b = lsps_up(n)
        full = [
            Message(p.msg_type, p.objects, flags=RR_CAPABLE).encode()
            for p in (psb.path_msg for psb in a.psbs.values())
            if p is not None
        ]
        srefresh = [
            s.data
            for s in a.handle(Tick(), a.refresh)
            if isinstance(s, E.Send) and s.message.name == "SREFRESH"
        ]
        print(
            f"{n:>5} {sum(map(len, full)):>16} {sum(map(len, srefresh)):>15} "
            f"{per_message(b, full, seconds):>9.0f} {per_message(b, srefresh, seconds):>12.0f}"
        )
        assert b.stats["nacks_tx"] == 0


if __name__ == "__main__":
    main()
