"""``qkdnet demo TOPOLOGY``: the paper's workflow end to end (DESIGN §1, Fig. 6).

1. bring the topology up (network namespaces, or ``--backend docker``) with captures
   running before any daemon starts (tcpdump on each domain's bridge in the root
   namespace; with ``--capture DIR`` one pcap per domain is kept there);
2. wait, with progress, until OSPF has told the PCE about every node (``show ted json``:
   all GMPLS nodes, the QE-capable ones flagged) and the head's PCEP session is up;
3. the **client** host telnets to the head (tn1) and asks for the QE service with the
   paper's parameters: ``qe-service create dst 10.1.1.5 key-length 32 layer 2
   algorithm 10 refresh time 1000``, and waits until it is up;
4. prints the message ladder of the control LAN as tshark reads it from the capture
   (Fig. 6), the setup time from the PCReq to the last Resv, the path, and the key
   fingerprints at both ends (SHA-256, 16 hex digits: the keys never leave the nodes);
5. deletes the service and takes the testbed down (``--keep``: neither; the service
   stays up, refreshing its key every second, for ``qkdnet cli`` and Wireshark).

``--json`` prints one object instead: ``{"setup_ms", "path", "ladder": [{"t_ms", "src",
"dst", "proto", "msg"}], "fingerprints": {"tn1", "tn5"}, "captures": {DOMAIN: FILE}}``
(progress goes to stderr then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compose import ladder as L
from compose.cliclient import CliError
from gmpls.topology import Topology, load

#: the paper's QE service (Fig. 8): key length 32, layer 2, AES-256-GCM (10), refresh 1000 ms
PAPER_PARAMS = "key-length 32 layer 2 algorithm 10 refresh time 1000"

Progress = Callable[[str], None]


class DemoError(RuntimeError):
    pass


class Bed(Protocol):
    """What the demo needs from a testbed backend (compose.netns.Testbed fits, and the
    Docker one through :class:`_DockerBed`)."""

    topology: Topology
    prefix: str

    def cli(
        self, host: str, command: str, via: str | None = None, timeout: float = 10.0
    ) -> str: ...


@dataclass
class Roles:
    """Who plays which part in this topology."""

    head: str
    tail: str
    client: str | None
    pce: str
    nodes: list[str]
    qe_nodes: list[str]

    @classmethod
    def of(cls, topo: Topology) -> Roles:
        nodes = [h.name for h in topo.of_kind("node")]
        qe = [h.name for h in topo.of_kind("node") if h.qe.capable]
        pces = [h.name for h in topo.of_kind("pce")]
        clients = [h.name for h in topo.of_kind("client")]
        if len(qe) < 2:
            raise DemoError(f"{topo.name}: the demo needs two QE-capable nodes, found {qe}")
        if not pces:
            raise DemoError(f"{topo.name}: the demo needs a PCE host")
        return cls(qe[0], qe[-1], clients[0] if clients else None, pces[0], nodes, qe)


@dataclass
class Result:
    setup_ms: float | None
    path: list[str]
    ladder: list[L.Rung]
    fingerprints: dict[str, str | None]
    captures: dict[str, str]
    service: dict[str, Any] = field(default_factory=dict)
    malformed: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "setup_ms": self.setup_ms,
            "path": self.path,
            "ladder": [r.as_dict() for r in self.ladder],
            "fingerprints": self.fingerprints,
            "captures": self.captures,
            "service": self.service,
            "malformed_frames": self.malformed,
        }


# --- captures on the root-namespace bridges (netns backend) ------------------------------


class BridgeCapture:
    """tcpdump on each domain's bridge in the root namespace: every frame crossing the
    domain once. ``--immediate-mode -U``: each packet reaches the file as it is seen."""

    def __init__(self, bridges: dict[str, str], out_dir: Path, buffer_kib: int = 32768) -> None:
        self.bridges = bridges
        self.out_dir = out_dir
        self.buffer_kib = buffer_kib
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, Path] = {}
        #: frames the kernel dropped per domain (tcpdump's count when it stopped)
        self.dropped: dict[str, int] = {}

    def start(self, timeout: float = 10.0) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for domain, br in self.bridges.items():
            path = self.out_dir / f"{domain}.pcap"
            err = self.out_dir / f".{domain}.tcpdump.err"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            argv = ["tcpdump", "-i", br, "-n", "-s", "0", "-U", "--immediate-mode", "-Z", "root"]
            argv += ["-B", str(self.buffer_kib)]  # a loaded machine must not drop frames
            argv += ["-w", str(path)]
            self.procs[domain] = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=open(err, "wb"),  # noqa: SIM115 (tcpdump keeps it)
                stdin=subprocess.DEVNULL,
            )
            self.files[domain] = path
        deadline = time.monotonic() + timeout
        for domain, proc in self.procs.items():
            err = self.out_dir / f".{domain}.tcpdump.err"
            while b"listening on" not in err.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DemoError(
                        f"tcpdump on {self.bridges[domain]} did not start: "
                        f"{err.read_text(errors='replace').strip()}"
                    )
                time.sleep(0.02)

    def stop(self) -> dict[str, Path]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for domain in self.procs:
            err = self.out_dir / f".{domain}.tcpdump.err"
            with contextlib.suppress(FileNotFoundError):
                m = re.search(r"(\d+) packets? dropped by kernel", err.read_text(errors="replace"))
                self.dropped[domain] = int(m.group(1)) if m else 0
                err.unlink()
        self.procs.clear()
        return dict(self.files)


# --- the steps -----------------------------------------------------------------------------


def wait_for_control_plane(
    bed: Bed, roles: Roles, progress: Progress, timeout: float = 90.0
) -> dict[str, Any]:
    """Until the PCE's TED has every node (QE-capable ones flagged) and the head's PCEP
    session is up; progress on every change. Returns the TED."""
    topo = bed.topology
    want = {str(topo.host(n).router_id) for n in roles.nodes}
    want_qe = {str(topo.host(n).router_id) for n in roles.qe_nodes}
    deadline = time.monotonic() + timeout
    last = ""
    ted: dict[str, Any] = {}
    while True:
        note = ""
        try:
            ted = json.loads(bed.cli(roles.pce, "show ted json", via=roles.client, timeout=5))
            nodes = {n["router_id"]: n for n in ted.get("nodes", [])}
            have = want & set(nodes)
            qe_ok = {r for r in want_qe if nodes.get(r, {}).get("qe_capable")}
            note = (
                f"PCE TED: {len(have)}/{len(want)} nodes, QE capable: "
                f"{', '.join(sorted(qe_ok)) or 'none yet'}"
            )
            if have == want and qe_ok == want_qe:
                svc = json.loads(bed.cli(roles.head, "show qe-service json", via=roles.client))
                note += f"; {roles.head} PCEP session {svc.get('pcep')}"
                if svc.get("pcep") == "up":
                    progress(f"[demo] {note}: ready")
                    return ted
        except (CliError, OSError, ValueError) as e:
            note = f"waiting for the daemons' CLIs ({e})"
        if note != last:
            progress(f"[demo] {note}")
            last = note
        if time.monotonic() > deadline:
            raise DemoError(f"the control plane did not converge within {timeout:g} s: {note}")
        time.sleep(0.5)


def create_service(bed: Bed, roles: Roles, progress: Progress, timeout: float = 30.0) -> dict:
    """The client telnets to the head and creates the paper's QE service; waits for it."""
    dst = bed.topology.host(roles.tail).router_id
    cmd = f"qe-service create dst {dst} {PAPER_PARAMS}"
    progress(f"[demo] {roles.client or roles.head} -> telnet {roles.head}: {cmd}")
    out = json.loads(bed.cli(roles.head, f"{cmd} wait json", via=roles.client, timeout=timeout + 5))
    if "error" in out:
        raise DemoError(f"{roles.head}: {out['error']}")
    svc: dict[str, Any] = out["services"][0]
    if svc["state"] != "up":
        raise DemoError(
            f"{roles.head}: service {svc['id']} is {svc['state']}: {svc.get('error')} "
            f"(code {svc.get('code')})"
        )
    progress(f"[demo] service {svc['id']} up ({svc['setup_ms']} ms at {roles.head})")
    return svc


