"""``qkdnet demo TOPOLOGY``: the paper's workflow end to end (docs/design.md#the-workflow,
the paper's Fig. 6), on any backend (:class:`compose.backend.Testbed`).

1. bring the topology up (network namespaces, or ``--backend docker``) with captures
   running from as early as the backend can (the namespace backend: before any daemon
   starts; with ``--capture DIR`` one pcap per domain is kept there);
2. wait, with progress, until OSPF has told the PCE about every node (``show ted json``:
   all GMPLS nodes, the QE-capable ones flagged) and the head's PCEP session is up;
3. the **client** host telnets to the head (tn1) and asks for the QE service with the
   paper's parameters: ``qe-service create dst 10.1.1.5 key-length 32 layer 2
   algorithm 10 refresh time 1000``, and waits until it is up;
4. prints the message ladder of the control LAN as tshark reads it from the capture
   (Fig. 6), the setup time from the PCReq to the last Resv, the path, and the key
   fingerprints at both ends (SHA-256, 16 hex digits: the keys never leave the nodes);
5. when client hosts sit behind the head and the tail (kind ``host`` on their access
   domains, e.g. ha and hb), pings from the head's host to the tail's over the encrypted
   service and prints both ends' data-plane counters (docs/dataplane.md);
6. deletes the service and takes the testbed down (``--keep``: neither; the service
   stays up, refreshing its key every second, for ``qkdnet cli`` and Wireshark).

``--svg FILE`` captures every domain and draws the whole ladder there when the captures
stop (:mod:`compose.ladder_svg`: PCEP, RSVP, ETSI 004, the sync channel and IDQ3P).

When a testbed of the topology's prefix is up already (started by ``docker compose up``
or an earlier ``qkdnet up``), the demo runs on it instead: step 1 only starts the captures
(so the PCEP session's opening is not in them), and step 6 leaves the testbed up.

``--json`` prints one object instead: ``{"setup_ms", "path", "ladder": [{"t_ms", "src",
"dst", "proto", "msg"}], "fingerprints": {"tn1", "tn5"}, "captures": {DOMAIN: FILE},
"dataplane": {"ping": {...}, "counters": {NODE: {...}}}}`` (``dataplane`` empty without
client hosts)
(progress goes to stderr then).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose import ladder as L
from compose import ladder_svg
from compose.backend import Capture, Testbed
from compose.cliclient import CliError
from gmpls.topology import Topology

#: the paper's QE service (Fig. 8): key length 32, layer 2, AES-256-GCM (10), refresh 1000 ms
PAPER_PARAMS = "key-length 32 layer 2 algorithm 10 refresh time 1000"

Progress = Callable[[str], None]


class DemoError(RuntimeError):
    pass


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
    #: the setup's stages at every node of the path (:func:`collect_stages`)
    stages: list[dict[str, Any]] = field(default_factory=list)
    #: the ping over the encrypted service and the ends' counters (empty: no client hosts)
    dataplane: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "setup_ms": self.setup_ms,
            "path": self.path,
            "ladder": [r.as_dict() for r in self.ladder],
            "fingerprints": self.fingerprints,
            "captures": self.captures,
            "service": self.service,
            "malformed_frames": self.malformed,
            "stages": self.stages,
            "dataplane": self.dataplane,
        }


# --- the steps -----------------------------------------------------------------------------


def wait_for_control_plane(
    bed: Testbed, roles: Roles, progress: Progress, timeout: float = 90.0
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


def create_service(bed: Testbed, roles: Roles, progress: Progress, timeout: float = 30.0) -> dict:
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


def tail_service(bed: Testbed, roles: Roles, head_svc: dict) -> dict | None:
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


def collect_stages(
    bed: Testbed, roles: Roles, head_svc: dict, tail_svc: dict | None
) -> list[dict[str, Any]]:
    """The setup's stages at every node of its path on one time line: the QE service's
    at the two ends (``show qe-service json``: PCReq, PCRep, ETSI 004 calls, Path out,
    Resv in) and RSVP's at every node (``show mpls lsp json``: Path in and out, Resv in
    and out), ``[{"node", "stage", "t_ms"}]`` ordered by time, ``t_ms`` from the PCReq.
    The nodes' wall clocks are compared: they are one clock on one machine."""
    topo = bed.topology
    by_rid = {str(h.router_id): h.name for h in topo.of_kind("node")}
    points: list[tuple[float, str, str]] = []
    for svc, end in ((head_svc, roles.head), (tail_svc, roles.tail)):
        for st in (svc or {}).get("stages", []):
            points.append((st["at"], end, f"qe {st['stage']}"))
    for rid in head_svc.get("path", []):
        node = by_rid.get(rid)
        if node is None:
            continue
        out = json.loads(bed.cli(node, "show mpls lsp json", via=roles.client))
        for lsp in out.get("lsps", []):
            if lsp.get("lsp") == head_svc.get("lsp"):
                points += [(at, node, f"rsvp {k}") for k, at in lsp.get("stages", {}).items()]
    if not points:
        return []
    starts = [at for at, _, name in points if name == "qe pcreq"]
    origin = min(starts or [at for at, _, _ in points])
    points.sort()
    return [{"node": n, "stage": s, "t_ms": round((at - origin) * 1000, 3)} for at, n, s in points]


