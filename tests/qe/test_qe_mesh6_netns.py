"""The issue's proof in namespaces: topologies/mesh6.yaml with every daemon (prefix ``nm``),
captures on the control LAN, the KM LAN and the two QE ends' ETSI 004 domains.

- The six site nodes advertise their sites' QKD links (each link by both ends); the PCE's
  TED sees the seven links up with key in stock.
- A QE service n1 -> n4 (sites sharing no QKD link) comes up on the PCE's relay path
  through at least one trusted site, listed at the head (``relay_path``); both ends hold
  equal keys (fingerprints) over five refreshes.
- On every link of the relay path the PCE commits the service's consumption (8 x key
  length x refreshes per second) and nothing elsewhere, and shows their free rate fallen
  by as much; the key managers' ``used_bits`` of those links grow by what the service
  drew (key length x keys); the teardown releases the commitment.
- A request whose consumption exceeds every relay path's rate gets NO-PATH "insufficient
  key rate".
- Stopping the emulators of a link on the relay path: its site nodes advertise it down,
  and the next service takes another relay path.
- FRR (zebra + ospfd, ``fr1``) on the same control LAN stays Full with the DR and BDR and
  holds every QKD link LSA exactly as its site node originated it (sequence number,
  checksum), the re-originated "down" ones of the stopped link included.
- No key byte in any daemon log, nor in the control LAN or KM LAN captures.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from compose import daemons
from compose.netns import NetnsTestbed
from gmpls.ospf.qkdlink import QkdLinkTlv, is_qkd_lsa_id
from gmpls.qe_service.model import fingerprint
from tests.support.captures import delivered_keys

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]
MESH6 = Path(__file__).resolve().parents[2] / "topologies" / "mesh6.yaml"
SITES = {f"n{i}": f"10.1.1.{i}" for i in range(1, 7)}
N1, N4 = SITES["n1"], SITES["n4"]
KEY_BITS = 256  # key-length 32 bytes
#: 32-byte keys once a second
CONSUMPTION = 256.0
CAPTURED = ("ctrl", "kms", "a1", "a4")
#: FRR on the control LAN beside the six site nodes and the PCE (priority 0: never DR, so
#: it is Full with the DR and BDR and 2-Way with the others)
FRR, FRR_ID = "fr1", "10.1.1.50"


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
        if last is True:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def hops(relay: list[str]) -> list[frozenset[str]]:
    return [frozenset(p) for p in itertools.pairwise(relay)]


def pce_links(tb: NetnsTestbed) -> dict[tuple[str, str], dict[str, Any]]:
    """The PCE's QKD links, one row per direction: (upstream site, downstream site)."""
    return {(x["from"], x["to"]): x for x in cli(tb, "pce", "show qkd links")["links"]}


def used_bits(tb: NetnsTestbed) -> dict[tuple[str, str], int]:
    """(site, far site) -> the key bits used on that link, as each site's KM tells its
    site node (``show ip ospf qkd-link``)."""
    out = {}
    for node, site in SITES.items():
        for far, x in cli(tb, node, "show ip ospf qkd-link")["links"].items():
            out[(site, far)] = x["usedBits"]
    return out


def vtysh_json(tb: NetnsTestbed, cmd: str) -> Any:
    vty = daemons.frr_runtime_dir(tb.prefix, FRR)
    argv = ["vtysh", "--vty_socket", str(vty), "-c", cmd + " json"]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def frr_full(tb: NetnsTestbed) -> Any:
    """FRR (a DROther) Full with the DR and the BDR, 2-Way with the others: all seven."""
    nbrs = {
        r: e[0]["nbrState"] for r, e in vtysh_json(tb, "show ip ospf neighbor")["neighbors"].items()
    }
    full = {r for r, st in nbrs.items() if st.startswith("Full/")}
    roles = {r for r, st in nbrs.items() if st.endswith(("/DR", "/Backup"))}
    ok = set(nbrs) == {*SITES.values(), "10.1.1.200"} and full == roles and len(full) == 2
    return (ok and all(st.startswith(("Full/", "2-Way/")) for st in nbrs.values())) or nbrs


def qkd_lsas_frr(tb: NetnsTestbed) -> dict[tuple[str, str], tuple[str, QkdLinkTlv]]:
    """FRR's QKD link LSAs: (LS ID, advertising router) -> (sequence/checksum, the TLV)."""
    opq = vtysh_json(tb, "show ip ospf database opaque-area")
    out = {}
    for e in opq["areaLocalOpaqueLsa"]["areas"]["0.0.0.0"]:
        if is_qkd_lsa_id(IPv4Address(e["linkStateId"])):
            seq = e.get("sequenceNumber") or e["lsaSeqNumber"]
            ver = f"{seq.lower()}/{int(e['checksum'], 16):04x}"
            tlv = QkdLinkTlv.decode(bytes.fromhex(e["opaqueData"]))
            out[(e["linkStateId"], e["advertisingRouter"])] = (ver, tlv)
    return out