def tail_service(bed: Bed, roles: Roles, head_svc: dict) -> dict | None:
    out = json.loads(bed.cli(roles.tail, "show qe-service json", via=roles.client))
    for s in out.get("services", []):
        if s["key_handle_prefix"] == head_svc["key_handle_prefix"] and s["role"] == "tail":
            return dict(s)
    return None


def fingerprint_at(svc: dict, index: int | None) -> str | None:
    """The fingerprint of key ``index`` at an end (from its recent keys): the two ends
    change keys a few ms apart at each refresh, so keys are compared index by index."""
    for k in svc.get("keys", []):
        if k["index"] == index:
            return str(k["fingerprint"])
    return svc.get("fingerprint") if svc.get("key_index") == index else None


def read_ladder(pcap: Path, roles: Roles, topo: Topology) -> tuple[list[L.Rung], list[int]]:
    decoded = L.decode(pcap)
    tail_addr = str(topo.control_address(roles.tail))
    return L.ladder(pcap, ri_from=tail_addr, decoded=decoded), decoded.malformed


def render(result: Result, roles: Roles) -> str:
    lines = ["", "Message ladder of the control LAN (tshark, Fig. 6):"]
    lines.append(L.format_ladder(result.ladder))
    lines.append("")
    if result.setup_ms is not None:
        lines.append(f"setup time (PCReq -> last Resv): {result.setup_ms:.3f} ms")
    lines.append(f"path: {' -> '.join(result.path)}")
    s = result.service
    if s:
        lines.append(
            f"QE service {s.get('id')}: key_handle {s.get('key_handle_prefix')}..., "
            f"key index {s.get('key_index')}, key length {s.get('key_length')} B, layer "
            f"{s.get('layer')}, algorithm {s.get('algorithm')}, refresh "
            f"{s.get('refresh', {}).get('type')} {s.get('refresh', {}).get('value')}"
        )
    for node, fp in result.fingerprints.items():
        lines.append(f"key fingerprint at {node}: {fp}")
    fps = list(result.fingerprints.values())
    same = len(set(fps)) == 1 and fps[0] is not None
    lines.append("keys match at both ends" if same else "KEYS DIFFER between the ends")
    if result.malformed:
        lines.append(f"tshark found malformed frames: {result.malformed}")
    if result.captures:
        lines.append("captures: " + ", ".join(f"{d}={p}" for d, p in result.captures.items()))
    return "\n".join(lines)


