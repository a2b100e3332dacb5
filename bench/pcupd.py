"""Moving a QE service with the stateful PCE (PCUpd, RFC 8231) on the paper testbed in
network namespaces (issue 19).

``python bench/pcupd.py [--quick] [--moves N] [--json]`` (root) brings the paper topology
up (prefix ``e2u``), waits for OSPF and the PCE like ``qkdnet demo``, and from the client
host over one telnet session to the PCE and one to tn1:

* **initiate**: ``qe-service initiate head tn1 dst tn5 <paper parameters> wait`` (PCInitiate,
  RFC 8281): the time until the PCE has tn1's report of the service up;
* **operator moves**: N times ``qe-service update ID avoid 10.1.1.3`` (onto the bypass
  tn1-tn2-tn4-tn5), then ``qe-service update ID`` (back through tn3), 2 s apart (``--gap``:
  a moved LSP's old lambdas show free in the TED only when the nodes re-originate their TE
  LSAs, at most every 5 s, so much faster moves could use up the 8 lambdas of tn1-tn2; not
  tried), each timed from the command to the PCE's LSP database holding tn1's report that
  answers the update
  (``update_result: moved``): PCUpd out, tn1 signals the new LSP make-before-break (Path and
  Resv over the new hops, its key session kept), PCRpt back. tn1's and tn5's key
  fingerprints are compared after the last move;
* **tn3 stops**: with the service through tn3, tn3's node agent is stopped (SIGTERM); the
  time from the stop until tn1 shows the service up again on the bypass (RSVP Hellos tell
  tn2 and tn4, OSPF tells the PCE's TED, PCUpd, re-signalling with the same key handle).
  tests/e2e/test_pcupd_netns.py asserts what this times.

Figures depend on the machine (and on what else runs on it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from setup import PAPER, Telnet, lab, pct  # bench/setup.py, beside this script

PREFIX = "e2u"
INITIATE = (
    "qe-service initiate head 10.1.1.1 dst 10.1.1.5 key-length 32 layer 2 algorithm 10 "
    "refresh time 1000 wait"
)
BYPASS = ["10.1.1.1", "10.1.1.2", "10.1.1.4", "10.1.1.5"]


def _until(what: str, cond: Any, timeout: float, step: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(step)


def _lsp(pce: Telnet) -> dict[str, Any]:
    (lsp,) = pce.json("show pce lsp")["lsps"]
    return dict(lsp)


def _head(tn1: Telnet) -> dict[str, Any]:
    (s,) = [s for s in tn1.json("show qe-service")["services"] if s["role"] == "head"]
    return dict(s)


def _move(pce: Telnet, line: str) -> float:
    """ms from ``line`` to the PCE holding the report that answers its PCUpd."""
    t0 = time.monotonic()
    out = pce.json(line)
    if out.get("update_pending") is None:
        raise RuntimeError(f"{line}: {out}")
    srp = out["update_pending"]
    lsp = _until(
        f"the report answering SRP {srp}",
        lambda: (x := _lsp(pce))["update_pending"] is None and x,
        20,
    )
    if lsp["update_result"] != "moved":
        raise RuntimeError(f"{line}: {lsp['update_result']}")
    return (time.monotonic() - t0) * 1000


def run(tb: Any, moves: int, gap: float) -> dict[str, Any]:
    pce, tn1 = Telnet(tb, "client", "pce"), Telnet(tb, "client", "tn1")
    out: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        ini = pce.json(INITIATE, timeout=60)
        out["initiate_ms"] = round((time.monotonic() - t0) * 1000, 1)
        if ini["state"] != "up":
            raise RuntimeError(f"initiation: {ini}")
        # the LSP's report reaches the PCE as the initiation goes up; let time refresh run
        _until("the LSP in show pce lsp", lambda: _lsp(pce)["state"] == "up", 10, 0.05)
        ms: list[float] = []
        for _ in range(moves):
            for line in (f"qe-service update {ini['id']} avoid 10.1.1.3",
                         f"qe-service update {ini['id']}"):  # fmt: skip
                time.sleep(gap)
                ms.append(_move(pce, line))
        head = _head(tn1)
        tn5 = Telnet(tb, "client", "tn5")
        try:
            services = tn5.json("show qe-service")["services"]
        finally:
            tn5.close()
        (tail,) = [
            s
            for s in services
            if s["role"] == "tail" and s["key_handle_prefix"] == head["key_handle_prefix"]
        ]
        h = {k["index"]: k["fingerprint"] for k in head["keys"]}
        t = {k["index"]: k["fingerprint"] for k in tail["keys"]}
        out["moves"] = {
            "n": len(ms),
            "head_moves": head["moves"],
            "p50_ms": round(pct(ms, 0.5), 1),
            "p99_ms": round(pct(ms, 0.99), 1),
            "mean_ms": round(statistics.fmean(ms), 1),
            "max_ms": round(max(ms), 1),
            "same_keys_both_ends": all(h[i] == t[i] for i in set(h) & set(t)),
        }
        before = head["moves"]
        t0 = time.monotonic()
        tb.stop("tn3")
        _until(
            "tn1's service up on the bypass",
            lambda: (s := _head(tn1))["moves"] > before and s["state"] == "up" and s,
            60,
            0.05,
        )
        out["tn3_stopped_to_up_on_bypass_s"] = round(time.monotonic() - t0, 2)
        if _head(tn1)["path"] != BYPASS:
            raise RuntimeError(f"not on the bypass: {_head(tn1)['path']}")
    finally:
        pce.close()
        tn1.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 moves each way")
    p.add_argument("--moves", type=int, help="moves each way (default 10)")
    p.add_argument("--gap", type=float, default=2.0, help="seconds between moves (2)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--prefix", default=PREFIX, help=f"testbed name prefix (default {PREFIX})")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("bench/pcupd.py needs root (network namespaces)", file=sys.stderr)
        return 2
    moves = a.moves or (3 if a.quick else 10)
    with tempfile.TemporaryDirectory(prefix="bench-pcupd-") as tmp:
        # an index of our own: `qkdnet down` elsewhere cannot take the bench's testbed away
        os.environ["QKDNET_INDEX"] = str(Path(tmp) / "index")
        Path(tmp, "index").mkdir()
        tb = lab(PAPER, Path(tmp) / "run", a.prefix)
        try:
            r = run(tb, moves, a.gap)
        finally:
            tb.down()
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    m = r["moves"]
    print("\nMoving the paper's QE service with PCUpd (namespaces)")
    print(f"initiate ... wait (PCInitiate to the head's report up): {r['initiate_ms']} ms")
    print(
        f"operator moves (qe-service update, make-before-break, to the answering PCRpt): "
        f"{m['n']} moves, p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms, max {m['max_ms']} ms; "
        f"head moves {m['head_moves']}, same keys at both ends: {m['same_keys_both_ends']}"
    )
    print(f"tn3 stopped -> up on the bypass: {r['tn3_stopped_to_up_on_bypass_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
