"""OSPF convergence: our speaker against FRR ospfd on rings and grids in namespaces.

Run (root): ``.venv/bin/python bench/ospf_converge.py [--quick] [--sizes 20,50,100]
[--shapes ring,grid] [--impls ours,frr] [--pack N] [--rxmt S] [--prefix P]``.
``--quick``: ring and grid of 20 only.

For each shape and size, compose/topogen.py writes the topology (``qkdnet topo gen SHAPE
--nodes N --p2p --kind frr|node``: routers tn1..tnN, one /30 domain per link) into the log
directory and compose's namespace builder brings it up (prefix ``ob``, or ``--prefix``):
one namespace per router, one bridge per link. OSPF runs point-to-point on the link
domains only, with the same timers for both implementations (hello 1 s, dead 4 s,
retransmit 2 s or ``--rxmt``; both use MinLSInterval 5 s and MinLSArrival 1 s). FRR routers are launched by the builder (kind
``frr``, with this benchmark's ospfd.conf through the config hook); ours are started in
their namespaces by the benchmark (``--serve``, below). Every router is started with its
links down (no carrier: the bridge ports are down); once all are ready the links are
brought up (t0) and each router's LSDB is polled (ours: a digest command on the CLI; FRR:
``show ip ospf database json`` over ospfd's vty socket) until every router holds the same
router LSAs (sequence numbers and checksums) for all N routers, each describing all of
its adjacencies. Printed: the time from t0, per implementation, and the ratio ours/FRR.
Polling is the same for both and costs a little CPU, as does running N routers on the few
cores of this machine: the figures are for comparison, not absolutes.

``--serve`` is the per-router mode of our implementation (started by the benchmark in
each namespace): the OSPF speaker of the node agent and the PCE (daemonkit/ospf.py) on
the given point-to-point interfaces plus its CLI.

``--pack N`` runs our routers N to a process instead (``--serve-pack``, started in the root
namespace): each router's speaker is started in a context naming its namespace
(daemonkit/netns.py), so its raw sockets are opened there and the packets on the wire are
the same; the benchmark asks each pack process for its routers' digests over a Unix socket
in the run directory instead of each router's CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from compose import daemons, topogen
from compose.backend import quiet
from compose.netns import NetnsTestbed, teardown
from gmpls.topology import Host, Topology, load

PREFIX = "ob"
#: the retransmit interval of both implementations (``--rxmt``)
RXMT = 2
CLI_PORT = 2601


# ---------------------------------------------------------------- the lab


def topology(shape: str, n: int, impl: str, hello: int, dead: int, out_dir: Path) -> Path:
    """The generated topology file of one run."""
    doc = topogen.generate(
        shape, n, prefix=PREFIX, kind="frr" if impl == "frr" else "node", p2p=True
    )
    doc["ospf"].update(hello_interval=hello, dead_interval=dead, retransmit_interval=RXMT)
    path = out_dir / f"{shape}{n}-{impl}.yaml"
    path.write_text(topogen.dump(doc))
    return path


def routers(topo: Topology) -> list[str]:
    return [h.name for h in topo.hosts.values() if h.router_id and h.kind in ("node", "frr")]


def links(topo: Topology, host: str) -> dict[str, str]:
    """The router's point-to-point interfaces: {domain: address/30}."""
    h = topo.host(host)
    return {
        d: f"{a}/{topo.domains[d].subnet.prefixlen}"
        for d, a in h.interfaces.items()
        if d != topo.control_domain
    }


def frr_p2p_config(topo: Topology, host: Host, workdir: Path) -> dict[str, str]:
    """zebra.conf and ospfd.conf: OSPF point-to-point on the link domains only."""
    o = topo.ospf
    conf = [f"hostname {host.name}"]
    for name in links(topo, host.name):
        conf += [
            f"interface {name}",
            " ip ospf network point-to-point",
            f" ip ospf hello-interval {o.hello_interval}",
            f" ip ospf dead-interval {o.dead_interval}",
            f" ip ospf retransmit-interval {o.retransmit_interval}",
            "!",
        ]
    conf += ["router ospf", f" ospf router-id {host.router_id}"]
    conf += [f" network {topogen.P2P_SPACE} area {o.area}", ""]
    return {"zebra.conf": f"hostname {host.name}\n", "ospfd.conf": "\n".join(conf)}


