"""Mixed lab for the interop tests and the convergence benchmark: our node agents, FRR
(zebra + ospfd) and BIRD 2 on one LAN in ``oa`` namespaces (no dependency on compose/)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from oa_net import OaLan, node_agent_argv

FRR = Path("/usr/lib/frr")
RUN = Path("/run/oa-ospf")


#: the QKD side the loader requires of QE capable nodes (tn1 served by etsiA, tn2 by etsiB);
#: these hosts get no namespace in the OSPF labs
QKD_DOMAINS = {
    "qa": "10.2.1.0/24",
    "qb": "10.2.2.0/24",
    "ka": "10.11.2.0/24",
    "kb": "10.11.3.0/24",
    "sync": "10.11.1.0/24",
}
QKD_HOSTS = [
    "  etsiA: {kind: qkd-proxy, interfaces: {qa: 10.2.1.11, ka: 10.11.2.1, sync: 10.11.1.11},"
    " serves: tn1, idq: idqA, peer: etsiB}",
    "  etsiB: {kind: qkd-proxy, interfaces: {qb: 10.2.2.11, kb: 10.11.3.1, sync: 10.11.1.15},"
    " serves: tn2, idq: idqB, peer: etsiA}",
    "  idqA: {kind: idq3p, interfaces: {ka: 10.11.2.2}, pair: idqB}",
    "  idqB: {kind: idq3p, interfaces: {kb: 10.11.3.2}, pair: idqA}",
]


def topology_yaml(
    hosts: dict[str, dict[str, Any]],
    te_links: list[dict[str, Any]],
    extra_domains: dict[str, str],
    hello: int = 1,
    dead: int = 4,
) -> str:
    lines = [
        "name: oainterop",
        "prefix: oa",
        "domains:",
        "  ctrl: {subnet: 10.1.1.0/24}",
        *[f"  {d}: {{subnet: {s}}}" for d, s in extra_domains.items()],
        "ospf:",
        "  area: 0.0.0.0",
        f"  hello_interval: {hello}",
        f"  dead_interval: {dead}",
        "  retransmit_interval: 2",
        "hosts:",
    ]
    for name, h in hosts.items():
        ifs = ", ".join(f"{d}: {a}" for d, a in h["interfaces"].items())
        parts = [f"kind: {h['kind']}", f"router_id: {h['router_id']}", f"interfaces: {{{ifs}}}"]
        if h.get("qe"):
            parts.append(f"qe: {{capable: true, proxy: {h['qe']}}}")
        if "priority" in h:
            parts.append(f"ospf_priority: {h['priority']}")
        if h["kind"] == "node":
            parts.append("cli_port: 23")
        lines.append(f"  {name}: {{{', '.join(parts)}}}")
    if any(h.get("qe") for h in hosts.values()):
        lines += QKD_HOSTS
    if te_links:
        lines.append("te_links:")
        for t in te_links:
            lines.append("  - {" + ", ".join(f"{k}: {v}" for k, v in t.items()) + "}")
    return "\n".join(lines) + "\n"


def frr_conf(
    name: str, rid: str, prio: int, hello: int, dead: int, stubs: list[str]
) -> tuple[str, str]:
    zebra = "\n".join(
        [
            f"hostname {name}",
            "interface ctrl",
            " link-params",
            "  enable",
            "  metric 20",
            "  max-bw 1.25e+09",
            "  max-rsv-bw 1.25e+09",
            "  unrsv-bw 0 1.25e+09",
            "  admin-grp 0x1",
            " exit-link-params",
            "!",
            "",
        ]
    )
    ospfd = "\n".join(
        [
            f"hostname {name}",
            "interface ctrl",
            " ip ospf network broadcast",
            f" ip ospf hello-interval {hello}",
            f" ip ospf dead-interval {dead}",
            " ip ospf retransmit-interval 2",
            f" ip ospf priority {prio}",
            "!",
            "router ospf",
            f" ospf router-id {rid}",
            " network 10.1.1.0/24 area 0.0.0.0",
            *[f" network {s} area 0.0.0.0" for s in stubs],
            *[" passive-interface st0" for _ in stubs[:1]],
            " capability opaque",
            " mpls-te on",
            f" mpls-te router-address {rid}",
            " router-info area",
            "!",
            "",
        ]
    )
    return zebra, ospfd


def bird_conf(rid: str, prio: int, hello: int, dead: int, stub: bool, log: Path) -> str:
    stub_if = '    interface "st0" { stub yes; };\n' if stub else ""
    return f"""router id {rid};
