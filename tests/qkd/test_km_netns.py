"""Trusted-node key relay through real key manager daemons in namespaces (prefix ``k3``).

topologies/mesh6.yaml is brought up with only three sites' QKD daemons: the emulators of
km1-km2 and km2-km3 and the key managers km1, km2, km3. n1 opens toward n3, whose sites
share no QKD link: km1 relays through km2 (the fewest hops over live links). The KM LAN
is captured at km2 and decoded by tshark, plain and with the project's dissector.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compose import wireshark
from compose.backend import quiet
from compose.netns import NetnsTestbed, teardown
from gmpls.qkd import sync
from tests.qkd.test_qkd_netns import wait_listening
from tests.support import tshark

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]
MESH6 = Path(__file__).resolve().parents[2] / "topologies" / "mesh6.yaml"
EMULATORS = ("q12a", "q12b", "q23a", "q23b")
KMS = ("km1", "km2", "km3")
KM_NORTH = {"n1": "10.2.1.11", "n2": "10.2.2.11", "n3": "10.2.3.11"}


def cli(tb: NetnsTestbed, node: str, *args: str) -> dict:
    argv = [sys.executable, "-m", "qkd_proxy.client", "--proxy", KM_NORTH[node], *args]
    p = tb.exec(node, argv, capture_output=True, text=True, timeout=120)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"client failed ({p.returncode}): {p.stdout} {p.stderr}")
    return dict(json.loads(p.stdout))


def links_up(tb: NetnsTestbed, node: str, want: set[str]) -> bool:
    up = {x["name"] for x in cli(tb, node, "links")["links"] if x["up"]}
    return want <= up


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsTestbed]:
    teardown("k3", progress=quiet)
    tb = NetnsTestbed(MESH6, tmp_path_factory.mktemp("k3lab"), prefix="k3", progress=quiet)
    codes: dict[str, int | None] = {}
    try:
        tb.up(start_daemons=False)
        for h in (*EMULATORS, *KMS):
            assert tb.start(h), h
        wait_listening(tb, {h: 0 for h in (*EMULATORS, *KMS)})
        end = time.monotonic() + 20
        while not links_up(tb, "n2", {"km1-km2", "km2-km3"}):
            assert time.monotonic() < end, cli(tb, "n2", "links")
            time.sleep(0.5)
        yield tb
    finally:
        for h in (*EMULATORS, *KMS):
            codes.update(tb.stop(h))
        tb.down()
    assert all(c == 0 for c in codes.values()), codes


def test_relay_from_site_1_to_site_3_through_km2(lab: NetnsTestbed) -> None:
    pcap = lab.run_dir / "kms.pcap"
    dump = tshark.tcpdump(lab, "km2", ["-i", "kms", "-n", "udp"], pcap)
    try:
        o = cli(lab, "n1", "open", "--destination", "10.1.1.3")
        assert o["status"] == 0, o
        h = o["key_handle"]
        assert cli(lab, "n3", "open", "--destination", "10.1.1.1", "--handle", h)["status"] == 0
        a = cli(lab, "n1", "get", "--handle", h, "--count", "20", "--show-key")
        b = cli(lab, "n3", "get", "--handle", h, "--count", "20", "--show-key")
        time.sleep(0.5)
    finally:
        dump.send_signal(signal.SIGTERM)
        dump.wait(10)
    assert a["status"] == 0 and b["status"] == 0, (a, b)
    assert [k["index"] for k in a["keys"]] == list(range(20))
    assert a["keys"] == b["keys"]
    keys = [bytes.fromhex(k["key"]) for k in a["keys"]]
    assert len(set(keys)) == 20

    # each hop consumed the key length per key, as both of its KMs count it
    used = {
        n: {x["name"]: x["used_bits"] for x in cli(lab, n, "links")["links"]}
        for n in ("n1", "n2", "n3")
    }
    assert used["n1"]["km1-km2"] == used["n2"]["km1-km2"] == 20 * 256
    assert used["n2"]["km2-km3"] == used["n3"]["km2-km3"] == 20 * 256

    # the KM channel carried no key, and tshark decodes every frame with nothing malformed
    data = pcap.read_bytes()
    assert bytes.fromhex(h) in data  # the relay's messages were captured
    assert not [k for k in keys if k in data]
    layers = tshark.layers(pcap)
    assert layers and all("udp" in dict(f) for f in layers)
    assert not tshark.collect(layers, "_ws.malformed")
    assert not tshark.collect(layers, "_ws.expert")
    # and through the project's dissector (docs/wireshark.md): every frame is a KM channel
    # frame, the relay's messages among them, nothing malformed, no expert info
    layers = tshark.layers(pcap, "-X", f"lua_script:{wireshark.PLUGIN}")
    assert layers and all("qkdnet.sync" in dict(f) for f in layers)
    assert not tshark.collect(layers, "_ws.malformed")
    assert not tshark.collect(layers, "_ws.expert")
    types = {int(t, 0) for t in tshark.collect(layers, "qkdnet.sync.type")}
    relay = {sync.SyncType.RELAY_OPEN, sync.SyncType.RELAY_RESP, sync.SyncType.RELAY_KEY}
    relay |= {sync.SyncType.RELAY_ACK, sync.SyncType.RELAY_OPENED}
    assert {int(t) for t in relay} <= types, sorted(types)
    for node in KMS:
        log = (lab.run_dir / f"{node}.log").read_bytes()
        assert not [k for k in keys if k.hex().encode() in log]
    assert cli(lab, "n1", "close", "--handle", h) == {"status": 0, "status_name": "SUCCESSFUL"}
    assert cli(lab, "n3", "close", "--handle", h)["status"] in (0, 4)


def test_an_etsi014_key_between_sites_without_a_qkd_link(lab: NetnsTestbed) -> None:
    """014 through trusted-node relay: n1's key manager serves enc_keys for n3, n3's
    dec_keys gives the same bytes (docs/etsi014.md)."""
    from tests.qkd.test_etsi014_netns import curl, keys

    def used() -> dict[str, int]:
        return {x["name"]: x["used_bits"] for x in cli(lab, "n2", "links")["links"]}

    before = used()
    a = keys(curl(lab, "n1", "https://10.2.1.11/api/v1/keys/n3/enc_keys?number=3"))
    assert len(a) == 3
    ids = [{"key_ID": k} for k in a]
    b = keys(curl(lab, "n3", "https://10.2.3.11/api/v1/keys/n1/dec_keys", data={"key_IDs": ids}))
    assert b == a
    after = used()  # relayed by km2: each hop carried the three keys
    assert {n: after[n] - before[n] for n in ("km1-km2", "km2-km3")} == {
        "km1-km2": 3 * 256,
        "km2-km3": 3 * 256,
    }


def test_a_relay_link_down_shows_and_refuses_new_relays(lab: NetnsTestbed) -> None:
    codes = {}
    for h in ("q23a", "q23b"):
        codes.update(lab.stop(h))
    assert all(c == 0 for c in codes.values()), codes
    try:
        end = time.monotonic() + 15
        while links_up(lab, "n2", {"km2-km3"}):
            assert time.monotonic() < end, "km2-km3 still up"
            time.sleep(0.5)
        rows = {x["name"]: x for x in cli(lab, "n2", "links")["links"]}
        assert rows["km1-km2"]["up"] and not rows["km2-km3"]["up"]
        o = cli(lab, "n1", "open", "--destination", "10.1.1.3")
        assert o["status"] == 4  # NO_QKD_CONNECTION: no live relay path
    finally:
        since = {h: (lab.run_dir / f"{h}.log").stat().st_size for h in ("q23a", "q23b")}
        for h in ("q23a", "q23b"):
            assert lab.start(h), h
        wait_listening(lab, since)
