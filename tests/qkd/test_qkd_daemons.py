"""The asyncio shells on loopback: emulators, proxies, Etsi004Client and the CLI.

Addresses 127.55.x.y from tests/qkd/loopback.yaml, ports 355xx (not the standard ones),
every daemon a real process stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemonkit.etsi004 import Etsi004Client
from gmpls.qkd import etsi004 as etsi
from qkd_proxy.client import fingerprint

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TOPO = HERE / "loopback.yaml"
NORTH, SYNC, IDQ, STATUS, CLI = 35424, 35626, 35323, 35425, 35023
A, B = ("127.55.2.11", NORTH), ("127.55.3.11", NORTH)
TN1, TN5 = "127.55.2.1", "127.55.3.5"


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("qqloop")
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(package: str, host: str, *ports: str) -> None:
        argv = [sys.executable, "-m", package, "--topology", str(TOPO), "--state-dir", str(d)]
        argv += ["--host", host, *ports, "--log-file", str(d / f"{host}.log")]
        procs[host] = subprocess.Popen(argv, cwd=ROOT)

    try:
        for h in ("idqA", "idqB"):
            spawn("idq3p_emulator", h, "--port", str(IDQ))
        for h in ("etsiA", "etsiB"):
            ports = ["--north-port", str(NORTH), "--sync-port", str(SYNC), "--idq-port", str(IDQ)]
            ports += ["--status-port", str(STATUS), "--cli-port", str(CLI)]
            spawn("qkd_proxy", h, *ports)
        for h in procs:
            end = time.monotonic() + 20
            while '"listening"' not in _read(d / f"{h}.log"):
                assert procs[h].poll() is None, f"{h} exited"
                assert time.monotonic() < end, f"{h} did not start"
                time.sleep(0.05)
        yield d
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {h: p.wait(10) for h, p in procs.items()}
    assert codes == {h: 0 for h in procs}


def _read(p: Path) -> str:
    return p.read_text() if p.exists() else ""


async def test_client_pair_gets_matching_keys(daemons: Path) -> None:
    async with Etsi004Client(A, (TN1, 0)) as a, Etsi004Client(B, (TN5, 0)) as b:
        st, h = await a.open("127.55.1.5")
        assert st == etsi.Status.SUCCESSFUL
        assert await a.connect(h) == etsi.Status.PEER_NOT_CONNECTED
        blocking = asyncio.ensure_future(a.connect(h, timeout_ms=5000))
        assert (await b.open("127.55.1.1", h))[0] == etsi.Status.SUCCESSFUL
        assert await blocking == etsi.Status.SUCCESSFUL
        ka = [await a.get_key(h) for _ in range(200)]
        kb = await asyncio.gather(*[b.get_key(h) for _ in range(200)])  # pipelined
        assert sorted((i, k) for _, i, k in kb) == [(i, k) for _, i, k in ka]
        assert [i for _, i, _ in ka] == list(range(200))
        assert await a.close(h) == etsi.Status.SUCCESSFUL
        assert await b.close(h) == etsi.Status.SUCCESSFUL


def test_cli_sessions_outlive_the_command(daemons: Path) -> None:
    def cli(*args: str) -> dict:
        p = subprocess.run(
            [sys.executable, "-m", "qkd_proxy.client", "--port", str(NORTH), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        return json.loads(p.stdout)

    o = cli("--proxy", A[0], "--bind", TN1, "open", "--destination", "127.55.1.5")
    h = o["key_handle"]
    g1 = cli("--proxy", A[0], "--bind", TN1, "get", "--handle", h, "--show-key")
    g2 = cli("--proxy", A[0], "--bind", TN1, "get", "--handle", h, "--count", "2")
    assert [k["index"] for k in g1["keys"] + g2["keys"]] == [0, 1, 2]
    k0 = g1["keys"][0]
    assert fingerprint(bytes.fromhex(k0["key"])) == k0["fingerprint"]
    assert "key" not in g2["keys"][0]
    assert cli("--proxy", A[0], "--bind", TN1, "close", "--handle", h) == {
        "status": 0,
        "status_name": "SUCCESSFUL",
    }


def test_forged_sync_and_garbage_are_counted_not_fatal(daemons: Path) -> None:
    # a datagram from the peer's sync host (not its sync port), without the right HMAC
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.55.6.15", 0))
        s.sendto(b"QS\x01\x03" + bytes(8) + bytes(68) + bytes(32), ("127.55.6.11", SYNC))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((TN1, 0))
        s.sendto(b"\x01\x04\x00\x00garbage", A)
        s.sendto(b"IQ\x01\x01\x00\x00\x00\x09\x00", ("127.55.4.2", IDQ))
        s.settimeout(5)
        assert s.recv(100) == b"IQ\x01\xff\x00\x00\x00\x09\x03"  # IDQ3P ERROR, bad request

    async def still_works() -> None:
        async with Etsi004Client(A, (TN1, 0)) as a:
            st, h = await a.open("127.55.1.5")
            assert st == etsi.Status.SUCCESSFUL
            assert (await a.get_key(h))[0] == etsi.Status.SUCCESSFUL
            log = _read(daemons / "etsiA.log")
            assert "sync frame rejected" in log and "malformed request" in log

    asyncio.run(still_works())


def test_km_status_and_show_qkd_links(daemons: Path) -> None:
    """The key manager of the paper's one link: KM status to its node, nothing to others,
    and ``show qkd links json`` on its CLI."""
    argv = [sys.executable, "-m", "qkd_proxy.client", "--proxy", A[0], "--status-port"]
    argv += [str(STATUS), "--deadline", "10"]
    end = time.monotonic() + 10
    while True:
        p = subprocess.run(
            [*argv, "--bind", TN1, "links"], capture_output=True, text=True, cwd=ROOT
        )
        (link,) = json.loads(p.stdout)["links"]
        if link["up"] or time.monotonic() > end:
            break
        time.sleep(0.5)
    assert link["name"] == "etsiA-etsiB" and link["far_site"] == "127.55.1.5" and link["up"]
    # this end's stream: half the link's 13.7 Mb/s and 64 Mib, as the emulator says
    assert link["rate_bps"] == 6850000 and link["buffer_bits"] == 33554432
    p = subprocess.run(
        [*argv[:-2], "--deadline", "1.5", "--bind", "127.55.2.99", "links"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert p.returncode == 2  # a stranger gets no answer
    with socket.create_connection(("127.55.2.11", CLI), timeout=10) as c:
        c.sendall(b"show qkd links json\r\nquit\r\n")
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    text = out.decode()
    rows = json.loads(text[text.index("[") : text.rindex("]") + 1])
    assert rows[0]["name"] == "etsiA-etsiB" and rows[0]["far_km"] == "etsiB"
    assert rows[0]["rate_bps"] == 6850000 and rows[0]["link_rate_bps"] == 13700000
