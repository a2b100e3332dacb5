"""Flood pacing (LS Updates bundled over ``flood_pace``) and SPF throttling of the core."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest

from gmpls.ospf import packet as P
from gmpls.ospf.constants import LsType
from gmpls.ospf.events import OriginateOpaque
from gmpls.ospf.lsa import LSAKey
from gmpls.ospf.router import OspfRouter
from gmpls.ospf.te import RouterAddress, TeLSA, te_lsa_id
from tests.support.ospf_lab import Lab


def p2p_lab(links: list[tuple[int, int]], **kw: dict[str, Any]) -> tuple[Lab, list[OspfRouter]]:
    """Routers 10.0.0.1... joined by point-to-point links; ``kw`` maps a router's index
    to its keyword arguments."""
    lab = Lab()
    n = 1 + max(max(a, b) for a, b in links)
    rs = [lab.router(f"10.0.0.{i + 1}", **kw.get(str(i), {})) for i in range(n)]
    for k, (a, b) in enumerate(links):
        for r, host in ((rs[a], 1), (rs[b], 2)):
            lab.connect(
                f"l{k}", r, f"10.9.{k}.{host}/30", ifname=f"l{k}", network_type="point-to-point"
            )
    lab.start()
    lab.run_until_converged(60)
    return lab, rs


def _te(i: int) -> OriginateOpaque:
    return OriginateOpaque(
        LsType.OPAQUE_AREA, te_lsa_id(i), TeLSA((RouterAddress(IPv4Address(f"10.8.0.{i}")),))
    )


def _updates(lab: Lab, rid: IPv4Address, ifname: str) -> list[list[LSAKey]]:
    """The LSA keys of each LS Update ``rid`` sent out of ``ifname``, in order."""
    out = []
    for _, who, s in lab.sent:
        if who == rid and s.ifname == ifname:
            body = P.decode(s.data).body
            if isinstance(body, P.LSUpdate):
                out.append([a.key for a in body.lsas])
    return out


def _acked(lab: Lab, rid: IPv4Address, ifname: str) -> list[LSAKey]:
    return [
        h.key
        for _, who, s in lab.sent
        if who == rid and s.ifname == ifname and isinstance(b := P.decode(s.data).body, P.LSAck)
        for h in b.headers
    ]


@pytest.mark.parametrize("pace", [0.0, 0.01])
def test_lsas_flooded_within_the_pacing_interval_leave_in_one_update(pace: float) -> None:
    """Three originations handled one after the other (three events): with pacing they
    leave A in one LS Update; without (0) each event sends its own, as before. B (default
    pacing) floods them on in one LS Update either way, also when they came in three."""
    lab, (a, b, c) = p2p_lab([(0, 1), (1, 2)], **{"0": {"flood_pace": pace}})
    lab.record = True
    for i in (1, 2, 3):
        lab.feed(a, _te(i))
    lab.sim.run(1)
    keys = [LSAKey(LsType.OPAQUE_AREA, te_lsa_id(i), a.router_id) for i in (1, 2, 3)]
    want = [keys] if pace else [[k] for k in keys]
    assert _updates(lab, a.router_id, "l0") == want
    assert _updates(lab, b.router_id, "l1") == [keys]
    assert all(k in c.lsdb for k in keys)


def test_an_lsa_the_neighbor_sent_us_meanwhile_is_not_flooded_back_but_acked() -> None:
    """A triangle: A floods an LSA to B and C. C (no pacing) floods it on to B at once; B
    (a long pacing interval) gets C's copy while its own flooding to C still waits: that
    copy is an implied acknowledgment (§13 (7)), so B leaves the LSA out of what it sends
    C, and acknowledges C's copy, which our flooding no longer does. C sends it to B once:
    no retransmission."""
    lab, (a, b, c) = p2p_lab(
        [(0, 1), (1, 2), (0, 2)], **{"1": {"flood_pace": 0.1}, "2": {"flood_pace": 0.0}}
    )
    lab.record = True
    lab.feed(a, _te(1))
    lab.sim.run(10)
    key = LSAKey(LsType.OPAQUE_AREA, te_lsa_id(1), a.router_id)
    b_to_c, c_to_b = "l1", "l1"
    assert [u for u in _updates(lab, b.router_id, b_to_c) if key in u] == []
    assert key in _acked(lab, b.router_id, b_to_c)
    assert [u for u in _updates(lab, c.router_id, c_to_b) if key in u] == [[key]]
    assert all(not n.rxmt for r in (a, b, c) for _, n in r.neighbors())


def test_spf_hold_doubles_while_changes_keep_coming_and_resets_after_a_quiet_hold() -> None:
    """FRR's ``timers throttle spf`` with a doubling hold: a change after a quiet time runs
    SPF ``spf_delay`` later; one within the hold time of the last run waits for its end,
    and the next hold is twice as long, up to ``spf_max_hold``."""
    r = OspfRouter("10.0.0.1", spf_delay=0.05, spf_hold=0.2, spf_max_hold=1.0)
    at, runs = 10.0, []
    for _ in range(6):  # a change 10 ms after each run
        run = r._spf_schedule(at)
        r._last_spf = run
        runs.append(round(run - at, 3))
        at = run + 0.01
    assert runs == [0.05, 0.19, 0.39, 0.79, 0.99, 0.99]
    quiet = r._last_spf + 1.5
    assert r._spf_schedule(quiet) == pytest.approx(quiet + 0.05)


def test_throttled_spf_runs_less_and_computes_the_same_routes() -> None:
    links = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (3, 4)]
    eager = {str(i): {"spf_delay": 0.0, "spf_hold": 0.0, "flood_pace": 0.0} for i in range(5)}
    lab0, plain = p2p_lab(links, **eager)
    lab1, throttled = p2p_lab(links)
    for lab in (lab0, lab1):
        lab.sim.run(10)
    assert [r.routes for r in throttled] == [r.routes for r in plain]
    assert all(r.routes for r in throttled)
    assert sum(r.spf_runs for r in throttled) < sum(r.spf_runs for r in plain)
