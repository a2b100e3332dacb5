"""The paper topology as Docker containers (needs Docker Engine; builds the image).

The project ``qkdtest`` (prefix ``qkt``) is shared by the read-only checks of this module
and taken down by the fixture whatever happens; the tests that stop or kill a container put
it back as it was.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from pathlib import Path

import pytest

from compose.daemons import PYTHON_KINDS
from compose.docker import DockerTestbed, firewall_rules
from compose.render import bridge_name
from gmpls.dataplane.names import channel_ifname

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def _run(image: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


# --- the image --------------------------------------------------------------------------


def test_image_has_python_311_the_project_and_the_tools(image: str) -> None:
    r = _run(
        image,
        "python",
        "-c",
        "import sys, yaml, cryptography, pyroute2, docker, gmpls, daemonkit, compose, "
        "node_agent, pce, qkd_proxy, idq3p_emulator; "
        "print(sys.version_info[:2], sys.prefix)",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(3, 11) /opt/qkdnet"
    names = ("tcpdump", "ip", "nft", "ping", "telnet", "ps", "pip")
    tools = _run(image, "sh", "-c", f"for t in {' '.join(names)}; do command -v $t || exit 1; done")
    assert tools.returncode == 0, tools.stdout + tools.stderr
    assert [Path(p).name for p in tools.stdout.split()] == list(names)


def test_image_dependencies_match_the_venv(image: str) -> None:
    """The wheels were built at the venv's versions, so the image runs what the tests ran."""
    venv = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    inside = _run(image, "pip", "freeze").stdout
    pins = {line.split("==")[0].lower(): line for line in venv.splitlines() if "==" in line}
    got = [line for line in inside.splitlines() if "==" in line]
    assert got, inside
    for line in got:
        name = line.split("==")[0].lower()
        if name != "qkdnet":
            assert pins.get(name) == line, f"image has {line}, venv {pins.get(name)}"


def test_a_role_that_cannot_start_exits_with_the_cause(image: str) -> None:
    """No entry script: the command is the role, its failure the container's exit status."""
    r = _run(image, "python", "-m", "gmpls", "--host", "x")
    assert r.returncode == 1 and "No module named gmpls.__main__" in r.stderr, r.stderr


def test_a_daemon_that_cannot_run_says_why_in_one_line(image: str) -> None:
    r = _run(image, "python", "-m", "node_agent", "--topology", "/etc/qkdnet/paper.yaml",
             "--host", "nosuch")  # fmt: skip
    assert r.returncode == 2
    assert r.stderr == "node_agent: paper: no host 'nosuch'\n"
    # any other command runs as it is, with its exit status
    r = _run(image, "python", "-c", "import sys; print('ran'); sys.exit(3)")
    assert (r.returncode, r.stdout) == (3, "ran\n")


# --- the compose project ------------------------------------------------------------------


def test_all_thirteen_containers_run(paper_docker: DockerTestbed) -> None:
    st = paper_docker.status()
    assert st["status"] == "up"
    assert len(st["hosts"]) == 13
    for h, info in st["hosts"].items():
        assert info["container"] == f"qkt-{h}"
        assert info["state"] == "running", (h, info)
    assert st["hosts"]["client"]["role"] == "client"


def test_static_addresses_inside_the_containers(paper_docker: DockerTestbed) -> None:
    topo = paper_docker.topology
    for h in topo.hosts.values():
        expected = {str(a) for a in h.interfaces.values()}
        assert set(paper_docker.interfaces(h.name)) - {"127.0.0.1"} == expected, h.name
        info = paper_docker.status()["hosts"][h.name]["interfaces"]
        assert {d: i["actual"] for d, i in info.items()} == {
            d: str(a) for d, a in h.interfaces.items()
        }


def test_networks_are_internal_with_an_unused_gateway_and_no_host_address(
    paper_docker: DockerTestbed,
) -> None:
    st = paper_docker.status()
    used = {a for h in paper_docker.topology.hosts.values() for a in h.interfaces.values()}
    for d, info in st["domains"].items():
        if info.get("access"):  # no Docker network: qkdnet's bridge (test_optical_layer)
            assert info["state"] == "present" and info["network"] is None, d
            continue
        assert info["state"] == "present" and info["internal"] is True
        assert info["network"] == f"qkdtest_{d}"
        gw = ipaddress.IPv4Address(info["gateway"])
        assert gw in ipaddress.IPv4Network(info["subnet"]) and gw not in used
        addrs = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", bridge_name("qkt", d)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert addrs.stdout == "", f"the host has an address on {d}: {addrs.stdout}"