def run_demo(
    bed: Bed,
    roles: Roles,
    progress: Progress,
    ctrl_pcap: Callable[[], Path],
    *,
    timeout: float = 90.0,
) -> Result:
    """Steps 2-4 on a testbed that is up and capturing. ``ctrl_pcap()`` gives the control
    LAN capture to read (flushed up to now)."""
    wait_for_control_plane(bed, roles, progress, timeout)
    svc = create_service(bed, roles, progress)
    tail = tail_service(bed, roles, svc)
    time.sleep(0.3)  # the last frames reach the capture file
    rungs, malformed = read_ladder(ctrl_pcap(), roles, bed.topology)
    head_addr = str(bed.topology.control_address(roles.head))
    return Result(
        setup_ms=L.setup_ms(rungs, head_addr),
        path=list(svc["path"]),
        ladder=rungs,
        fingerprints={
            roles.head: svc["fingerprint"],
            roles.tail: fingerprint_at(tail, svc["key_index"]) if tail else None,
        },
        captures={},
        service=svc,
        malformed=malformed,
    )


def delete_service(bed: Bed, roles: Roles, svc: dict, progress: Progress) -> None:
    out = json.loads(bed.cli(roles.head, f"qe-service delete {svc['id']} json", via=roles.client))
    state = out["services"][0]["state"] if "services" in out else out.get("error")
    progress(
        f"[demo] {roles.client} -> telnet {roles.head}: qe-service delete {svc['id']}: {state}"
    )


# --- backends ------------------------------------------------------------------------------


