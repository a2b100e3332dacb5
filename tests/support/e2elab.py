"""The paper testbed in namespaces for the end-to-end tests (tests/e2e/conftest.py makes
it a module fixture).

:func:`paper_lab` brings a topology up under a prefix of ours (``e2``, ``e2w``...: never
``qk``), starts tcpdump on every domain's bridge *before* the daemons (so the captures
hold everything from the first OSPF Hello on), starts the daemons, and waits like
``qkdnet demo`` does until the PCE's TED lists every node with tn1/tn5 QE capable and
tn1's PCEP session is up. Captures stop and everything is taken down afterwards, also
when a test failed.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"
#: Fig. 6 on the paper's control LAN: (source, destination, message) of the QE service's
#: set-up
LADDER = [
    ("10.1.1.1", "10.1.1.200", "PCReq"),
    ("10.1.1.200", "10.1.1.1", "PCRep"),
    ("10.1.1.1", "10.1.1.2", "Path"),
    ("10.1.1.2", "10.1.1.3", "Path"),
    ("10.1.1.3", "10.1.1.4", "Path"),
    ("10.1.1.4", "10.1.1.5", "Path"),
    ("10.1.1.5", "10.1.1.4", "Resv"),
    ("10.1.1.4", "10.1.1.3", "Resv"),
    ("10.1.1.3", "10.1.1.2", "Resv"),
    ("10.1.1.2", "10.1.1.1", "Resv"),
]


@dataclass
class Lab:
    tb: Any  # compose.netns.NetnsTestbed, capturing every domain
    roles: Any  # compose.demo.Roles
    run_dir: Path
    state: dict[str, Any]

    def cli(self, host: str, command: str, timeout: float = 30.0) -> str:
        """One command on a node's telnet CLI, from the client host (as a user would)."""
        return str(self.tb.cli(host, command, via="client", timeout=timeout))

    def cli_json(self, host: str, command: str, timeout: float = 30.0) -> Any:
        out = self.cli(host, f"{command} json", timeout)
        data = json.loads(out)
        if isinstance(data, dict) and set(data) == {"error"}:
            raise AssertionError(f"{host} {command!r}: {data['error']}")
        return data

    def pcap(self, domain: str) -> Path:
        return Path(self.tb.capture_file(domain))

    def etsi(self, node: str, *args: str) -> dict[str, Any]:
        """``python -m qkd_proxy.client`` inside ``node``'s namespace toward its proxy."""
        topo = self.tb.topology
        proxy = topo.host(node).qe.proxy
        dom = topo.shared_domain(node, proxy)
        addr = str(topo.host(proxy).interfaces[dom])
        r = self.tb.exec(
            node,
            [sys.executable, "-m", "qkd_proxy.client", "--proxy", addr, "--deadline", "3", *args],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return dict(json.loads(r.stdout))


def private_index(run_dir: Path) -> str | None:
    """Record our testbeds in an index of our own (``$QKDNET_INDEX``), so that a
    ``qkdnet down`` typed elsewhere on the machine (which takes down *the* testbed when
    only one is up) cannot take ours away mid-test. Returns the previous value."""
    old = os.environ.get("QKDNET_INDEX")
    index = run_dir / "index"
    index.mkdir(parents=True, exist_ok=True)
    os.environ["QKDNET_INDEX"] = str(index)
    return old


def restore_index(old: str | None) -> None:
    if old is None:
        os.environ.pop("QKDNET_INDEX", None)
    else:
        os.environ["QKDNET_INDEX"] = old


def start_lab(topology: Path, prefix: str, run_dir: Path, *, pack: int | None = None) -> Lab:
    from compose.backend import Capture
    from compose.demo import Roles, wait_for_control_plane
    from compose.netns import NetnsTestbed, teardown

    teardown(prefix, progress=lambda _line: None)  # leftovers of a crashed earlier run
    tb = NetnsTestbed(topology, run_dir, prefix=prefix, progress=lambda _line: None, pack=pack)
    roles = Roles.of(tb.topology)
    tb.up(capture=Capture(list(tb.topology.domains), run_dir / "capture"))
    lab = Lab(tb, roles, run_dir, {})
    try:
        wait_for_control_plane(tb, roles, lambda _line: None, timeout=90)
    except BaseException:
        stop_lab(lab)
        raise
    return lab


def stop_lab(lab: Lab) -> None:
    lab.tb.down()


def wide_topology(out_dir: Path, lambdas: int, src: Path = PAPER) -> Path:
    """The paper topology with ``lambdas`` wavelengths (RFC 6205 n = 1..) on every TE
    link: one LSP holds one lambda per link, and the paper's 8 would cap concurrent
    services between tn1 and tn5 at 8."""
    import yaml

    doc = yaml.safe_load(src.read_text())
    for link in doc["te_links"]:
        link["lambdas"] = list(range(1, lambdas + 1))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"paper-{lambdas}-lambdas.yaml"
    path.write_text(
        f"# {src.name} with {lambdas} lambdas per TE link\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    return path


def same_keys(head: dict[str, Any], tail: dict[str, Any]) -> bool:
    """Both ends hold the same key at every index both list, index 0 among them (the ends
    change keys a few ms apart at each refresh: current fingerprints may differ then)."""
    h = {k["index"]: k["fingerprint"] for k in head["keys"]}
    t = {k["index"]: k["fingerprint"] for k in tail["keys"]}
    common = set(h) & set(t)
    return 0 in common and all(h[i] == t[i] for i in common)
