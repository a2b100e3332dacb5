"""OSPF convergence: our speaker against FRR ospfd on rings and grids in namespaces.

Run (root): ``.venv/bin/python bench/ospf_converge.py [--quick] [--sizes 20,50,100]
[--shapes ring,grid] [--impls ours,frr]``. ``--quick``: ring and grid of 20 only.

For each shape and size, one network namespace per router (``oa-bN``), one veth pair per
link (numbered /30s from 10.128.0.0/10, OSPF point-to-point), the same timers for both
implementations (hello 1 s, dead 4 s, retransmit 2 s; both use MinLSInterval 5 s and
MinLSArrival 1 s). Every router is started with its links down; once all are ready the
links are brought up (t0) and each router's LSDB is polled (ours: a digest command on the
node agent CLI; FRR: ``show ip ospf database json`` over ospfd's vty socket) until every
router holds the same router LSAs (sequence numbers and checksums) for all N routers, each
describing all of its adjacencies. Printed: the time from t0, per implementation, and the
ratio ours/FRR. Polling is the same for both and costs a little CPU, as does running N
routers on the few cores of this machine: the figures are for comparison, not absolutes.

``--serve`` is the per-router mode of our implementation (started by the benchmark in
each namespace): the OSPF speaker of the node agent and the PCE (daemonkit/ospf.py) on
the given point-to-point interfaces plus its CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NS = "oa-b"
FRR = Path("/usr/lib/frr")
RUN = Path("/run/oa-ospf/bench")
CLI_PORT = 2601


# ---------------------------------------------------------------- topologies


def ring(n: int) -> list[tuple[int, int]]:
    return [(i, (i + 1) % n) for i in range(n)]


def grid(n: int) -> list[tuple[int, int]]:
    rows = max(r for r in range(1, int(n**0.5) + 1) if n % r == 0)
    cols = n // rows
    edges = []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols:
                edges.append((i, i + 1))
            if r + 1 < rows:
                edges.append((i, i + cols))
    return edges


def rid(i: int) -> str:
    return f"10.0.{i // 250}.{i % 250 + 1}"


def link_addrs(k: int) -> tuple[str, str]:
    base = int(IPv4Address("10.128.0.0")) + 4 * k
    return f"{IPv4Address(base + 1)}/30", f"{IPv4Address(base + 2)}/30"


# ---------------------------------------------------------------- namespaces


def sh(*args: str, input: str | None = None, check: bool = True) -> None:
    subprocess.run(list(args), input=input, text=True, check=check, capture_output=True)


def cleanup() -> None:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for ln in out.splitlines():
        ns = ln.split()[0] if ln.strip() else ""
        if ns.startswith(NS):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)
    shutil.rmtree(RUN, ignore_errors=True)


def build(n: int, edges: list[tuple[int, int]]) -> dict[int, list[tuple[str, str]]]:
    """Namespaces and veths (down); returns router -> [(ifname, cidr)]."""
    ifs: dict[int, list[tuple[str, str]]] = {i: [] for i in range(n)}
    batch = [f"netns add {NS}{i}" for i in range(n)]
    for k, (a, b) in enumerate(edges):
        ia, ib = f"l{k}a", f"l{k}b"
        batch.append(f"link add {ia} netns {NS}{a} type veth peer name {ib} netns {NS}{b}")
        ca, cb = link_addrs(k)
        ifs[a].append((ia, ca))
        ifs[b].append((ib, cb))
    sh("ip", "-batch", "-", input="\n".join(batch) + "\n")
    for i in range(n):
        lines = ["link set lo up"] + [f"addr add {c} dev {name}" for name, c in ifs[i]]
        sh("ip", "-n", f"{NS}{i}", "-batch", "-", input="\n".join(lines) + "\n")
    return ifs


def links_up(ifs: dict[int, list[tuple[str, str]]]) -> None:
    for i, lst in ifs.items():
        lines = [f"link set {name} up" for name, _ in lst]
        sh("ip", "-n", f"{NS}{i}", "-batch", "-", input="\n".join(lines) + "\n")


# ---------------------------------------------------------------- ours


def start_ours(i: int, ifaces: list[tuple[str, str]], log_dir: Path) -> subprocess.Popen[bytes]:
    spec = ",".join(f"{n}={c}" for n, c in ifaces)
    out = open(log_dir / f"ours{i}.out", "wb")  # noqa: SIM115
    env = {**os.environ, "OA_BENCH_LOG": str(log_dir / f"ours{i}.log")}
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            f"{NS}{i}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--rid",
            rid(i),
            "--ifaces",
            spec,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )


class OursPoller:
    def __init__(self, n: int) -> None:
        from pyroute2.netns import popns, pushns

        self.conns: dict[int, socket.socket] = {}
        self.n = n
        self._push, self._pop = pushns, popns

    def _conn(self, i: int) -> socket.socket:
        s = self.conns.get(i)
        if s is not None:
            return s
        self._push(f"{NS}{i}")
        try:
            s = socket.create_connection(("127.0.0.1", CLI_PORT), timeout=5)
        finally:
            self._pop()
        s.settimeout(30)
        self._read_prompt(s)
        self.conns[i] = s
        return s

    @staticmethod
    def _read_prompt(s: socket.socket) -> bytes:
        buf = b""
        while not buf.endswith(b"# "):
            c = s.recv(65536)
            if not c:
                raise ConnectionError("closed")
            buf += c
        return buf

    def ready(self, i: int) -> bool:
        try:
            self._conn(i)
            return True
        except OSError:
            return False

    def digest(self, i: int) -> dict[str, Any]:
        s = self._conn(i)
        s.sendall(b"bench digest json\r\n")
        text = self._read_prompt(s).decode().replace("\r\n", "\n")
        return dict(json.loads(text[: text.rindex("}") + 1]))

    def close(self) -> None:
        for s in self.conns.values():
            s.close()


async def serve(rid_s: str, spec: str, hello: int, dead: int) -> None:
    from daemonkit.cli import CliServer, CommandTable
    from daemonkit.ospf import OspfSpeaker, register_commands
    from gmpls.ospf.constants import LsType
    from gmpls.ospf.events import InterfaceConfig
    from gmpls.ospf.router import OspfRouter

    ifaces = []
    for item in spec.split(","):
        name, cidr = item.split("=")
        ifaces.append(
            InterfaceConfig(
                name,
                IPv4Interface(cidr),
                network_type="point-to-point",
                hello_interval=hello,
                dead_interval=dead,
                rxmt_interval=2,
            )
        )
    log_file = os.environ.get("OA_BENCH_LOG")
    if log_file:
        from gmpls.logfmt import setup_logging

        setup_logging(log_file)
    router = OspfRouter(rid_s, name=rid_s)
    agent = OspfSpeaker(router, ifaces)
    table = CommandTable()
    register_commands(table, agent)

    def digest(args: list[str]) -> dict[str, Any]:
        items = sorted(
            (
                str(e.lsa.header.adv_router),
                e.lsa.header.seq,
                e.lsa.header.checksum,
                len(e.lsa.body.links),
            )
            for _, e in router.lsdb.entries()
            if e.lsa.header.ls_type == LsType.ROUTER
        )
        h = hashlib.sha1(repr([x[:3] for x in items]).encode()).hexdigest()
        return {"count": len(items), "digest": h, "links": {a: n for a, _, _, n in items}}

    table.register("bench digest", digest, "router LSA digest (benchmark)")
    server = CliServer(table, rid_s)
    await agent.start()
    await server.start("127.0.0.1", CLI_PORT)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    await agent.stop()


# ---------------------------------------------------------------- FRR


def start_frr(
    i: int, ifaces: list[tuple[str, str]], hello: int, dead: int, log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    d = RUN / f"b{i}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "zebra.conf").write_text(f"hostname b{i}\n")
    conf = [f"hostname b{i}"]
    for name, _ in ifaces:
        conf += [
            f"interface {name}",
            " ip ospf network point-to-point",
            f" ip ospf hello-interval {hello}",
            f" ip ospf dead-interval {dead}",
            " ip ospf retransmit-interval 2",
            "!",
        ]
    conf += ["router ospf", f" ospf router-id {rid(i)}", " network 10.128.0.0/10 area 0", ""]
    (d / "ospfd.conf").write_text("\n".join(conf))
    shutil.chown(d, "frr", "frr")
    for f in d.iterdir():
        shutil.chown(f, "frr", "frr")
    common = [
        "-z",
        str(d / "zserv.api"),
        "--vty_socket",
        str(d),
        "-A",
        "127.0.0.1",
        "-P",
        "0",
        "--log",
        f"file:{d}/log",
    ]
    ns = ["ip", "netns", "exec", f"{NS}{i}"]
    out = open(log_dir / f"frr{i}.out", "wb")  # noqa: SIM115
    z = subprocess.Popen(
        [*ns, str(FRR / "zebra"), "-f", str(d / "zebra.conf"), "-i", str(d / "zebra.pid"), *common],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while not (d / "zserv.api").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    o = subprocess.Popen(
        [*ns, str(FRR / "ospfd"), "-f", str(d / "ospfd.conf"), "-i", str(d / "ospfd.pid"), *common],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    return [z, o]


class FrrPoller:
    def __init__(self, n: int) -> None:
        self.conns: dict[int, socket.socket] = {}

    def _conn(self, i: int) -> socket.socket:
        s = self.conns.get(i)
        if s is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(str(RUN / f"b{i}" / "ospfd.vty"))
            self.conns[i] = s
        return s

    def _cmd(self, i: int, cmd: str) -> str:
        s = self._conn(i)
        s.sendall(cmd.encode() + b"\0")
        buf = b""
        while not (len(buf) >= 4 and buf[-4:-1] == b"\0\0\0"):
            c = s.recv(1 << 20)
            if not c:
                raise ConnectionError("closed")
            buf += c
        return buf[:-4].decode()

    def ready(self, i: int) -> bool:
        try:
            self._cmd(i, "show ip ospf")
            return True
        except OSError:
            self.conns.pop(i, None)
            return False

    def digest(self, i: int) -> dict[str, Any]:
        d = json.loads(self._cmd(i, "show ip ospf database router json"))
        items = []
        for area in d.get("routerLinkStates", {}).get("areas", {}).values():
            for e in area:
                items.append(
                    (
                        e["advertisingRouter"],
                        int(e["lsaSeqNumber"], 16),
                        int(e["checksum"], 16),
                        int(e.get("numOfLinks", len(e.get("routerLinks", {})))),
                    )
                )
        items.sort()
        norm = [(a, s - (1 << 32) if s >= 1 << 31 else s, c) for a, s, c, _ in items]
        h = hashlib.sha1(repr(norm).encode()).hexdigest()
        return {"count": len(items), "digest": h, "links": {a: n for a, _, _, n in items}}

    def close(self) -> None:
        for s in self.conns.values():
            s.close()


# ---------------------------------------------------------------- one run


def run_one(
    impl: str, shape: str, n: int, hello: int, dead: int, timeout: float, log_dir: Path
) -> float | None:
    edges = ring(n) if shape == "ring" else grid(n)
    deg = {i: 0 for i in range(n)}
    for a, b in edges:
        deg[a] += 1
        deg[b] += 1
    cleanup()
    procs: list[subprocess.Popen[bytes]] = []
    poller: Any = None
    try:
        ifs = build(n, edges)
        if impl == "ours":
            poller = OursPoller(n)
            procs = [start_ours(i, ifs[i], log_dir) for i in range(n)]
        else:
            poller = FrrPoller(n)
            for i in range(n):
                procs += start_frr(i, ifs[i], hello, dead, log_dir)
        deadline = time.monotonic() + 120
        pending = set(range(n))
        while pending and time.monotonic() < deadline:
            pending = {i for i in pending if not poller.ready(i)}
            time.sleep(0.1)
        if pending:
            print(f"  {impl}: routers {sorted(pending)[:5]} never became ready", flush=True)
            return None
        t0 = time.monotonic()
        links_up(ifs)
        want_links = {rid(i): 2 * deg[i] for i in range(n)}
        while time.monotonic() - t0 < timeout:
            try:
                ds = [poller.digest(i) for i in range(n)]
            except OSError:  # a busy router did not answer in time: ask again
                poller.close()
                poller.conns.clear()
                continue
            if (
                all(d["count"] == n and d["digest"] == ds[0]["digest"] for d in ds)
                and ds[0]["links"] == want_links
            ):
                return time.monotonic() - t0
            time.sleep(0.1)
        return None
    finally:
        if poller is not None:
            poller.close()
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="ring and grid of 20 routers only")
    ap.add_argument("--sizes", default="20,50,100")
    ap.add_argument("--shapes", default="ring,grid")
    ap.add_argument("--impls", default="ours,frr")
    ap.add_argument("--hello", type=int, default=1)
    ap.add_argument("--dead", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--log-dir", default="/tmp/oa-ospf-bench")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rid", help=argparse.SUPPRESS)
    ap.add_argument("--ifaces", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        asyncio.run(serve(a.rid, a.ifaces, a.hello, a.dead))
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    sizes = [20] if a.quick else [int(x) for x in a.sizes.split(",")]
    impls = a.impls.split(",")
    log_dir = Path(a.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"OSPF convergence, hello {a.hello} s dead {a.dead} s, point-to-point links, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'topology':<12}{'routers':>8}{'links':>7}"
        + "".join(f"{i + ' s':>10}" for i in impls)
        + (f"{'ours/frr':>10}" if {"ours", "frr"} <= set(impls) else "")
    )
    for shape in a.shapes.split(","):
        for n in sizes:
            res = {}
            for impl in impls:
                res[impl] = run_one(impl, shape, n, a.hello, a.dead, a.timeout, log_dir)
            nl = len(ring(n) if shape == "ring" else grid(n))
            cells = "".join(
                f"{res[i]:>10.2f}" if res[i] is not None else f"{'timeout':>10}" for i in impls
            )
            ratio = ""
            ours_t, frr_t = res.get("ours"), res.get("frr")
            if ours_t is not None and frr_t:
                ratio = f"{ours_t / frr_t:>10.2f}"
            print(f"{shape:<12}{n:>8}{nl:>7}{cells}{ratio}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