def test_optical_layer_and_access_links_in_the_containers(paper_docker: DockerTestbed) -> None:
    """qkdnet added the channels (a veth pair per TE link and lambda, te{I}l{n}, MTU 1600)
    and the access links (tn1's port access, ha's ea) into the containers."""
    topo = paper_docker.topology
    for node in ("tn1", "tn3", "tn5"):
        r = paper_docker.exec(node, ["ip", "-j", "link", "show"], capture_output=True, text=True)
        links = {x["ifname"]: x for x in json.loads(r.stdout)}
        want = {channel_ifname(i, lam) for i, lam, _, _ in topo.channels_of(node)}
        assert {n for n in links if n.startswith("te")} == want, node
        assert all(links[n]["mtu"] == 1600 and links[n]["operstate"] == "UP" for n in want)
    r = paper_docker.exec(
        "tn1", ["ip", "-j", "addr", "show", "dev", "access"], capture_output=True, text=True
    )
    (port,) = json.loads(r.stdout)  # the port exists, without an IPv4 address
    assert [a for a in port["addr_info"] if a["family"] == "inet"] == []
    assert paper_docker.interfaces("ha").get(str(topo.host("ha").interfaces["ea"])) == "ea"


def test_a_transit_cross_connect_in_a_container(paper_docker: DockerTestbed) -> None:
    """The node agent's tc rule works inside a container: tn3's lambda 8 toward tn2 is
    redirected to lambda 8 toward tn4 the way a cross-connect installs it, and removed."""
    from node_agent.xconnect import TcRules

    lines = TcRules.redirect_lines("te2l8", "te3l8")
    r = paper_docker.exec(
        "tn3",
        ["tc", "-batch", "-"],
        input="\n".join(lines[1:]) + "\n",
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    r = paper_docker.exec(
        "tn3",
        ["tc", "-j", "filter", "show", "dev", "te2l8", "ingress"],
        capture_output=True,
        text=True,
    )
    acts = [a for f in json.loads(r.stdout) for a in f.get("options", {}).get("actions", [])]
    assert [(a["kind"], a["to_dev"]) for a in acts] == [("mirred", "te3l8")]
    paper_docker.exec("tn3", ["tc", "qdisc", "del", "dev", "te2l8", "clsact"], check=True)


def test_tn1_reaches_tn5_over_the_control_lan(paper_docker: DockerTestbed) -> None:
    assert paper_docker.ping("tn1", "tn5")
    for h in ("tn2", "tn3", "tn4", "pce", "client"):
        assert paper_docker.ping("tn1", h), h


def test_qkd_side_domains(paper_docker: DockerTestbed) -> None:
    assert paper_docker.ping("etsiA", "idqA")
    assert paper_docker.ping("etsiB", "idqB")
    tb = paper_docker
    assert tb.ping("etsiA", tb.address("etsiB", "sync"))  # the sync channel
    assert tb.ping("tn1", tb.address("etsiA", "qa"))
    assert tb.ping("tn5", tb.address("etsiB", "qb"))


def test_domains_are_isolated(paper_docker: DockerTestbed) -> None:
    tb = paper_docker
    assert not tb.ping("etsiA", tb.address("tn2"))  # tn2 on ctrl
    assert not tb.ping("etsiA", tb.address("tn1", "ctrl"))  # tn1 is on qa too, but no routing
    assert not tb.ping("tn1", tb.address("idqA"))
    assert not tb.ping("tn1", tb.address("etsiB", "qb"))
    gateway = tb.status()["domains"]["ctrl"]["gateway"]
    assert not tb.ping("client", gateway)  # the gateway is a placeholder


def test_multicast_crosses_the_control_bridge(paper_docker: DockerTestbed) -> None:
    """OSPF's 224.0.0.5 from tn1 reaches tn5: the DOCKER-USER rule lets intra-bridge
    traffic past Docker's isolation rule (br_netfilter)."""
    rules = firewall_rules("qkt")
    assert any("qkt_ctrl" in r for r in rules) or not _br_netfilter()
    listen = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('224.0.0.5', 5999))\n"
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,"
        f" socket.inet_aton('224.0.0.5') + socket.inet_aton('{paper_docker.address('tn5')}'))\n"
        "s.settimeout(10)\n"
        "print('ready', flush=True)\n"
        "print(s.recvfrom(100)[0].decode(), flush=True)\n"
    )
    rx = paper_docker.popen(
        "tn5", ["python", "-u", "-c", listen], stdout=subprocess.PIPE, text=True
    )
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        send = (
            "import socket, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)\n"
            "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,"
            f" socket.inet_aton('{paper_docker.address('tn1')}'))\n"
            "for _ in range(20):\n"
            "    s.sendto(b'hello-ospf', ('224.0.0.5', 5999)); time.sleep(0.1)\n"
        )
        paper_docker.exec("tn1", ["python", "-c", send], check=True, timeout=30)
        out, _ = rx.communicate(timeout=30)
        assert out.strip() == "hello-ospf"
    finally:
        rx.kill()
        rx.wait()


def _br_netfilter() -> bool:
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False