def format_stages(stages: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {s['t_ms']:9.3f} ms  {s['node']:<6} {s['stage']}" for s in stages)


#: the data-plane counters the demo prints per end (docs/dataplane.md)
DATAPLANE_COUNTERS = (
    "key_index",
    "frames_encrypted",
    "frames_decrypted",
    "bytes_encrypted",
    "auth_failures",
    "replays",
)


def client_hosts(topo: Topology, roles: Roles) -> tuple[str, str, str] | None:
    """The client hosts behind the head and the tail (kind ``host`` on an access domain
    of that node) and the tail's host's address; None when the topology has none."""

    def behind(node: str) -> tuple[str, str] | None:
        for h in topo.of_kind("host"):
            for dom, addr in h.interfaces.items():
                if getattr(topo.domains.get(dom), "access", None) == node:
                    return h.name, str(addr)
        return None

    a, b = behind(roles.head), behind(roles.tail)
    return (a[0], b[0], b[1]) if a and b else None


def ping_over_service(
    bed: Testbed, roles: Roles, svc: dict, progress: Progress, timeout: float = 20.0
) -> dict[str, Any]:
    """Ping the tail's client host from the head's over the encrypted service (after a
    first answer: the data plane attaches as the Resv goes by), then read both ends'
    counters. Empty when there are no client hosts."""
    hosts = client_hosts(bed.topology, roles)
    if hosts is None:
        progress("[demo] no client hosts behind the ends: no data-plane ping")
        return {}
    src, dst, addr = hosts
    progress(f"[demo] {src} -> ping {dst} ({addr}) over the encrypted QE service {svc['id']}")
    deadline = time.monotonic() + timeout
    while not bed.ping(src, addr, timeout=1.0):
        if time.monotonic() > deadline:
            raise DemoError(f"{src} cannot reach {dst} ({addr}) over service {svc['id']}")
    rtts = []
    for _ in range(5):
        t0 = time.monotonic()
        if bed.ping(src, addr, timeout=2.0):
            rtts.append((time.monotonic() - t0) * 1000)
    avg = f", mean {sum(rtts) / len(rtts):.2f} ms (with the ping's own start)" if rtts else ""
    lines = [f"5 echoes sent, {len(rtts)} answered{avg}"]
    counters = {}
    for node, key in ((roles.head, "head"), (roles.tail, "tail")):
        out = json.loads(bed.cli(node, "show qe-service json", via=roles.client))
        for s in out.get("services", []):
            if s["key_handle_prefix"] == svc["key_handle_prefix"] and s["role"] == key:
                counters[node] = {k: s.get(k) for k in DATAPLANE_COUNTERS}
                counters[node]["dataplane"] = s.get("dataplane")
    return {"from": src, "to": dst, "address": addr, "ok": len(rtts) == 5,
            "ping": lines, "counters": counters}  # fmt: skip


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
    if result.stages:
        lines.append("setup stages (node clocks; qe: the QE service, rsvp: RSVP-TE):")
        lines.append(format_stages(result.stages))
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
    dp = result.dataplane
    if dp:
        state = "ok" if dp["ok"] else "FAILED"
        lines.append(f"ping {dp['from']} -> {dp['to']} ({dp['address']}) over the encrypted "
                     f"service: {state}")  # fmt: skip
        lines += [f"  {x}" for x in dp["ping"]]
        for node, c in dp["counters"].items():
            lines.append(f"data plane at {node}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    if result.malformed:
        lines.append(f"tshark found malformed frames: {result.malformed}")
    if result.captures:
        lines.append("captures: " + ", ".join(f"{d}={p}" for d, p in result.captures.items()))
    return "\n".join(lines)


def run_demo(
    bed: Testbed,
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
    stages = collect_stages(bed, roles, svc, tail)
    dataplane = ping_over_service(bed, roles, svc, progress)
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
        stages=stages,
        dataplane=dataplane,
    )


def delete_service(bed: Testbed, roles: Roles, svc: dict, progress: Progress) -> None:
    out = json.loads(bed.cli(roles.head, f"qe-service delete {svc['id']} json", via=roles.client))
    state = out["services"][0]["state"] if "services" in out else out.get("error")
    progress(
        f"[demo] {roles.client} -> telnet {roles.head}: qe-service delete {svc['id']}: {state}"
    )


def write_svg(
    path: Path, topo: Topology, roles: Roles, files: dict[str, Path], progress: Progress
) -> None:
    """The ladder of every captured domain as an SVG sequence diagram at ``path``."""
    ctrl = files[topo.control_domain]
    others = [p for d, p in files.items() if d != topo.control_domain]
    title = (
        f"{topo.name}: QE service {roles.head} -> {roles.tail} ({PAPER_PARAMS}); "
        "t in ms from the first PCReq"
    )
    rungs = ladder_svg.write(path, topo, ctrl, others, tail=roles.tail, title=title)
    progress(f"[demo] {path}: the message ladder, {len(rungs)} messages")


# --- the whole demo ------------------------------------------------------------------------


def run(
    bed: Testbed,
    progress: Progress,
    *,
    capture_dir: Path | None = None,
    keep: bool = False,
    timeout: float = 90.0,
    svg: Path | None = None,
    attached: bool = False,
) -> tuple[Result, Roles]:
    """Steps 1-5 on a testbed that is not up yet. With ``capture_dir`` every domain is
    captured there (and the files named in the result); else the control LAN only, into
    the run directory. With ``svg``, every domain is captured and the whole ladder (QKD
    domains included) is drawn there when the captures stop (:mod:`compose.ladder_svg`).
    ``attached``: the testbed is already up (``docker compose up``, an earlier ``qkdnet
    up``): the captures start now, and it is left up at the end."""
    roles = Roles.of(bed.topology)
    topo = bed.topology
    every = capture_dir is not None or svg is not None
    domains = list(topo.domains) if every else [topo.control_domain]
    cap_dir = capture_dir.resolve() if capture_dir is not None else bed.run_dir / "capture"
    if attached:
        bed.capture_start(domains, cap_dir)
    else:
        bed.up(capture=Capture(domains, cap_dir))
    result: Result | None = None
    try:
        result = run_demo(
            bed, roles, progress, lambda: bed.capture_file(topo.control_domain), timeout=timeout
        )
        if not keep:
            delete_service(bed, roles, result.service, progress)
            time.sleep(0.3)
    finally:
        files = bed.capture_stop()
        if result is not None and capture_dir is not None:
            result.captures = {d: str(p) for d, p in files.items()}
        if attached and not keep:
            progress(f"[demo] testbed {bed.prefix} left up as it was found")
        elif not keep:
            bed.down()
        else:
            svc = result.service.get("id") if result else "?"
            opt = f"--prefix {bed.prefix}{bed.option}"
            progress(
                f"[demo] testbed {bed.prefix} and service {svc} kept up: "
                f"qkdnet cli {roles.head} 'show qe-service' {opt}; qkdnet down {opt}"
            )
    assert result is not None
    if svg is not None:  # the captures stay in their folder after the testbed is down
        write_svg(svg, topo, roles, files, progress)
    return result, roles
