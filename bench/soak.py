"""Soak: many QE service setups and teardowns on the paper testbed in namespaces.

``python bench/soak.py [--count N] [--samples K] [--prefix P] [--json]`` (root; default
10,000 services) brings ``topologies/paper.yaml`` up (prefix ``e2s``), waits for OSPF and
the PCE like ``qkdnet demo``, and from the client host over one telnet session to tn1
runs N times ``qe-service create dst 10.1.1.5 <paper parameters> wait`` then
``qe-service delete``, one service at a time.

The resident set size (VmRSS) and the open file descriptors of every daemon are sampled
at the start, K times during the run and at the end, and printed per daemon (at the
start, after 10 % and 50 % of the services, at the end, and the growth over the second
half: flat means no per-service leak; caches fill up to their bounds first). At the end,
after the last teardown has settled, it checks that nothing was left behind:

* RSVP state: ``show mpls lsp`` empty at every node (no PSB, hence no RSB);
* lambdas: every TE link of every node advertises all its lambdas free again
  (``show ip ospf te-link``), and the PCE's TED has them all free too;
* QE services: none live at tn1 or tn5 (``show qe-service``);
* ETSI 004 sessions: the proxies, stopped last (SIGTERM), log their counters, among them
  ``sessions``, the key sessions still open: 0 at both;
* no daemon log holds a traceback; file descriptors did not grow.

Exit status 0 when every check holds, 1 otherwise. Not part of ``make test``: the full run
takes a while (the figures depend on the machine and on what else runs on it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from setup import CREATE, PAPER, Telnet, lab  # bench/setup.py, this script's neighbour

from compose.netns import NetnsTestbed

PREFIX = "e2s"
#: daemons' CLIs checked at the end
NODES = ("tn1", "tn2", "tn3", "tn4", "tn5")
PROXIES = ("etsiA", "etsiB")


def sample(tb: NetnsTestbed) -> dict[str, tuple[int, int]]:
    """(VmRSS in KiB, open file descriptors) of every host's daemon now."""
    out: dict[str, tuple[int, int]] = {}
    for host in tb.topology.hosts:
        for d in tb.running(host):
            try:
                status = Path(f"/proc/{d.pid}/status").read_text()
                fds = len(os.listdir(f"/proc/{d.pid}/fd"))
            except OSError:
                continue
            rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
            out[host] = (rss, fds)
    return out