def test_captures_show_each_packet_once(paper_docker: DockerTestbed, tmp_path: Path) -> None:
    paper_docker.capture_start(["ctrl", "qa"], tmp_path)
    try:
        assert paper_docker.ping("tn2", "tn4", count=3)
        assert paper_docker.ping("tn1", "etsiA")
    finally:
        caps = paper_docker.capture_stop()
    assert set(caps) == {"ctrl", "qa"}
    tn2, tn4 = paper_docker.address("tn2"), paper_docker.address("tn4")
    tn1_qa, etsia = paper_docker.address("tn1", "qa"), paper_docker.address("etsiA", "qa")
    ctrl = _icmp(caps["ctrl"])
    assert ctrl.count((tn2, tn4, "echo request")) == 3
    assert ctrl.count((tn4, tn2, "echo reply")) == 3
    assert (tn1_qa, etsia, "echo request") not in ctrl
    assert _icmp(caps["qa"]).count((tn1_qa, etsia, "echo request")) == 1


def _icmp(pcap: Path) -> list[tuple[str, str, str]]:
    r = subprocess.run(["tcpdump", "-nr", str(pcap), "icmp"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        # "07:06:59.370474 IP 10.1.1.2 > 10.1.1.4: ICMP echo request, id 1, seq 1, length 64"
        words = line.split()
        kind = "echo request" if "request," in words else "echo reply"
        out.append((words[2], words[4].rstrip(":"), kind))
    return out


def test_cli_connects_from_the_client_container(paper_docker: DockerTestbed) -> None:
    """The telnet path: a TCP server in tn1 on its CLI port, the client container connects
    to tn1's control address (the node agent's CLI replaces this server once it exists)."""
    server = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{paper_docker.address('tn1')}', 2323)); s.listen(1); print('ready', flush=True)\n"
        "c, peer = s.accept(); c.sendall(b'tn1> ')\n"
        "for line in c.makefile('rb'):\n"  # 'terminal status' first: an older CLI's answer
        "    cmd = line.decode().strip()\n"
        "    if cmd == 'exit': break\n"
        "    out = '% unknown command' if cmd == 'terminal status' else f'{cmd} from {peer[0]}'\n"
        "    c.sendall(f'{out}\\r\\ntn1> '.encode())\n"
        "c.close()\n"
    )
    srv = paper_docker.popen(
        "tn1", ["python", "-u", "-c", server], stdout=subprocess.PIPE, text=True
    )
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        out = paper_docker.cli("tn1", "show version", via="client", timeout=10, port=2323)
        assert out == f"show version from {paper_docker.address('client')}"
    finally:
        srv.kill()
        srv.wait()


def test_kill_then_start_keeps_the_addresses(paper_docker: DockerTestbed) -> None:
    paper_docker.kill("tn3")
    st = paper_docker.status()["hosts"]["tn3"]
    assert st["state"] == "exited" and st["exit_code"] == 137
    assert not paper_docker.ping("tn2", "tn3")
    paper_docker.start("tn3")
    assert paper_docker.status()["hosts"]["tn3"]["state"] == "running"
    assert paper_docker.ping("tn2", "tn3")
    assert paper_docker.stop("tn4")  # it was running
    assert paper_docker.status()["hosts"]["tn4"]["state"] == "exited"
    paper_docker.start("tn4")
    assert paper_docker.interfaces("tn4").get(paper_docker.address("tn4")) == paper_docker.ifname(
        "tn4", "ctrl"
    )


def test_attach_finds_the_running_testbed(paper_docker: DockerTestbed) -> None:
    again = DockerTestbed.attach("qkt")
    assert again.project == "qkdtest"
    assert again.compose_file == paper_docker.compose_file
    assert again.topology.path == paper_docker.topology.path
    assert again.ping("tn1", "tn5")


def test_second_up_is_refused_while_the_prefix_is_in_use(paper_docker: DockerTestbed) -> None:
    from compose.docker import DockerError

    other = DockerTestbed(
        paper_docker.topology, project="qkdtest2", compose_file=paper_docker.compose_file
    )
    with pytest.raises(DockerError, match="is in use"):
        other.up()
    assert paper_docker.status()["status"] == "up"  # untouched


def test_daemons_run_and_ospf_reaches_full_in_containers(paper_docker: DockerTestbed) -> None:
    """With the real daemons in the image: every role runs its daemon and
    tn1 reaches FULL with a neighbour over the control bridge — OSPF's multicast and unicast
    both cross Docker's bridge. The deadline only bounds the wait; it is no speed claim."""
    st = paper_docker.status()["hosts"]
    for h, info in st.items():
        assert info["state"] == "running", (h, info)
        kind = info["kind"]
        want = kind if kind in ("client", "host") else f"python -m {PYTHON_KINDS[kind]}"
        assert info["role"] == want, (h, info["role"])
    deadline = time.monotonic() + 60
    full: set[str] = set()
    while not full:
        for line in paper_docker.logs("tn1").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ospf_neighbor" and ev.get("new") == "FULL":
                full.add(str(ev.get("peer")))
        if not full:
            assert time.monotonic() < deadline, paper_docker.logs("tn1")[-2000:]
            time.sleep(1)
    routers = {str(h.router_id) for h in paper_docker.topology.of_kind("node", "pce")}
    assert full <= routers - {paper_docker.address("tn1")}
