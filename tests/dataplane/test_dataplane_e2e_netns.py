"""Issue 14's proof on the paper testbed in namespaces: a layer-2 QE service tn1 -> tn5
over the paper LSP (three transit nodes) carries ha's frames to hb and back, encrypted.

One testbed (prefix ``dpe``) for the module; the tests run in file order on one service
(refresh time 200 ms): ping and TCP both ways, a channel capture without the plaintext
marker and clean in tshark, a 30 s ping at 20/s across ~150 refreshes losing nothing with
the key indices in step, a flipped-bit frame and a replayed frame dropped and counted;
then a volume-refresh service driven by real traffic; then nothing left after teardown.
Needs the channels, access ports and hosts of the optical layer (docs/dataplane.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gmpls.topology import load as load_topology
from tests.dataplane.test_dataplane_tshark import fields
from tests.support import tshark
from tests.support.dataplane_pair import ping_argv
from tests.support.e2elab import PAPER, ROOT, Lab, start_lab, stop_lab
from tests.support.netns_util import until

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

CREATE = "qe-service create dst 10.1.1.5 key-length 32 layer 2 algorithm 10 refresh time 200"
VOLUME = "qe-service create dst 10.1.1.5 key-length 32 layer 2 algorithm 12 refresh volume 1"
MARKER = "716b646e65742d6d61726b6572212121"  # "qkdnet-marker!!!"
HA, HB = "10.3.0.1", "10.3.0.2"
SERVER = """
import hashlib, socket, sys
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while (d := c.recv(65536)):
    h.update(d); n += len(d)
