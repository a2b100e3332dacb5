"""The PCE daemon over real sockets with QKD links in its TED: a PCC's QE request gets the
relay path in the PCRep, a too hungry one NO-PATH "insufficient key rate", and
``show qkd links [json]`` shows rate, stock, committed consumption and services."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from daemonkit.pcep import PcepClient
from gmpls.pcep import examples as ex
from gmpls.topology import load
from pce.daemon import PceDaemon, config_from_topology
from tests.pce.test_server import cli
from tests.pce.test_service_keys import QKD, qkd_lsa

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pce() -> AsyncIterator[PceDaemon]:
    topo = load(PAPER)
    cfg = config_from_topology(
        topo, "pce", pcep_port=0, cli_port=0, bind="127.0.0.1", ted_source="static"
    )
    d = PceDaemon(topo, cfg)
    await d.start()
    n: dict[int, int] = {}
    for a, b in QKD:
        for near, far in ((a, b), (b, a)):
            d.ted.install(qkd_lsa(near, far, n.get(near, 0)))
            n[near] = n.get(near, 0) + 1
    try:
        yield d
    finally:
        await d.stop()


async def test_relay_path_and_show_qkd_links(pce: PceDaemon) -> None:
    async with PcepClient("127.0.0.1", pce.server.port, local_address="127.0.0.2") as pcc:
        ok = await pcc.request(TN[1], TN[5], ex.PAPER_QE)
        hungry = dataclasses.replace(ex.PAPER_QE, refresh_value=10)
        refused = await pcc.request(TN[1], TN[5], hungry)
        js, text = await cli(pce, "show qkd links json", "show qkd links")
    assert ok.ok and ok.response.relay == (TN[1], TN[2], TN[5])
    assert not refused.ok and "insufficient key rate" in refused.reason
    d = json.loads(js)
    rows = {(r["from"], r["to"]): r for r in d["links"]}
    row = rows[("10.1.1.1", "10.1.1.2")]
    assert row["committed_bps"] == 256 and row["free_bps"] == 744
    assert row["rate_bps"] == 1000 and row["stock_bits"] == 100_000
    assert row["services"] == ["10.1.1.1->10.1.1.5"]
    assert rows[("10.1.1.2", "10.1.1.5")]["services"] == ["10.1.1.1->10.1.1.5"]
    back = rows[("10.1.1.2", "10.1.1.1")]  # the other way: its own stream, nothing on it
    assert back["committed_bps"] == 0 and back["services"] == []
    assert rows[("10.1.1.1", "10.1.1.3")]["services"] == []
    assert "QKD links: 4 between 4 sites" in text
    assert "10.1.1.1->10.1.1.5" in text and "744" in text