# ---------------------------------------------------------------- ours


def start_ours(tb: NetnsTestbed, host: str, log_dir: Path) -> subprocess.Popen[bytes]:
    topo = tb.topology
    spec = ",".join(f"{d}={c}" for d, c in links(topo, host).items())
    o = topo.ospf
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    argv += ["--rid", str(topo.host(host).router_id), "--ifaces", spec]
    argv += ["--hello", str(o.hello_interval), "--dead", str(o.dead_interval)]
    argv += ["--rxmt", str(o.retransmit_interval)]
    env = {**os.environ, "OA_BENCH_LOG": str(log_dir / f"{host}.log")}
    with open(log_dir / f"{host}.out", "wb") as out:
        return tb.popen(host, argv, stdout=out, stderr=subprocess.STDOUT, env=env)


class OursPoller:
    def __init__(self, tb: NetnsTestbed) -> None:
        self.tb = tb
        self.conns: dict[str, socket.socket] = {}

    def _conn(self, host: str) -> socket.socket:
        s = self.conns.get(host)
        if s is not None:
            return s
        s = self.tb.socket(host)
        try:
            s.settimeout(5)
            s.connect(("127.0.0.1", CLI_PORT))
            s.settimeout(30)
            self._read_prompt(s)
        except BaseException:
            s.close()
            raise
        self.conns[host] = s
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

    def ready(self, host: str) -> bool:
        try:
            self._conn(host)
            return True
        except OSError:
            return False

    def digest(self, host: str) -> dict[str, Any]:
        s = self._conn(host)
        s.sendall(b"bench digest json\r\n")
        text = self._read_prompt(s).decode().replace("\r\n", "\n")
        return dict(json.loads(text[: text.rindex("}") + 1]))

    def close(self) -> None:
        for s in self.conns.values():
            s.close()


def start_pack(
    tb: NetnsTestbed, hosts: list[str], index: int, run_dir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """One process running the routers ``hosts`` (``--serve-pack``); its digest socket."""
    topo = tb.topology
    o = topo.ospf
    spec = [
        {
            "host": h,
            "netns": tb.netns(h),
            "rid": str(topo.host(h).router_id),
            "ifaces": ",".join(f"{d}={c}" for d, c in links(topo, h).items()),
        }
        for h in hosts
    ]
    spec_file = run_dir / f"pack{index}.json"
    spec_file.write_text(json.dumps(spec))
    sock = run_dir / f"pack{index}.sock"
    sock.unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-pack", str(spec_file)]
    argv += ["--sock", str(sock), "--hello", str(o.hello_interval), "--dead", str(o.dead_interval)]
    argv += ["--rxmt", str(o.retransmit_interval)]
    env = {**os.environ, "OA_BENCH_LOG": str(run_dir / f"pack{index}.log")}
    with open(run_dir / f"pack{index}.out", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    return proc, sock


class PackPoller:
    """Digests from the pack processes (one Unix socket each, a line per request)."""

    def __init__(self, socks: dict[str, Path]) -> None:
        self.paths = socks
        self.conns: dict[str, socket.socket] = {}
        self.bufs: dict[str, bytes] = {}

    def _ask(self, host: str) -> str:
        path = str(self.paths[host])
        s = self.conns.get(path)
        if s is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            try:
                s.connect(path)
            except OSError:
                s.close()
                raise
            self.conns[path] = s
        s.sendall(host.encode() + b"\n")
        buf = self.bufs.get(path, b"")
        while b"\n" not in buf:
            c = s.recv(1 << 20)
            if not c:
                raise ConnectionError("closed")
            buf += c
        line, _, self.bufs[path] = buf.partition(b"\n")
        return line.decode()

    def ready(self, host: str) -> bool:
        try:
            self._ask(host)
            return True
        except OSError:
            self.close()
            return False

    def digest(self, host: str) -> dict[str, Any]:
        return dict(json.loads(self._ask(host)))

    def close(self) -> None:
        for s in self.conns.values():
            s.close()
        self.conns.clear()
        self.bufs.clear()


def make_router(rid_s: str, spec: str, hello: int, dead: int) -> tuple[Any, Any]:
    """Our OSPF router and its socket speaker on the point-to-point interfaces ``spec``
    (``name=address/len,...``)."""
    from daemonkit.ospf import OspfSpeaker
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
                rxmt_interval=RXMT,
            )
        )
    router = OspfRouter(rid_s, name=rid_s)
    return router, OspfSpeaker(router, ifaces)