log "{log}" all;
protocol device {{ scan time 1; }}
protocol ospf v2 ospf1 {{
  ipv4 {{ import all; export none; }};
  area 0.0.0.0 {{
    interface "ctrl" {{
      type broadcast;
      hello {hello};
      dead {dead};
      retransmit 2;
      priority {prio};
    }};
{stub_if}  }};
}}
"""


class MixedLab:
    """Hosts: ours (kind node), FRR (kind frr), BIRD (kind bird), all on ctrl."""

    def __init__(
        self,
        lan: OaLan,
        tmp: Path,
        hosts: dict[str, dict[str, Any]],
        te_links: list[dict[str, Any]] | None = None,
        extra_domains: dict[str, str] | None = None,
        hello: int = 1,
        dead: int = 4,
    ) -> None:
        self.lan = lan
        self.tmp = tmp
        self.hosts = hosts
        self.hello, self.dead = hello, dead
        self.topo = tmp / "topology.yaml"
        self.topo.write_text(topology_yaml(hosts, te_links or [], extra_domains or {}, hello, dead))
        self.frr_dirs: dict[str, Path] = {}

    def build(self) -> None:
        for name, h in self.hosts.items():
            self.lan.add_host(name, f"{h['interfaces']['ctrl']}/24")
            for stub in h.get("stubs", []):
                ns = self.lan.ns(name)
                # a stub network on a veth pair inside the namespace (no dummy module here)
                ip = ["ip", "-n", ns]
                subprocess.run(
                    [*ip, "link", "add", "st0", "type", "veth", "peer", "name", "st0p"], check=True
                )
                subprocess.run([*ip, "addr", "add", stub, "dev", "st0"], check=True)
                subprocess.run([*ip, "link", "set", "st0p", "up"], check=True)
                subprocess.run([*ip, "link", "set", "st0", "up"], check=True)

    def start(self, name: str) -> None:
        h = self.hosts[name]
        rid = h["router_id"]
        prio = h.get("priority", 1)
        if h["kind"] == "node":
            self.lan.spawn(
                name, node_agent_argv(self.topo, name, self.tmp / f"{name}.log"), "node_agent"
            )
        elif h["kind"] == "frr":
            d = RUN / f"{self.lan.tag}-{name}"
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            stubs = [str(_net(s)) for s in h.get("stubs", [])]
            zebra, ospfd = frr_conf(name, rid, prio, self.hello, self.dead, stubs)
            (d / "zebra.conf").write_text(zebra)
            (d / "ospfd.conf").write_text(ospfd)
            shutil.chown(d, "frr", "frr")
            for f in d.iterdir():
                shutil.chown(f, "frr", "frr")
            self.frr_dirs[name] = d
            common = [
                "-z",
                str(d / "zserv.api"),
                "--vty_socket",
                str(d),
                "-A",
                "127.0.0.1",
                "-P",
                "0",
            ]
            self.lan.spawn(
                name,
                [
                    str(FRR / "zebra"),
                    "-f",
                    str(d / "zebra.conf"),
                    "-i",
                    str(d / "zebra.pid"),
                    *common,
                    "--log",
                    f"file:{d / 'zebra.log'}",
                ],
                "zebra",
            )
            deadline = time.monotonic() + 10
            while not (d / "zserv.api").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.lan.spawn(
                name,
                [
                    str(FRR / "ospfd"),
                    "-f",
                    str(d / "ospfd.conf"),
                    "-i",
                    str(d / "ospfd.pid"),
                    *common,
                    "--log",
                    f"file:{d / 'ospfd.log'}",
                ],
                "ospfd",
            )
        elif h["kind"] == "bird":
            d = self.tmp / f"bird-{name}"
            d.mkdir(exist_ok=True)
            (d / "bird.conf").write_text(
                bird_conf(rid, prio, self.hello, self.dead, bool(h.get("stubs")), d / "bird.log")
            )
            self.lan.spawn(
                name,
                [
                    "bird",
                    "-f",
                    "-c",
                    str(d / "bird.conf"),
                    "-s",
                    str(d / "bird.ctl"),
                    "-P",
                    str(d / "bird.pid"),
                ],
                "bird",
            )

    def start_all(self) -> None:
        for name in self.hosts:
            self.start(name)

    def vtysh(self, name: str, cmd: str) -> str:
        return subprocess.run(
            ["vtysh", "--vty_socket", str(self.frr_dirs[name]), "-c", cmd],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout

    def vtysh_json(self, name: str, cmd: str) -> Any:
        return json.loads(self.vtysh(name, cmd + " json"))

    def birdc(self, name: str, *cmd: str) -> str:
        d = self.tmp / f"bird-{name}"
        return subprocess.run(
            ["birdc", "-s", str(d / "bird.ctl"), *cmd],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout

    def ours_json(self, name: str, cmd: str) -> Any:
        return json.loads(self.lan.cli(name, cmd + " json"))

    def close(self) -> None:
        for d in self.frr_dirs.values():
            shutil.rmtree(d, ignore_errors=True)


def _net(cidr: str) -> Any:
    from ipaddress import IPv4Interface

    return IPv4Interface(cidr).network