def soak(tb: NetnsTestbed, count: int, samples: int) -> dict[str, Any]:
    """``count`` setups and teardowns; the samples and the services' outcomes."""
    cli = Telnet(tb, "client", "tn1")
    taken: list[tuple[int, dict[str, tuple[int, int]]]] = [(0, sample(tb))]
    every = max(1, count // max(1, samples))
    setups: list[float] = []
    errors: dict[str, int] = {}
    t0 = time.monotonic()
    try:
        for i in range(1, count + 1):
            s = cli.json(f"{CREATE} wait")["services"][0]
            if s["state"] == "up":
                setups.append(float(s["setup_ms"]))
            else:
                errors[s["error"]] = errors.get(s["error"], 0) + 1
            cli.json(f"qe-service delete {s['id']}")
            if i % every == 0 or i == count:
                taken.append((i, sample(tb)))
                print(
                    f"[soak] {i}/{count} services, {len(setups)} up, {time.monotonic() - t0:.0f} s",
                    flush=True,
                )
        counters = cli.json("show qe-service")["counters"]
    finally:
        cli.close()
    return {
        "count": count,
        "up": len(setups),
        "failed": count - len(setups),
        "errors": errors,
        "seconds": round(time.monotonic() - t0, 1),
        "setup_ms_p50": round(sorted(setups)[len(setups) // 2], 2) if setups else None,
        "counters": counters,
        "samples": taken,
    }


def _cli(tb: NetnsTestbed, host: str, command: str) -> Any:
    return json.loads(tb.cli(host, f"{command} json", via="client", timeout=30))


def left_behind(tb: NetnsTestbed, settle: float = 30.0) -> list[str]:
    """What the run left behind (empty: nothing), after waiting up to ``settle`` s for
    the last teardown and the TE LSAs (MinLSInterval) to settle."""
    deadline = time.monotonic() + settle
    while True:
        problems = _rsvp_and_lambdas(tb) + _services(tb)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(1.0)


def _rsvp_and_lambdas(tb: NetnsTestbed) -> list[str]:
    topo = tb.topology
    problems = []
    for node in NODES:
        lsps = _cli(tb, node, "show mpls lsp")["lsps"]
        if lsps:
            problems.append(f"{node}: {len(lsps)} LSPs (PSB/RSB) left: {lsps[:2]}")
        for local_if, link in _cli(tb, node, "show ip ospf te-link").items():
            want = next(
                sorted(t.lambdas) for t in topo.te_links_of(node) if t.local_if == int(local_if)
            )
            if sorted(link["availableLambdas"]) != want:
                problems.append(f"{node}: TE link {local_if} free {link['availableLambdas']}")
    full = {
        f"{topo.host(node).router_id}:{t.local_if}": sorted(t.lambdas)
        for node in NODES
        for t in topo.te_links_of(node)
    }
    for n in _cli(tb, "pce", "show ted")["nodes"]:
        for link in n["links"]:
            if sorted(link["channels"] or []) != full.get(link["from"]):
                problems.append(f"PCE TED: link {link['from']} free {link['channels']}")
    return problems


def _services(tb: NetnsTestbed) -> list[str]:
    problems = []
    for node in ("tn1", "tn5"):
        live = [
            s["id"]
            for s in _cli(tb, node, "show qe-service")["services"]
            if s["state"] not in ("down", "failed")
        ]
        if live:
            problems.append(f"{node}: QE services still live: {live[:5]}")
    return problems


def proxy_sessions(tb: NetnsTestbed) -> tuple[dict[str, int | None], list[str]]:
    """Stop the proxies (SIGTERM: they log their counters) and read the open key
    sessions from the last ``stopped`` line of each log."""
    out: dict[str, int | None] = {}
    problems = []
    for proxy in PROXIES:
        tb.stop(proxy)
        out[proxy] = None
        for line in _log_lines(tb, proxy):
            rec = json.loads(line) if line.startswith("{") else {}
            if rec.get("msg") == "stopped" and "sessions" in rec:
                out[proxy] = int(rec["sessions"])
        if out[proxy] is None:
            problems.append(f"{proxy}: no counters logged when stopped")
        elif out[proxy]:
            problems.append(f"{proxy}: {out[proxy]} ETSI 004 sessions left open")
    return out, problems


def _log_lines(tb: NetnsTestbed, host: str) -> list[str]:
    lines: list[str] = []
    for path in sorted(tb.run_dir.glob(f"{host}*.log")):
        lines += path.read_text(errors="replace").splitlines()
    return lines


def tracebacks(tb: NetnsTestbed) -> list[str]:
    return [
        f"{host}: a traceback in its log"
        for host in tb.topology.hosts
        if any("Traceback" in line for line in _log_lines(tb, host))
    ]


def report(result: dict[str, Any], sessions: dict[str, int | None], problems: list[str]) -> None:
    samples = result["samples"]
    print(
        f"\nsoak: {result['count']} QE service setups and teardowns on the paper testbed in "
        f"{result['seconds']} s: {result['up']} up, {result['failed']} failed, setup p50 "
        f"{result['setup_ms_p50']} ms"
    )
    for error, n in sorted(result["errors"].items(), key=lambda kv: -kv[1])[:5]:
        print(f"    {n} x {error}")
    print(f"counters at tn1: {result['counters']}")
    print(
        f"\n{'daemon':<8} {'RSS KiB: start':>15} {'10%':>8} {'50%':>8} {'end':>8} "
        f"{'2nd half':>9} {'FDs: start':>11} {'max':>5} {'end':>5}"
    )
    first, last = samples[0][1], samples[-1][1]
    early = samples[min(1, len(samples) - 1)][1]
    half = samples[len(samples) // 2][1]
    for host in sorted(first):
        fds = [s[host][1] for _, s in samples if host in s]
        end = last.get(host, (0, 0))
        mid = half.get(host, (0, 0))
        print(
            f"{host:<8} {first[host][0]:>15} {early.get(host, (0, 0))[0]:>8} {mid[0]:>8} "
            f"{end[0]:>8} {end[0] - mid[0]:>+9} {first[host][1]:>11} {max(fds):>5} {end[1]:>5}"
        )
    print(f"\nETSI 004 sessions open at the end: {sessions}")
    print("left behind: " + ("nothing" if not problems else ""))
    for p in problems:
        print(f"    {p}")


def fd_growth(samples: list[tuple[int, dict[str, tuple[int, int]]]]) -> list[str]:
    first, last = samples[0][1], samples[-1][1]
    return [
        f"{h}: file descriptors {first[h][1]} -> {last[h][1]}"
        for h in sorted(first)
        if h in last and last[h][1] > first[h][1]
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10_000, help="services (default 10000)")
    p.add_argument("--samples", type=int, default=10, help="RSS/FD samples during the run")
    p.add_argument("--prefix", default=PREFIX, help=f"testbed name prefix (default {PREFIX})")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("bench/soak.py needs root (network namespaces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        # an index of our own: `qkdnet down` elsewhere cannot take the testbed away
        os.environ["QKDNET_INDEX"] = str(Path(tmp) / "index")
        Path(tmp, "index").mkdir()
        tb = lab(PAPER, Path(tmp) / "run", a.prefix)
        try:
            result = soak(tb, a.count, a.samples)
            problems = left_behind(tb)
            problems += fd_growth(result["samples"])
            sessions, more = proxy_sessions(tb)
            problems += more + tracebacks(tb)
        finally:
            tb.down()
    if a.json:
        print(json.dumps({**result, "sessions": sessions, "left_behind": problems}, indent=2))
    else:
        report(result, sessions, problems)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