c.sendall(h.hexdigest().encode()); c.close()
"""
CLIENT = """
import hashlib, socket, sys
data = (b"qkdnet-marker!!!" * 4096) * int(sys.argv[3])
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data); c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode() == hashlib.sha256(data).hexdigest())
"""


def _until(what: str, cond: Any, timeout: float, step: float = 0.2) -> Any:
    return until(what, cond, timeout, step)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    import os

    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    assert load_topology(PAPER).of_kind("host"), "the paper topology lost its client hosts"
    lab = start_lab(PAPER, "dpe", tmp_path_factory.mktemp("dpe"))
    try:
        yield lab
    finally:
        stop_lab(lab)


def service(lab: Lab, node: str, role: str, handle: str) -> dict[str, Any]:
    for s in lab.cli_json(node, "show qe-service")["services"]:
        if s["role"] == role and s["key_handle_prefix"] == handle:
            return dict(s)
    raise AssertionError(f"{node} has no {role} service {handle}")


def ping(lab: Lab, src: str, dst: str, count: int, interval: float = 0.05, size: int = 56) -> bool:
    """ICMP echo from a client host (tests/support/dataplane_pair.py's pinger: no ping
    binary here), the marker as payload; True when nothing was lost."""
    argv = ping_argv(dst, count, interval, size, MARKER)
    r = lab.tb.exec(src, argv, capture_output=True, text=True, check=False, cwd=ROOT)
    return r.returncode == 0 and json.loads(r.stdout)["lost"] == 0


@pytest.fixture(scope="module")
def svc(lab: Lab) -> dict[str, Any]:
    s = dict(lab.cli_json("tn1", f"{CREATE} wait")["services"][0])
    assert s["state"] == "up" and len(s["path"]) == 5, s
    _until("ha reaching hb", lambda: ping(lab, "ha", HB, 1), 20)
    return s


def test_ping_and_tcp_both_ways_across_the_lsp(lab: Lab, svc: dict[str, Any]) -> None:
    assert ping(lab, "ha", HB, 10, 0.02)
    assert ping(lab, "hb", HA, 10, 0.02)
    for server, client, addr in (("hb", "ha", HB), ("ha", "hb", HA)):
        srv = lab.tb.popen(
            server, [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
        )
        port = srv.stdout.readline().strip()
        r = lab.tb.exec(client, [sys.executable, "-c", CLIENT, addr, port, "32"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
        srv.wait(30)
        assert r.stdout.strip() == "True", (client, r.stdout, r.stderr)
    head = service(lab, "tn1", "head", svc["key_handle_prefix"])
    tail = service(lab, "tn5", "tail", svc["key_handle_prefix"])
    assert head["frames_encrypted"] > 1000 and tail["frames_decrypted"] > 1000
    assert head["auth_failures"] == tail["auth_failures"] == 0
    assert isinstance(head["dataplane"], dict) and isinstance(tail["dataplane"], dict)


def test_iperf3_runs_from_ha_to_hb_over_the_service(lab: Lab, svc: dict[str, Any]) -> None:
    # the tool people measure a link with (Debian's iperf3, from the project's set-up)
    srv = lab.tb.popen(
        "hb", ["iperf3", "-s", "-1", "--forceflush"], stdout=subprocess.PIPE, text=True
    )
    try:
        _until("iperf3 listening in hb", lambda: "listening" in srv.stdout.readline(), 20)
        r = lab.tb.exec("ha", ["iperf3", "-c", HB, "-t", "2", "-J"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr or r.stdout
        received = json.loads(r.stdout)["end"]["sum_received"]["bytes"]
        assert received > 1_000_000, received
    finally:
        srv.kill()
        srv.wait(10)
    head = service(lab, "tn1", "head", svc["key_handle_prefix"])
    assert head["bytes_encrypted"] > received


def test_a_channel_carries_ciphertext_only(lab: Lab, svc: dict[str, Any], tmp_path: Path) -> None:
    tx = service(lab, "tn1", "head", svc["key_handle_prefix"])["dataplane"]["tx"]
    pcap = tmp_path / "channel.pcap"
    dump = tshark.tcpdump(lab.tb, "tn1", ["-i", tx], pcap)
    try:
        assert ping(lab, "ha", HB, 20, 0.02)
        _until("the capture", lambda: pcap.stat().st_size > 20 * 100, 10)
    finally:
        dump.terminate()
        dump.wait()
    raw = pcap.read_bytes()
    assert bytes.fromhex(MARKER) not in raw and b"qkdnet-marker" not in raw
    rows = fields(pcap, "", "frame.protocols", "_ws.malformed", "_ws.expert")
    assert len(rows) >= 20
    for proto, malformed, experts in rows:
        assert proto.endswith("qkdnet.dataplane") and malformed == "" and experts == ""


def test_30_s_ping_at_20_per_s_loses_nothing_at_200_ms_refreshes(
    lab: Lab, svc: dict[str, Any]
) -> None:
    h0 = service(lab, "tn1", "head", svc["key_handle_prefix"])
    assert ping(lab, "ha", HB, 600, 0.05)
    h = service(lab, "tn1", "head", svc["key_handle_prefix"])
    t = service(lab, "tn5", "tail", svc["key_handle_prefix"])
    assert h["refresh_count"] - h0["refresh_count"] >= 100  # ~150 in 30 s
    assert abs(h["key_index"] - t["key_index"]) <= 1  # in step (a few ms apart at most)
    assert h["auth_failures"] == t["auth_failures"] == 0
    assert h["rekeys"] >= 100 and t["rekeys"] >= 100


def _inject(lab: Lab, node: str, ifname: str, mode: str) -> None:
    inj = lab.tb.popen(node, [sys.executable, "-m", "tests.support.dataplane_pair", "inject",
                              ifname, mode], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert inj.stdout.readline().strip() == "ready"
    for _ in range(20):
        ping(lab, "ha", HB, 2, 0.05)
        if inj.poll() is not None:
            break
    out, _ = inj.communicate(timeout=20)
    assert mode in out


@pytest.mark.parametrize(("mode", "counter"), [("flip", "auth_failures"), ("replay", "replays")])
def test_an_altered_or_replayed_frame_is_dropped_and_counted(
    lab: Lab, svc: dict[str, Any], mode: str, counter: str
) -> None:
    handle = svc["key_handle_prefix"]
    tx = service(lab, "tn1", "head", handle)["dataplane"]["tx"]
    before = service(lab, "tn5", "tail", handle)[counter]
    _inject(lab, "tn1", tx, mode)
    _until(f"{counter} counted at tn5",
           lambda: service(lab, "tn5", "tail", handle)[counter] == before + 1, 10)  # fmt: skip
    assert ping(lab, "ha", HB, 3)


def test_volume_refresh_fires_after_n_mib_of_real_traffic(lab: Lab, svc: dict[str, Any]) -> None:
    lab.cli_json("tn1", f"qe-service delete {svc['id']}")
    _until("tn5's tail gone", lambda: all(
        s["state"] != "up" for s in lab.cli_json("tn5", "show qe-service")["services"]), 15)  # fmt: skip
    v = dict(lab.cli_json("tn1", f"{VOLUME} wait")["services"][0])
    assert v["state"] == "up", v
    _until("ha reaching hb", lambda: ping(lab, "ha", HB, 1), 20)
    # 1200 echoes of 1442-byte frames each way: ~3.3 MiB counted at each end
    ping(lab, "ha", HB, 1200, 0.001, 1400)
    h = _until("three volume refreshes at tn1",
               lambda: (s := service(lab, "tn1", "head", v["key_handle_prefix"]))["refresh_count"]
               >= 3 and s, 20)  # fmt: skip
    assert h["bytes_dataplane"] >= 3 * (1 << 20)
    t = _until("three at tn5",
               lambda: (s := service(lab, "tn5", "tail", v["key_handle_prefix"]))["refresh_count"]
               >= 3 and s, 20)  # fmt: skip
    assert abs(h["key_index"] - t["key_index"]) <= 1
    lab.cli_json("tn1", f"qe-service delete {v['id']}")


def test_nothing_left_after_teardown(lab: Lab) -> None:
    def clean() -> bool:
        for node in ("tn1", "tn2", "tn3", "tn4", "tn5"):
            lsps = lab.cli_json(node, "show mpls lsp")
            if json.dumps(lsps).count("cross") and any(lsps.get("lsps", [])):
                return False
        return True

    _until("no LSP left", clean, 20)
    for node in ("tn2", "tn3", "tn4"):
        links = lab.tb.exec(node, ["ip", "-o", "link", "show"], capture_output=True, text=True)
        for name in [x.split(":")[1].strip().split("@")[0] for x in links.stdout.splitlines()]:
            if name.startswith("te"):
                r = lab.tb.exec(node, ["tc", "filter", "show", "dev", name, "ingress"],
                                capture_output=True, text=True)  # fmt: skip
                assert r.stdout.strip() == "", (node, name, r.stdout)
    for node in ("tn1", "tn5"):
        for s in lab.cli_json(node, "show qe-service")["services"]:
            assert not isinstance(s.get("dataplane"), dict), (node, s)
