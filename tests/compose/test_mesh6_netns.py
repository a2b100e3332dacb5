"""``qkdnet up topologies/mesh6.yaml`` in namespaces (needs root): every host, domain and
address of the six-site QKD network, every daemon running, the emulators at their links'
rates, each key manager with its links up, and the OSPF side converged (one DR, everyone
Full with it, the PCE's TED with n1..n6).

This module checks what the topology and the launcher deliver; QE services relayed
through trusted sites are the end-to-end tests' (tests/qe/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from compose.netns import leftovers
from gmpls.qkd import ratemodel
from tests.support.e2elab import Lab, private_index, restore_index, stop_lab
from tests.support.mesh6lab import (
    addresses,
    lan_is_converged,
    listening,
    start_mesh6,
    start_qkd_link,
    stop_qkd_link,
)
from tests.support.netns_util import wait_for

pytestmark = pytest.mark.netns

PREFIX = "m6t"


@pytest.fixture(scope="module")
def mesh6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    run = tmp_path_factory.mktemp("m6t-run")
    old = private_index(run)
    try:
        lab = start_mesh6(PREFIX, run)
        try:
            yield lab
        finally:
            stop_lab(lab)
        assert leftovers(PREFIX) == []
    finally:
        restore_index(old)


def test_every_host_has_its_namespace_and_addresses(mesh6: Lab) -> None:
    topo = mesh6.tb.topology
    st = mesh6.tb.status()
    assert len(st["hosts"]) == 30 and all(h["netns_exists"] for h in st["hosts"].values())
    assert len(st["domains"]) == 16 and all(d["state"] != "absent" for d in st["domains"].values())
    for name, h in topo.hosts.items():
        want = {d: f"{a}/{topo.domains[d].subnet.prefixlen}" for d, a in h.interfaces.items()}
        assert addresses(mesh6, name) == want, name


def test_every_host_but_the_client_runs_its_daemon(mesh6: Lab) -> None:
    hosts = mesh6.tb.status()["hosts"]
    for name, h in hosts.items():
        if h["kind"] in ("client", "host"):  # no daemon
            assert h["daemons"] == [], name
            continue
        assert [d["running"] for d in h["daemons"]] == [True], (name, h["note"])


def test_each_key_manager_has_its_links_at_the_models_rates(mesh6: Lab) -> None:
    """The key managers read their sites and links from the topology: each lists exactly
    its QKD links, toward the far site's ID, up once both ends and the emulators talk, at
    the rate the loader computed from the link's fibre. A key manager shows its own
    stream of the link, as its emulator's STATUS reports it: half the link's rate and
    buffer (docs/idq3p.md#rate-and-buffer)."""
    topo = mesh6.tb.topology
    for i in range(1, 7):
        km = f"km{i}"
        want = {x.name: x for x in topo.qkd_links_of(km)}

        def all_up(km: str = km, n: int = len(want)) -> bool | list[Any]:
            rows = _links(mesh6, km)
            return (len(rows) == n and all(r["up"] for r in rows)) or rows

        wait_for(all_up, 30, f"{km}'s QKD links up")
        rows = {r["name"]: r for r in _links(mesh6, km)}
        assert set(rows) == set(want)
        for name, link in want.items():
            assert rows[name]["far_site"] == str(topo.site_id(link.far(km)))
            # this end's stream: half the link's rate and buffer, as its emulator says
            assert rows[name]["rate_bps"] == int(link.rate_bps) // 2, (km, name)
            assert rows[name]["buffer_bits"] == link.buffer_bits // 2, (km, name)
            assert rows[name]["link_rate_bps"] == int(link.rate_bps), (km, name)


def test_each_domain_joins_what_it_should_and_nothing_else(mesh6: Lab) -> None:
    tb = mesh6.tb
    assert tb.ping("km1", "10.12.0.4")  # the KM LAN joins every key manager
    assert tb.ping("n1", "10.2.1.11")  # a node reaches its own key manager
    assert tb.ping("km2", "10.11.2.25")  # and a key manager its emulators
    assert not tb.ping("n1", "10.2.2.11", timeout=0.3)  # not another site's key manager
    assert not tb.ping("km1", "10.11.2.12", timeout=0.3)  # nor another site's emulator
    assert not tb.ping("q12a", "10.11.2.12", timeout=0.3)  # emulators meet only via KMs


def test_every_emulator_runs_at_its_links_rate(mesh6: Lab) -> None:
    topo = mesh6.tb.topology
    for link in topo.qkd_links:
        assert link.fibre_km is not None
        rate = ratemodel.rate_for(link.fibre_km)
        for idq in (link.a_idq, link.b_idq):
            wait_for(lambda idq=idq: listening(mesh6, idq) != [], 20, f"{idq} listening")
            line = listening(mesh6, idq)[-1]
            assert (line["pair"], line["rate_bps"], line["buffer_bits"]) == (
                link.pair_of(idq),
                rate,
                link.buffer_bits,
            )


def test_ospf_converges_on_the_control_lan(mesh6: Lab) -> None:
    wait_for(lambda: lan_is_converged(mesh6), 60, "one DR, everyone Full with it")
    ted = mesh6.cli_json("pce", "show ted")
    nodes = {n["router_id"]: n for n in ted["nodes"]}
    assert sorted(nodes) == [f"10.1.1.{i}" for i in range(1, 7)]
    assert {r for r, n in nodes.items() if n.get("qe_capable")} == {"10.1.1.1", "10.1.1.4"}
    links = sorted(len(n["links"]) for n in nodes.values())
    assert links == [2] * 6  # the TE ring


def test_a_qkd_link_goes_dark_and_comes_back(mesh6: Lab) -> None:
    """What the relay tests do to a link on the relay path: both its emulators stop, the
    others keep running; started again, they run at the link's rate."""
    tb = mesh6.tb
    starts = {idq: len(listening(mesh6, idq)) for idq in ("q25a", "q25b")}
    stop_qkd_link(mesh6, "km2-km5")
    try:
        assert tb.running("q25a") == [] and tb.running("q25b") == []
        assert tb.running("q12a") and tb.running("q45b")
    finally:
        start_qkd_link(mesh6, "km2-km5")
    for idq, n in starts.items():
        wait_for(partial(_started, mesh6, idq, n + 1), 20, f"{idq} listening again")
        assert listening(mesh6, idq)[-1]["rate_bps"] == ratemodel.rate_for(5.0)


def _started(lab: Lab, host: str, times: int) -> bool:
    return len(listening(lab, host)) == times


def _links(lab: Lab, km: str) -> list[Any]:
    """``show qkd links json`` at a key manager, from its site node (its CLI listens on
    its north address only)."""
    node = lab.tb.topology.served_by(km)[0]
    return list(json.loads(lab.tb.cli(km, "show qkd links json", via=node)))