def qkd_lsas_ours(tb: NetnsTestbed, node: str) -> dict[tuple[str, str], str]:
    db = cli(tb, node, "show ip ospf database")["areas"]["0.0.0.0"]
    return {
        (
            e["lsId"],
            e["advertisedRouter"],
        ): f"{e['sequenceNumber'].lower()}/{e['checksum'].lower()}"
        for e in db.get("opaqueAreaLinkStates", [])
        if is_qkd_lsa_id(IPv4Address(e["lsId"]))
    }


def frr_holds_ours(tb: NetnsTestbed) -> Any:
    """FRR holds the same 14 QKD link LSAs as n1 (each link by both ends), each instance
    the same (sequence number, checksum), and each TLV says who originated it."""
    frr, ours = qkd_lsas_frr(tb), qkd_lsas_ours(tb, "n1")
    same = {k: v for k, (v, _) in frr.items()} == ours and len(ours) == 14
    local = all(tlv.local_site == IPv4Address(adv) for (_, adv), (_, tlv) in frr.items())
    return (same and local) or (sorted(frr.items()), sorted(ours.items()))


@pytest.fixture
def lab(testbed_factory: Any, tmp_path: Path) -> NetnsTestbed:
    """mesh6 as checked in, plus FRR on its control LAN."""
    doc = yaml.safe_load(MESH6.read_text())
    assert FRR not in doc["hosts"]
    doc["hosts"][FRR] = {
        "kind": "frr",
        "router_id": FRR_ID,
        "interfaces": {"ctrl": FRR_ID},
        "ospf_priority": 0,
    }
    topology = tmp_path / MESH6.name
    topology.write_text(yaml.safe_dump(doc, sort_keys=False))
    tb: NetnsTestbed = testbed_factory(topology, prefix="nm", start_daemons=False)
    tb.capture_start(CAPTURED, tmp_path / "pcap")
    tb.start_all()
    return tb