def router_digest(router: Any) -> dict[str, Any]:
    """The router LSAs of the LSDB: count, digest of (router, seq, checksum), links each."""
    from gmpls.ospf.constants import LsType

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


def _bench_logging() -> None:
    log_file = os.environ.get("OA_BENCH_LOG")
    if log_file:
        from gmpls.logfmt import setup_logging

        setup_logging(log_file)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(rid_s: str, spec: str, hello: int, dead: int) -> None:
    from daemonkit.cli import CliServer, CommandTable
    from daemonkit.ospf import register_commands

    _bench_logging()
    router, agent = make_router(rid_s, spec, hello, dead)
    table = CommandTable()
    register_commands(table, agent)
    table.register("bench digest", lambda _a: router_digest(router), "router LSA digest")
    server = CliServer(table, rid_s)
    await agent.start()
    await server.start("127.0.0.1", CLI_PORT)
    await _until_signalled()
    await server.stop()
    await agent.stop()


async def serve_pack(spec_file: str, sock_path: str, hello: int, dead: int) -> None:
    """Several routers in this process, each speaking from its own namespace."""
    from daemonkit import netns

    _bench_logging()
    routers: dict[str, Any] = {}
    agents = []
    for r in json.loads(Path(spec_file).read_text()):
        router, agent = make_router(r["rid"], r["ifaces"], hello, dead)
        # the speaker's sockets, timers and reader callbacks all run in this context
        await asyncio.create_task(agent.start(), context=netns.context(r["netns"]))
        routers[r["host"]] = router
        agents.append(agent)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                host = line.decode().strip()
                out = router_digest(routers[host]) if host in routers else {"error": host}
                writer.write(json.dumps(out).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, sock_path)
    await _until_signalled()
    server.close()
    for agent in agents:
        await agent.stop()


# ---------------------------------------------------------------- FRR


class FrrPoller:
    def __init__(self, tb: NetnsTestbed) -> None:
        self.prefix = tb.prefix
        self.conns: dict[str, socket.socket] = {}

    def _conn(self, host: str) -> socket.socket:
        s = self.conns.get(host)
        if s is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(str(daemons.frr_runtime_dir(self.prefix, host) / "ospfd.vty"))
            except OSError:
                s.close()
                raise
            self.conns[host] = s
        return s

    def _cmd(self, host: str, cmd: str) -> str:
        s = self._conn(host)
        s.sendall(cmd.encode() + b"\0")
        buf = b""
        while not (len(buf) >= 4 and buf[-4:-1] == b"\0\0\0"):
            c = s.recv(1 << 20)
            if not c:
                raise ConnectionError("closed")
            buf += c
        return buf[:-4].decode()

    def ready(self, host: str) -> bool:
        try:
            self._cmd(host, "show ip ospf")
            return True
        except OSError:
            self.conns.pop(host, None)
            return False

    def digest(self, host: str) -> dict[str, Any]:
        d = json.loads(self._cmd(host, "show ip ospf database router json"))
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


