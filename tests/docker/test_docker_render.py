"""``qkdnet compose render``: the checked-in docker-compose.yml is current and says what the
paper's testbed needs. No Docker Engine needed (only the Compose CLI for its own check)."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compose import render
from compose.docker import compose_env, merge_pcaps
from gmpls.topology import load

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
CHECKED_IN = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(CHECKED_IN.read_text())


def test_checked_in_compose_file_is_current() -> None:
    fresh = render.render(load(PAPER), ROOT)
    assert CHECKED_IN.read_text() == fresh, (
        "docker-compose.yml is out of date: "
        "run `qkdnet compose render topologies/paper.yaml -o docker-compose.yml`"
    )


def test_cli_check_flag(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "compose.cli", "compose", "render", str(PAPER)]
    ok = subprocess.run([*run, "-o", str(CHECKED_IN), "--check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "docker-compose.yml"
    stale.write_text(CHECKED_IN.read_text().replace("10.1.1.5", "10.1.1.55"))
    bad = subprocess.run([*run, "-o", str(stale), "--check"], capture_output=True, text=True)
    assert bad.returncode == 1 and "out of date" in bad.stderr
    written = subprocess.run([*run, "-o", str(stale)], capture_output=True, text=True, check=True)
    assert "13 services, 6 networks" in written.stdout
    # rendered elsewhere, the topology is mounted by a path relative to the new folder
    mounts = {
        v
        for s in yaml.safe_load(stale.read_text())["services"].values()
        for v in s["volumes"]
        if v.endswith(":/etc/qkdnet/paper.yaml:ro")
    }
    (mount,) = mounts
    host_side = mount.split(":")[0]
    assert (stale.parent / host_side).resolve() == PAPER.resolve()


def test_one_service_per_host_with_its_static_addresses(doc: dict) -> None:
    topo = load(PAPER)
    assert doc["version"] == "2.4"
    assert set(doc["services"]) == {*topo.hosts, "qkdnet-guard"} and len(topo.hosts) == 13
    for name, h in topo.hosts.items():
        svc = doc["services"][name]
        assert svc["image"] == "qkdnet:latest"
        assert svc["container_name"] == f"qk-{name}" and svc["hostname"] == name
        assert svc["init"] is True
        if h.kind == "host":  # on an access domain only: its link is qkdnet's (docs/docker.md)
            assert svc["network_mode"] == "none" and "networks" not in svc, name
        else:
            want = {d: {"ipv4_address": str(a)} for d, a in h.interfaces.items()}
            assert svc["networks"] == want, name
        assert svc["volumes"][0] == "./topologies/paper.yaml:/etc/qkdnet/paper.yaml:ro"
        assert svc["sysctls"]["net.ipv4.ip_forward"] == "0"
    # every host waits for the guard, and for the host before it: Compose stops them one
    # at a time (Docker 20.10 loses endpoint counts when a network's endpoints go at once)
    names = list(topo.hosts)
    for i, name in enumerate(names):
        want = {"qkdnet-guard": {"condition": "service_healthy"}}
        if i:
            want[names[i - 1]] = {"condition": "service_started"}
        assert doc["services"][name]["depends_on"] == want, name


def test_the_guard_adds_the_rules_and_writes_the_secrets_before_any_daemon(doc: dict) -> None:
    """One service on the host's network with NET_ADMIN runs compose.guard (rules, fresh
    secrets into ./secrets, healthy when both are done); every host waits for it."""
    g = doc["services"]["qkdnet-guard"]
    assert g["image"] == "qkdnet:latest" and g["container_name"] == "qk-qkdnet-guard"
    assert g["network_mode"] == "host" and "networks" not in g
    assert g["cap_add"] == ["NET_ADMIN", "NET_RAW"] and g["init"] is True
    assert g["command"] == [
        *["python", "-m", "compose.guard", "--topology", "/etc/qkdnet/paper.yaml"],
        *["--secrets", "/run/qkdnet/secrets"],
    ]
    assert g["volumes"] == [
        "./topologies/paper.yaml:/etc/qkdnet/paper.yaml:ro",
        "./secrets:/run/qkdnet/secrets",
    ]
    assert g["healthcheck"]["test"] == ["CMD", "test", "-e", "/run/qkdnet-guard.ready"]
    assert g["labels"]["org.qkdnet.prefix"] == "qk" and "org.qkdnet.host" not in g["labels"]
    assert "depends_on" not in g


def test_nothing_secret_in_the_file() -> None:
    """No key material: the file names secret files only; it is the same whatever the
    secrets are (rendering twice gives the same text)."""
    topo = load(PAPER)
    assert render.render(topo, ROOT) == render.render(topo, ROOT)
    assert "deterministic" not in CHECKED_IN.read_text()


def test_commands_and_capabilities_by_kind(doc: dict) -> None:
    s = doc["services"]
    topo_args = ["--topology", "/etc/qkdnet/paper.yaml"]
    access = ["--access-if", "access"]  # tn1 and tn5 have an access domain
    assert s["tn1"]["command"] == [
        "python",
        "-m",
        "node_agent",
        *topo_args,
        "--host",
        "tn1",
        *access,
    ]
    assert s["tn3"]["command"] == ["python", "-m", "node_agent", *topo_args, "--host", "tn3"]
    assert s["ha"]["command"] == ["sleep", "infinity"]
    assert s["pce"]["command"] == ["python", "-m", "pce", *topo_args, "--host", "pce"]
    sync = ["--sync-key-file", "/run/qkdnet/secrets/etsiA-etsiB.sync"]
    seed = ["--seed-file", "/run/qkdnet/secrets/idqA-idqB.seed"]
    pki = ["--pki-dir", "/run/qkdnet/secrets/pki"]
    assert s["etsiB"]["command"] == [
        *["python", "-m", "qkd_proxy", *topo_args, "--host", "etsiB", *sync, *pki]
    ]
    assert s["idqA"]["command"] == [
        *["python", "-m", "idq3p_emulator", *topo_args, "--host", "idqA", *seed]
    ]
    assert s["client"]["command"] == ["sleep", "infinity"]
    for name in ("tn1", "tn2", "tn3", "tn4", "tn5", "pce"):
        assert s[name]["cap_add"] == ["NET_ADMIN", "NET_RAW"], name
    for name in ("client", "etsiA", "etsiB", "idqA", "idqB", "ha", "hb"):
        assert "cap_add" not in s[name], name


def test_each_container_mounts_only_its_own_secret_read_only(doc: dict) -> None:
    """The key material is no part of the file: an emulator or a proxy mounts its pair's
    secret file from ./secrets (what `qkdnet compose secrets` or `qkdnet up` writes),
    read-only, and a key manager or an SAE its own ETSI 014 certificate and key; no other
    container mounts any."""
    own = {
        "etsiA": "etsiA-etsiB.sync",
        "etsiB": "etsiA-etsiB.sync",
        "idqA": "idqA-idqB.seed",
        "idqB": "idqA-idqB.seed",
    }
    for name, svc in doc["services"].items():
        if name == "qkdnet-guard":
            continue
        secret = [v for v in svc["volumes"] if "secrets" in v]
        f = own.get(name)
        want = [f"./secrets/{f}:/run/qkdnet/secrets/{f}:ro"] if f else []
        if name in ("etsiA", "etsiB", "tn1", "tn5"):  # ETSI 014: the CA, its cert and key
            want += [
                f"./secrets/pki/{x}:/run/qkdnet/secrets/pki/{x}:ro"
                for x in ("ca.pem", f"{name}.pem", f"{name}.key")
            ]
        assert secret == want, name


def test_networks_are_internal_bridges_with_an_unused_gateway(doc: dict) -> None:
    topo = load(PAPER)
    used = {a for h in topo.hosts.values() for a in h.interfaces.values()}
    # no network for an access domain (Docker refuses two networks on one subnet)
    assert set(doc["networks"]) == {n for n, d in topo.domains.items() if d.access is None}
    for name, d in topo.domains.items():
        if d.access is not None:
            continue
        net = doc["networks"][name]
        assert net["driver"] == "bridge" and net["internal"] is True
        assert net["driver_opts"]["com.docker.network.bridge.name"] == f"qk_{name}"
        assert net["driver_opts"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
        (cfg,) = net["ipam"]["config"]
        assert ipaddress.IPv4Network(cfg["subnet"]) == d.subnet
        gw = ipaddress.IPv4Address(cfg["gateway"])
        assert gw in d.subnet and gw not in used
    assert doc["networks"]["ctrl"]["ipam"]["config"][0]["gateway"] == "10.1.1.254"


def test_gateway_skips_addresses_in_use(tmp_path: Path) -> None:
    text = PAPER.read_text().replace("ka: 10.11.2.2}", "ka: 10.11.2.254}")
    f = tmp_path / "paper.yaml"
    f.write_text(text)
    topo = load(f)
    assert render.gateway(topo, "ka") == ipaddress.IPv4Address("10.11.2.253")
    assert render.gateway(topo, "ctrl") == ipaddress.IPv4Address("10.1.1.254")


def test_kinds_without_a_container_role_are_refused(tmp_path: Path) -> None:
    text = PAPER.read_text().replace("  tn3:\n    kind: node", "  tn3:\n    kind: frr")
    f = tmp_path / "paper.yaml"
    f.write_text(text)
    with pytest.raises(render.RenderError, match="tn3: kind frr"):
        render.render(load(f), tmp_path)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_debian_docker_compose_accepts_it() -> None:
    r = subprocess.run(
        ["docker-compose", "-f", str(CHECKED_IN), "-p", "qkdcheck", "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=compose_env(),
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_runs_with_this_checkout_on_pythonpath(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Debian's docker-compose is a Python program with a package named ``compose``, as
    ours is: the backend runs it without our PYTHONPATH (else it imports ours and dies)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    assert "PYTHONPATH" not in compose_env()
    argv = ["docker-compose", "-f", str(CHECKED_IN), "-p", "qkdcheck", "config", "-q"]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=compose_env())
    assert r.returncode == 0, r.stderr


def _pcap(records: list[tuple[int, int, bytes]]) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    body = b"".join(struct.pack("<IIII", s, us, len(p), len(p)) + p for s, us, p in records)
    return head + body


def test_merge_pcaps_orders_by_time_and_keeps_every_record() -> None:
    a = _pcap([(10, 5, b"a1"), (12, 0, b"a2")])
    b = _pcap([(10, 1, b"b1"), (11, 999999, b"b2"), (12, 0, b"b3")])
    merged = merge_pcaps([a, b, b""])
    assert merged[:24] == a[:24]
    off, got = 24, []
    while off < len(merged):
        _, _, n, _ = struct.unpack("<IIII", merged[off : off + 16])
        got.append(merged[off + 16 : off + 16 + n])
        off += 16 + n
    assert got == [b"b1", b"a1", b"b2", b"a2", b"b3"]  # ties keep file order
    assert merge_pcaps([]) == b""
    cut = a[:-1]  # last record cut short: dropped, the rest kept
    assert merge_pcaps([cut]) == a[: 24 + 16 + 2]
    with pytest.raises(ValueError, match="not a pcap"):
        merge_pcaps([b"\0" * 24])