def _demo_netns(args: argparse.Namespace, progress: Progress) -> tuple[Result, Roles]:
    from compose.netns import Testbed, TestbedError, leftovers

    if os.geteuid() != 0:
        raise TestbedError("needs root (network namespaces, bridges, tcpdump)")
    tb = Testbed(args.topology_file, args.run_dir, prefix=args.prefix, progress=progress)
    roles = Roles.of(tb.topology)
    if leftovers(tb.prefix):
        raise TestbedError(
            f"a testbed with prefix {tb.prefix!r} is already up; take it down first "
            f"(qkdnet down --prefix {tb.prefix}) or give the demo another --prefix"
        )
    keep_caps = args.capture is not None
    cap_dir = Path(args.capture).resolve() if keep_caps else tb.run_dir / "capture"
    domains = list(tb.topology.domains) if keep_caps else [tb.topology.control_domain]
    tb.up(start_daemons=False)
    cap = BridgeCapture({d: tb.bridge(d) for d in domains}, cap_dir)
    result: Result | None = None
    try:
        cap.start()
        progress(f"[demo] capturing {', '.join(domains)} into {cap_dir}")
        tb.start_all()
        ctrl = cap.files[tb.topology.control_domain]
        result = run_demo(tb, roles, progress, lambda: ctrl, timeout=args.timeout)
        if not args.keep:
            delete_service(tb, roles, result.service, progress)
            time.sleep(0.3)
    finally:
        files = cap.stop()
        lost = {d: n for d, n in cap.dropped.items() if n}
        if lost:
            progress(f"[demo] tcpdump: frames dropped by the kernel: {lost}")
        if result is not None:
            result.captures = {d: str(p) for d, p in files.items()} if keep_caps else {}
        if not args.keep:
            tb.down()
        else:
            progress(
                f"[demo] testbed {tb.prefix} and service {result.service.get('id') if result else '?'}"
                f" kept up: qkdnet cli tn1 'show qe-service' --prefix {tb.prefix}; "
                f"qkdnet down --prefix {tb.prefix}"
            )
    assert result is not None
    return result, roles


def _demo_docker(args: argparse.Namespace, progress: Progress) -> tuple[Result, Roles]:
    from compose.docker import DockerTestbed

    tb = DockerTestbed(
        args.topology_file, prefix=args.prefix, run_dir=args.run_dir, progress=progress
    )
    roles = Roles.of(tb.topology)
    keep_caps = args.capture is not None
    cap_dir = Path(args.capture).resolve() if keep_caps else Path(tempfile.mkdtemp("-qkdcap"))
    domains = list(tb.topology.domains) if keep_caps else [tb.topology.control_domain]
    tb.up()
    result: Result | None = None
    capturing = False
    try:
        # the containers start their daemons at once: the first OSPF packets may be missed
        tb.capture_start(domains)
        capturing = True
        files: dict[str, Path] = {}

        def ctrl() -> Path:
            nonlocal capturing
            files.update(tb.capture_stop(cap_dir))
            capturing = False
            return files[tb.topology.control_domain]

        result = run_demo(tb, roles, progress, ctrl, timeout=args.timeout)
        result.captures = {d: str(p) for d, p in files.items()} if keep_caps else {}
        if not args.keep:
            delete_service(tb, roles, result.service, progress)
    finally:
        if capturing:
            with contextlib.suppress(Exception):
                tb.capture_stop(cap_dir)
        if not args.keep:
            tb.down()
        else:
            progress(f"[demo] project {tb.project} kept up (qkdnet down --backend docker)")
    assert result is not None
    return result, roles


def cmd_demo(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout

    def progress(line: str) -> None:
        print(line, file=out, flush=True)

    load(args.topology_file)  # a bad file is reported before anything is built
    try:
        if args.backend == "docker":
            result, roles = _demo_docker(args, progress)
        else:
            result, roles = _demo_netns(args, progress)
    except DemoError as e:
        print(f"qkdnet demo: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(render(result, roles), flush=True)
    fps = list(result.fingerprints.values())
    return 0 if fps and None not in fps and len(set(fps)) == 1 else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``qkdnet demo`` to the ``qkdnet`` command's subparsers (compose/cli.py)."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="the paper's workflow end to end: QE service tn1 -> tn5, ladder, fingerprints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("topology_file", metavar="TOPOLOGY")
    s.add_argument("--backend", choices=("netns", "docker"), default="netns")
    s.add_argument("--capture", metavar="DIR", help="keep one pcap per domain in DIR")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--keep", action="store_true", help="leave the testbed up afterwards")
    s.add_argument("-p", "--prefix", help="override the topology's name prefix")
    s.add_argument("--run-dir", help="logs and state (default ./run/NAME)")
    s.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for OSPF and the PCE"
    )
    s.set_defaults(fn=cmd_demo)
    return s
