"""The node side of a QKD network in namespaces: topologies/mesh6.yaml with every daemon
(prefix ``nm``). The six site nodes advertise their sites' QKD links (each link by both
ends: 14 QKD link LSAs), the PCE's TED sees the seven links up with their stock; a QE
service n1 -> n4 (sites sharing no QKD link) comes up on the PCE's relay path through at
least one trusted site, the head lists that path in ``show qe-service json``, and both
ends hold equal keys over five refreshes. Stopping the emulators of a link on that relay
path makes its site nodes advertise it down, and the next service takes another path."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from compose.netns import NetnsTestbed

pytestmark = [pytest.mark.netns, pytest.mark.slow]
MESH6 = Path(__file__).resolve().parents[2] / "topologies" / "mesh6.yaml"
SITES = {f"n{i}": f"10.1.1.{i}" for i in range(1, 7)}


def cli(tb: NetnsTestbed, host: str, cmd: str) -> Any:
    return json.loads(tb.cli(host, cmd + " json", timeout=60))


def until(what: str, cond: Any, timeout: float) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = cond()
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            last = e
        if last is True or (last and not isinstance(last, (Exception, list, dict, tuple))):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last}")


@pytest.fixture
def lab(testbed_factory: Any) -> NetnsTestbed:
    tb: NetnsTestbed = testbed_factory(MESH6, prefix="nm")
    return tb


def test_mesh6_links_advertised_and_a_relayed_service(lab: NetnsTestbed) -> None:
    tb = lab

    def advertised() -> Any:
        got = {n: len(cli(tb, n, "show ip ospf qkd-link")["links"]) for n in SITES}
        return got == {"n1": 2, "n2": 3, "n3": 2, "n4": 2, "n5": 3, "n6": 2} or got

    until("each site node to know its site's QKD links", advertised, 60)

    def ted_links() -> Any:
        d = cli(tb, "pce", "show qkd links")
        up = [x for x in d["links"] if x["up"] and x["two_way"] and x["stock_bits"] > 0]
        return len(up) == 7 or d

    until("the PCE to see the seven QKD links up with key in stock", ted_links, 60)
    shown = cli(tb, "n1", "show ip ospf qkd-link")
    assert shown["kmReachable"] and all(x["advertised"] for x in shown["links"].values())

    out = cli(tb, "n1", "qe-service create dst 10.1.1.4 refresh time 1000 wait")
    (s,) = out["services"]
    assert s["state"] == "up", s
    relay = s["relay_path"]
    assert relay[0] == SITES["n1"] and relay[-1] == SITES["n4"] and len(relay) >= 3, relay
    assert s["relay_kms"][0] == "km1" and s["relay_kms"][-1] == "km4"

    def five_refreshes() -> Any:
        head = cli(tb, "n1", f"show qe-service {s['id']}")["services"][0]
        (tail,) = [
            x for x in cli(tb, "n4", "show qe-service")["services"] if x["source"] == SITES["n1"]
        ]
        h = {k["index"]: k["fingerprint"] for k in head["keys"]}
        t = {k["index"]: k["fingerprint"] for k in tail["keys"]}
        common = set(h) & set(t)
        if len(common) < 6:
            return (sorted(h), sorted(t))
        assert all(h[i] == t[i] for i in common), (h, t)
        assert tail["relay_path"] is None  # the tail cannot tell
        return True

    until("five refreshes with equal keys at both ends", five_refreshes, 60)
    cli(tb, "n1", f"qe-service delete {s['id']}")

    # the emulators of a link on that relay path stop: its KMs say it is down, their site
    # nodes advertise it down (a state change: at once, MinLSInterval allowing), and the
    # next service's relay path avoids it
    x, y = sorted(int(site.rsplit(".", 1)[1]) for site in relay[1:3])
    for emulator in (f"q{x}{y}a", f"q{x}{y}b"):
        tb.stop(emulator)
    gone = {f"10.1.1.{x}", f"10.1.1.{y}"}

    def link_down() -> Any:
        d = cli(tb, "pce", "show qkd links")
        (lk,) = [lk for lk in d["links"] if {lk["a"], lk["b"]} == gone]
        return not lk["up"] or lk

    until(f"the PCE to see km{x}-km{y} down", link_down, 60)
    far = cli(tb, f"n{x}", "show ip ospf qkd-link")["links"][f"10.1.1.{y}"]
    assert far["up"] is False and far["advertised"]["up"] is False
    (s2,) = cli(tb, "n1", "qe-service create dst 10.1.1.4 wait")["services"]
    assert s2["state"] == "up", s2
    hops = set(zip(s2["relay_path"], s2["relay_path"][1:], strict=False))
    assert not any({a, b} == gone for a, b in hops), s2["relay_path"]
    cli(tb, "n1", f"qe-service delete {s2['id']}")
