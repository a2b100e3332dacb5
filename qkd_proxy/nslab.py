"""The QKD half of a topology in network namespaces, for tests and bench/keys.py.

A small, self-contained stand-in for the general launcher (compose/, ``qkdnet up``): one
namespace per host (tn1, tn5, etsiA, etsiB, idqA, idqB), the QKD domains (qa, qb, ka, kb,
sync) as Linux bridges inside one extra namespace, veth pairs, the topology's addresses.
Every name starts with ``prefix`` (default ``qq``) and :meth:`QkdLab.down` removes them
all, killing the daemons it started. Needs root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gmpls import topology

QKD_HOSTS = ("tn1", "tn5", "etsiA", "etsiB", "idqA", "idqB")
QKD_DOMAINS = ("qa", "qb", "ka", "kb", "sync")
ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: str, check: bool = True, input: str | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


class QkdLab:
    def __init__(self, topo_path: Path, workdir: Path, prefix: str = "qq") -> None:
        self.topo_path = Path(topo_path)
        self.topo = topology.load(self.topo_path)
        self.workdir = Path(workdir)
        self.prefix = prefix
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def addr(self, host: str, domain: str) -> str:
        return str(self.topo.host(host).interfaces[domain])

    # --- namespaces ---------------------------------------------------------------------
    def up(self) -> None:
        self.down()
        self.workdir.mkdir(parents=True, exist_ok=True)
        run("ip", "netns", "add", self.switch)
        run("ip", "-n", self.switch, "link", "set", "lo", "up")
        for d in QKD_DOMAINS:
            run("ip", "-n", self.switch, "link", "add", f"br-{d}", "type", "bridge")
            run("ip", "-n", self.switch, "link", "set", f"br-{d}", "up")
        for h in QKD_HOSTS:
            ns = self.ns(h)
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
            for d, a in self.topo.host(h).interfaces.items():
                if d not in QKD_DOMAINS:
                    continue
                plen = self.topo.domains[d].subnet.prefixlen
                peer = f"{h}-{d}"
                run(
                    "ip",
                    "-n",
                    ns,
                    "link",
                    "add",
                    d,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    peer,
                    "netns",
                    self.switch,
                )
                run("ip", "-n", ns, "addr", "add", f"{a}/{plen}", "dev", d)
                run("ip", "-n", ns, "link", "set", d, "up")
                run("ip", "-n", self.switch, "link", "set", peer, "master", f"br-{d}")
                run("ip", "-n", self.switch, "link", "set", peer, "up")

    def down(self) -> None:
        self.stop_all()
        names = run("ip", "netns", "list", check=False).split("\n")
        mine = {self.switch, *(self.ns(h) for h in QKD_HOSTS)}
        for line in names:
            n = line.split(" ")[0]
            if n in mine:
                run("ip", "netns", "del", n, check=False)

    def add_address(self, host: str, domain: str, address: str) -> None:
        plen = self.topo.domains[domain].subnet.prefixlen
        run("ip", "-n", self.ns(host), "addr", "add", f"{address}/{plen}", "dev", domain)

    # --- loss ----------------------------------------------------------------------------
    def set_loss(self, percent: int) -> None:
        """Drop ``percent`` % of the UDP datagrams every host receives (nftables, inside
        each namespace only); 0 removes the rule."""
        for h in QKD_HOSTS:
            run(
                "ip",
                "netns",
                "exec",
                self.ns(h),
                "nft",
                "delete",
                "table",
                "inet",
                f"{self.prefix}loss",
                check=False,
            )
            if percent > 0:
                rules = (
                    f"table inet {self.prefix}loss {{\n"
                    "  chain input {\n"
                    "    type filter hook input priority 0; policy accept;\n"
                    f"    meta l4proto udp numgen random mod 100 < {percent} counter drop\n"
                    "  }\n}\n"
                )
                run("ip", "netns", "exec", self.ns(h), "nft", "-f", "-", input=rules)

    def dropped(self) -> int:
        total = 0
        for h in QKD_HOSTS:
            out = run(
                "ip",
                "netns",
                "exec",
                self.ns(h),
                "nft",
                "list",
                "table",
                "inet",
                f"{self.prefix}loss",
                check=False,
            )
            for word in out.split("packets ")[1:]:
                total += int(word.split()[0])
        return total

    # --- processes -----------------------------------------------------------------------
    def spawn(self, name: str, host: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.stderr", "wb")  # noqa: SIM115 - closed by the child
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), sys.executable, *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs[name] = p
        return p

    def start_daemons(self, emulator_args: list[str] | None = None) -> None:
        """The two IDQ3P emulators and the two proxies; waits until they listen."""
        t = str(self.topo_path)
        for h in ("idqA", "idqB"):
            self.spawn(
                h,
                h,
                [
                    "-m",
                    "idq3p_emulator",
                    "--topology",
                    t,
                    "--host",
                    h,
                    "--log-file",
                    str(self.workdir / f"{h}.log"),
                    *(emulator_args or []),
                ],
            )
        for h in ("etsiA", "etsiB"):
            self.spawn(
                h,
                h,
                [
                    "-m",
                    "qkd_proxy",
                    "--topology",
                    t,
                    "--host",
                    h,
                    "--log-file",
                    str(self.workdir / f"{h}.log"),
                    "--state-dir",
                    str(self.workdir),
                ],
            )
        for h in ("idqA", "idqB", "etsiA", "etsiB"):
            self.wait_log(h, '"listening"')

    def wait_log(self, name: str, text: str, timeout: float = 20.0) -> None:
        path = self.workdir / f"{name}.log"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if path.exists() and text in path.read_text():
                return
            p = self.procs.get(name)
            if p is not None and p.poll() is not None:
                err = (self.workdir / f"{name}.stderr").read_text()
                raise RuntimeError(f"{name} exited {p.returncode}: {err[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{name}: {text!r} not in its log")

    def stop(self, name: str) -> int | None:
        p = self.procs.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def stop_all(self) -> dict[str, int | None]:
        return {n: self.stop(n) for n in list(self.procs)}

    def exec(
        self, host: str, *args: str, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(host), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
        )

    def client(self, host: str, proxy: str, *args: str, bind: str | None = None) -> str:
        """Run ``python -m qkd_proxy.client`` in ``host``'s namespace; its stdout."""
        extra = ["--bind", bind] if bind else []
        p = self.exec(
            host, sys.executable, "-m", "qkd_proxy.client", "--proxy", proxy, *extra, *args
        )
        if p.returncode not in (0, 1):
            raise RuntimeError(f"client failed ({p.returncode}): {p.stdout} {p.stderr}")
        return p.stdout
