"""A small network-namespace fixture of the OSPF tests' own (prefix ``oa``): one bridge
in a switch namespace, hosts in their own namespaces with a veth on it, processes run in
them, and a CLI client that connects from inside a namespace. Everything is removed on
``close()``, also after a failure (the fixture calls it in ``finally``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyroute2.netns import popns, pushns

PREFIX = "oa"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def leftovers() -> list[str]:
    out = sh("ip", "netns", "list").stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.startswith(PREFIX + "-")]


def cleanup_all() -> None:
    for ns in leftovers():
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "del", ns, check=False)


def wait_for(
    pred: Callable[[], Any], timeout: float, what: str, extra: Callable[[], Any] = lambda: ""
) -> None:
    """Poll ``pred`` every 0.5 s until it returns True; what it returned last (a value or
    an error from a CLI/subprocess call) goes into the failure message with ``extra()``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            r = pred()
            if r is True:
                return
            last = r
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last} {extra()}")


def tshark_fields(pcap: Path, display_filter: str, field: str) -> list[str]:
    """The values of ``field`` in the packets of ``pcap`` that ``display_filter`` matches."""
    return subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", field],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def node_agent_argv(topology: Path, host: str, log: Path) -> list[str]:
    """``python -m node_agent`` for ``host``: OSPF-TE and its CLI only (no extensions)."""
    return [
        sys.executable,
        "-m",
        "node_agent",
        "--topology",
        str(topology),
        "--host",
        host,
        "--log-file",
        str(log),
        "--no-extensions",
    ]


class OaLan:
    def __init__(self, tag: str, run_dir: Path) -> None:
        self.tag = tag  # distinguishes parallel labs: namespaces are oa-TAG...
        self.run_dir = run_dir
        self.sw = f"{PREFIX}-{tag}sw"
        self.hosts: dict[str, str] = {}
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._n = 0
        sh("ip", "netns", "add", self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")

    def ns(self, host: str) -> str:
        return self.hosts[host]

    def add_host(self, host: str, cidr: str, ifname: str = "ctrl") -> str:
        ns = f"{PREFIX}-{self.tag}{host}"[:15]
        sh("ip", "netns", "add", ns)
        self._n += 1
        a, b = f"{PREFIX}{self.tag}{self._n}a", f"{PREFIX}{self.tag}{self._n}b"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", ns)
        sh("ip", "link", "set", b, "netns", self.sw)
        sh("ip", "-n", ns, "link", "set", a, "name", ifname)
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.sw, "link", "set", b, "master", "br0")
        sh("ip", "-n", self.sw, "link", "set", b, "up")
        self.hosts[host] = ns
        return ns

    def add_address(self, host: str, cidr: str, dev: str = "lo") -> None:
        sh("ip", "-n", self.ns(host), "addr", "add", cidr, "dev", dev)

    def spawn(self, host: str, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        out = open(self.run_dir / f"{host}.{name}.out", "wb")  # noqa: SIM115
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.procs.append((host, p))
        return p

    def stop(self, host: str) -> None:
        for h, p in self.procs:
            if h == host and p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def capture(self, host: str, path: Path, dev: str = "ctrl") -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns(host),
                "tcpdump",
                "-i",
                dev,
                "-U",
                "-w",
                str(path),
                "ip proto 89",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append((host, p))
        return p

    def exec(self, host: str, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", self.ns(host), *argv, check=check).stdout

    def cli(self, host: str, command: str, port: int = 23, timeout: float = 5.0) -> str:
        """Run one command on the host's telnet CLI and return its output."""
        pushns(self.ns(host))
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        finally:
            popns()
        with s:
            s.settimeout(timeout)
            buf = b""
            while not re.search(rb"# $", buf):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the prompt")
                buf += chunk
            prompt = buf.decode().splitlines()[-1]
            s.sendall(command.encode() + b"\r\n")
            buf = b""
            while not buf.decode(errors="replace").endswith(prompt):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            s.sendall(b"exit\r\n")
        text = buf.decode(errors="replace").replace("\r\n", "\n")
        return text[: -len(prompt)] if text.endswith(prompt) else text

    def close(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for _, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for ns in [*self.hosts.values(), self.sw]:
            sh("ip", "netns", "del", ns, check=False)