def test_mesh6_the_issues_proof(lab: NetnsTestbed) -> None:  # long: the proof, in order
    tb = lab

    def advertised() -> Any:
        got = {n: len(cli(tb, n, "show ip ospf qkd-link")["links"]) for n in SITES}
        return got == {"n1": 2, "n2": 3, "n3": 2, "n4": 2, "n5": 3, "n6": 2} or got

    until("each site node to know its site's QKD links", advertised, 60)

    def ted_links() -> Any:
        up = [x for x in pce_links(tb).values() if x["up"] and x["stock_bits"] > 0]
        return len(up) == 14 or pce_links(tb)

    until("the PCE to see the seven QKD links up, key in stock both ways", ted_links, 60)
    until("FRR to be Full with the DR and the BDR", lambda: frr_full(tb), 60)
    until("FRR to hold every QKD link LSA as originated", lambda: frr_holds_ours(tb), 60)
    shown = cli(tb, "n1", "show ip ospf qkd-link")
    assert shown["kmReachable"] and all(x["advertised"] for x in shown["links"].values())
    used0 = used_bits(tb)

    # n1 -> n4 through at least one trusted site, equal keys over five refreshes
    (s,) = cli(tb, "n1", "qe-service create dst 10.1.1.4 refresh time 1000 wait")["services"]
    assert s["state"] == "up", s
    relay = s["relay_path"]
    assert relay[0] == N1 and relay[-1] == N4 and len(relay) >= 3, relay
    assert s["relay_kms"] == [f"km{x.rsplit('.', 1)[1]}" for x in relay]
    fingerprints = {s["fingerprint"]}

    def five_refreshes() -> Any:
        head = cli(tb, "n1", f"show qe-service {s['id']}")["services"][0]
        (tail,) = [x for x in cli(tb, "n4", "show qe-service")["services"] if x["source"] == N1]
        h = {k["index"]: k["fingerprint"] for k in head["keys"]}
        t = {k["index"]: k["fingerprint"] for k in tail["keys"]}
        fingerprints.update(h.values(), t.values())
        common = set(h) & set(t)
        if len(common) < 6:
            return (sorted(h), sorted(t))
        assert all(h[i] == t[i] for i in common), (h, t)
        assert tail["relay_path"] is None  # the tail cannot tell
        return True

    until("five refreshes with equal keys at both ends", five_refreshes, 60)

    # the PCE commits the service's consumption on the relay path's hops, each in the
    # direction the key travels (its upstream end's stream feeds it), nowhere else
    links = pce_links(tb)
    directed = set(itertools.pairwise(relay))
    on_path = set(hops(relay))
    for key, x in links.items():
        want = CONSUMPTION if key in directed else 0.0
        assert x["committed_bps"] == pytest.approx(want), (key, x)
        assert x["free_bps"] == pytest.approx(x["rate_bps"] - want), (key, x)
        assert (f"{N1}->{N4}" in x["services"]) == (key in directed)

    # teardown: the commitment is released; the KMs used what the service drew
    cli(tb, "n1", f"qe-service delete {s['id']}")

    def released() -> Any:
        links = pce_links(tb)
        return all(links[k]["committed_bps"] == 0 for k in directed) or links

    until("the PCE to release the committed rate", released, 30)
    time.sleep(0.5)  # the last GET_KEY replies reach the capture files
    delivered = delivered_keys(tb.capture_file("a1")) + delivered_keys(tb.capture_file("a4"))
    keys = {k for _, _, _, k in delivered}
    drawn = len({i for _, _, i, _ in delivered})  # key indices drawn at either end
    assert drawn >= 6 and fingerprints <= {fingerprint(k) for k in keys}

    def used_as_drawn() -> Any:
        used = used_bits(tb)
        grew = {
            (a, b): used[(a, b)] - used0[(a, b)] for (a, b) in used if frozenset((a, b)) in on_path
        }
        want = {k: drawn * KEY_BITS for k in grew}
        return grew == want or (grew, want)

    until("the KMs' used bits to grow by what the service drew", used_as_drawn, 15)
    used = used_bits(tb)
    off_path = [k for k in used if frozenset(k) not in on_path and used[k] != used0[k]]
    assert off_path == []

    # a consumption above every relay path's rate: 4096-byte keys every ms, 32.8 Mb/s
    (big,) = cli(tb, "n1", "qe-service create dst 10.1.1.4 key-length 4096 refresh time 1 wait")[
        "services"
    ]
    assert big["state"] == "failed", big
    assert "NO-PATH" in big["error"] and "insufficient key rate" in big["error"], big

    # the emulators of a link on the relay path stop: its KMs say it is down, their site
    # nodes advertise it down (a state change: at once, MinLSInterval allowing), and the
    # next service's relay path avoids it
    x, y = sorted(int(site.rsplit(".", 1)[1]) for site in relay[1:3])
    for emulator in (f"q{x}{y}a", f"q{x}{y}b"):
        tb.stop(emulator)
    gone = frozenset((f"10.1.1.{x}", f"10.1.1.{y}"))

    def advertised_down() -> Any:
        views = [
            cli(tb, f"n{a}", "show ip ospf qkd-link")["links"][f"10.1.1.{b}"]
            for a, b in ((x, y), (y, x))
        ]
        return all(v["up"] is False and v["advertised"]["up"] is False for v in views) or views

    until(f"n{x} and n{y} to advertise km{x}-km{y} down", advertised_down, 60)

    def pce_down() -> Any:
        links = pce_links(tb)
        return not any(v["up"] for k, v in links.items() if frozenset(k) == gone) or links

    until(f"the PCE to see km{x}-km{y} down", pce_down, 30)

    def frr_holds_down() -> Any:
        ends = {
            tlv.local_site: tlv.up
            for _, tlv in qkd_lsas_frr(tb).values()
            if frozenset((tlv.local_site, tlv.far_site)) == {IPv4Address(a) for a in gone}
        }
        return ends == {IPv4Address(a): False for a in gone} or ends

    until(f"FRR to hold n{x}'s and n{y}'s LSAs of km{x}-km{y} down", frr_holds_down, 30)
    until("FRR's QKD link LSAs to be n1's again", lambda: frr_holds_ours(tb), 30)
    assert frr_full(tb) is True
    (s2,) = cli(tb, "n1", "qe-service create dst 10.1.1.4 wait")["services"]
    assert s2["state"] == "up", s2
    assert gone not in hops(s2["relay_path"]), s2["relay_path"]
    cli(tb, "n1", f"qe-service delete {s2['id']}")

    # no key byte in any daemon log, nor on the control LAN or the KM LAN
    time.sleep(0.5)
    for domain in ("a1", "a4"):
        keys |= {k for _, _, _, k in delivered_keys(tb.capture_file(domain))}

    def found(path: Path) -> list[bytes]:
        data = path.read_bytes()
        low = data.lower()
        return [k for k in keys if k in data or k.hex().encode() in low]

    logs = sorted(p for p in tb.run_dir.rglob("*") if p.is_file() and p.suffix in (".log", ".out"))
    assert {"n1.log", "n4.log", "km1.log", "km2.log", "pce.log"} <= {p.name for p in logs}
    files = [*logs, tb.capture_file("ctrl"), tb.capture_file("kms")]
    hits = sorted(f.name for f in files if found(f))
    assert hits == [], f"key bytes found in {hits}"
    # the scan does find keys where they are: the ETSI 004 domains of the two ends
    assert set(found(tb.capture_file("a1"))) | set(found(tb.capture_file("a4"))) == keys
