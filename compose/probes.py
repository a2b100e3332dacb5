"""``qkdnet ping`` and ``qkdnet pingall``: Mininet-style reachability probes.

``ping A B`` sends ICMP echo requests from host A to host B (or an address) through the
backend's :meth:`~compose.backend.Testbed.probe` and prints one line per reply with its
round-trip time, then a summary with the loss and min/avg/max, as iputils ``ping`` does.

``pingall`` defines the pairs that should reach each other: two hosts reach each other
when they share a domain (nothing routes between the testbed's domains, so a host is
reachable exactly on the domains it sits on). For every domain (or the one ``--domain``
names), every pair of hosts on it, once each way round is enough: one echo request from
the first (in topology order) to the second's address on that domain, whose reply proves
both directions. The output is one line per domain with the hosts that did not answer,
and Mininet's summary line ``*** Results: 0% dropped (27/27 received)``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from compose.backend import Testbed

Print = Callable[[str], None]


def summary(target: str, dst: str, rtts: list[float | None]) -> str:
    """iputils' two summary lines of ``ping``."""
    got = [r for r in rtts if r is not None]
    loss = 100.0 * (len(rtts) - len(got)) / len(rtts) if rtts else 0.0
    lines = [
        f"--- {target} ({dst}) ping statistics ---",
        f"{len(rtts)} packets transmitted, {len(got)} received, {loss:g}% packet loss",
    ]
    if got:
        avg = sum(got) / len(got)
        lines.append(f"rtt min/avg/max = {min(got):.3f}/{avg:.3f}/{max(got):.3f} ms")
    return "\n".join(lines)


def ping(bed: Testbed, host: str, target: str, count: int, timeout: float, out: Print) -> int:
    """``qkdnet ping``: 0 when every request was answered, 1 when some were lost, 2 when
    none was."""
    bed.check_host(host)
    dst = bed.address(target)
    out(f"PING {target} ({dst}) from {host}: {count} echo request(s)")
    rtts = []
    for seq in range(1, count + 1):
        (rtt,) = bed.probe(host, target, 1, timeout, 0.0) or [None]
        rtts.append(rtt)
        if rtt is None:
            out(f"no reply from {dst}: icmp_seq={seq} (timeout {timeout:g} s)")
        else:
            out(f"reply from {dst}: icmp_seq={seq} time={rtt:.3f} ms")
    out(summary(target, dst, rtts))
    got = sum(1 for r in rtts if r is not None)
    return 0 if got == len(rtts) else (1 if got else 2)


@dataclass(frozen=True)
class Pair:
    domain: str
    a: str
    b: str


def pairs(bed: Testbed, domain: str | None = None) -> list[Pair]:
    """Every pair of hosts that share a domain (module docstring), domain by domain."""
    topo = bed.topology
    out = []
    for d in [bed.check_domain(domain)] if domain else list(topo.domains):
        members = [h.name for h in topo.hosts.values() if d in h.interfaces]
        for i, a in enumerate(members):
            out += [Pair(d, a, b) for b in members[i + 1 :]]
    return out


def pingall(bed: Testbed, domain: str | None, timeout: float, out: Print) -> int:
    """``qkdnet pingall``: 0 when every pair answered, 1 otherwise."""
    todo = pairs(bed, domain)

    def one(p: Pair) -> bool:
        dst = str(bed.topology.host(p.b).interfaces[p.domain])
        return any(r is not None for r in bed.probe(p.a, dst, 2, timeout, 0.0, first=True))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, todo))
    lost = [p for p, ok in zip(todo, results, strict=True) if not ok]
    for d in dict.fromkeys(p.domain for p in todo):
        n = sum(1 for p in todo if p.domain == d)
        bad = [f"{p.a}-x-{p.b}" for p in lost if p.domain == d]
        out(
            f"{d:<8} {n - len(bad):>4}/{n:<4} pairs {'ok' if not bad else 'LOST: ' + ' '.join(bad)}"
        )
    total = len(todo)
    pct = 100.0 * len(lost) / total if total else 0.0
    out(f"*** Results: {pct:.0f}% dropped ({total - len(lost)}/{total} received)")
    return 0 if not lost else 1