# long: one run from lab to teardown, each step a few lines
def run_one(
    impl: str,
    shape: str,
    n: int,
    hello: int,
    dead: int,
    timeout: float,
    log_dir: Path,
    pack: int = 0,
) -> tuple[float | None, int]:
    """Seconds from links up to convergence (None: not within ``timeout``), and the number
    of links. ``pack``: our routers that many to a process (0: one process each)."""
    run_dir = log_dir / f"{impl}-{shape}{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    topo = load(topology(shape, n, impl, hello, dead, log_dir))
    names = routers(topo)
    ends = [(h, d) for h in names for d in links(topo, h)]
    teardown(PREFIX, progress=quiet)
    tb = NetnsTestbed(topo, run_dir, progress=quiet, config_generators={"frr": frr_p2p_config})
    poller: OursPoller | FrrPoller | PackPoller | None = None
    packs: list[subprocess.Popen[bytes]] = []
    try:
        tb.up(start_daemons=False)
        tb.set_links(ends, up=False)
        if impl == "ours" and pack > 0:
            socks: dict[str, Path] = {}
            for k in range(0, len(names), pack):
                proc, path = start_pack(tb, names[k : k + pack], k // pack, run_dir)
                packs.append(proc)
                socks.update(dict.fromkeys(names[k : k + pack], path))
            poller = PackPoller(socks)
        elif impl == "ours":
            poller = OursPoller(tb)
            for h in names:
                start_ours(tb, h, run_dir)
        else:
            poller = FrrPoller(tb)
            tb.start_all(names)
        deadline = time.monotonic() + 120
        pending = set(names)
        while pending and time.monotonic() < deadline:
            pending = {h for h in pending if not poller.ready(h)}
            time.sleep(0.1)
        if pending:
            print(f"  {impl}: routers {sorted(pending)[:5]} never became ready", flush=True)
            return None, len(topo.te_links)
        want_links = {str(topo.host(h).router_id): 2 * len(links(topo, h)) for h in names}
        t0 = time.monotonic()
        tb.set_links(ends, up=True)
        while time.monotonic() - t0 < timeout:
            try:
                ds = [poller.digest(h) for h in names]
            except OSError:  # a busy router did not answer in time: ask again
                poller.close()
                poller.conns.clear()
                continue
            if (
                all(d["count"] == n and d["digest"] == ds[0]["digest"] for d in ds)
                and ds[0]["links"] == want_links
            ):
                return time.monotonic() - t0, len(topo.te_links)
            time.sleep(0.1)
        return None, len(topo.te_links)
    finally:
        if poller is not None:
            poller.close()
        for proc in packs:
            proc.terminate()
        for proc in packs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        tb.down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="ring and grid of 20 routers only")
    ap.add_argument("--sizes", default="20,50,100")
    ap.add_argument("--shapes", default="ring,grid")
    ap.add_argument("--impls", default="ours,frr")
    ap.add_argument("--hello", type=int, default=1)
    ap.add_argument("--dead", type=int, default=4)
    ap.add_argument("--rxmt", type=int, default=2, help="retransmit interval (default 2 s)")
    ap.add_argument("--prefix", default="ob", help="testbed prefix (default ob)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--log-dir", default="/tmp/oa-ospf-bench")
    ap.add_argument(
        "--pack", type=int, default=0, help="our routers N to a process (default 0: one each)"
    )
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve-pack", help=argparse.SUPPRESS)
    ap.add_argument("--sock", help=argparse.SUPPRESS)
    ap.add_argument("--rid", help=argparse.SUPPRESS)
    ap.add_argument("--ifaces", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    global PREFIX, RXMT
    PREFIX, RXMT = a.prefix, a.rxmt
    if a.serve:
        asyncio.run(serve(a.rid, a.ifaces, a.hello, a.dead))
        return 0
    if a.serve_pack:
        asyncio.run(serve_pack(a.serve_pack, a.sock, a.hello, a.dead))
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    sizes = [20] if a.quick else [int(x) for x in a.sizes.split(",")]
    impls = a.impls.split(",")
    log_dir = Path(a.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"OSPF convergence, hello {a.hello} s dead {a.dead} s retransmit {a.rxmt} s, "
        "point-to-point links, "
        f"{os.cpu_count()} CPUs" + (f", ours {a.pack} routers per process" if a.pack else "")
    )
    print(
        f"{'topology':<12}{'routers':>8}{'links':>7}"
        + "".join(f"{i + ' s':>10}" for i in impls)
        + (f"{'ours/frr':>10}" if {"ours", "frr"} <= set(impls) else "")
    )
    for shape in a.shapes.split(","):
        for n in sizes:
            res: dict[str, float | None] = {}
            nl = 0
            for impl in impls:
                res[impl], nl = run_one(impl, shape, n, a.hello, a.dead, a.timeout, log_dir, a.pack)
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
