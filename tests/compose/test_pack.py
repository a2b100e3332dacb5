"""compose.pack without namespaces: members built from their flags by their package's
SPEC, started each in a context naming its namespace, logs to each member's own file, the
control requests, and the exit statuses of a member that cannot be built or started."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from compose import pack
from daemonkit import daemon as dk
from daemonkit import netns
from node_agent.xconnect import TcRules

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
log = logging.getLogger("tests.fake_daemon")


class Fake:
    """A daemon that records the namespace its start and stop ran in, and logs."""

    def __init__(self, host: str, fail: bool = False) -> None:
        self.host, self.fail = host, fail
        self.seen: list[tuple[str, str | None]] = []

    async def start(self) -> None:
        self.seen.append(("start", netns.current()))
        log.info("fake started", extra={"host": self.host})
        if self.fail:
            raise OSError(98, "Address already in use")

    async def stop(self) -> None:
        self.seen.append(("stop", netns.current()))


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Fake]:
    made: dict[str, Fake] = {}

    def build(a: Any, topo: Any) -> Fake:
        made[a.host] = Fake(a.host, fail=a.host == "tn4")
        return made[a.host]

    spec = dk.Spec("node_agent", "node", build)
    monkeypatch.setattr(pack, "spec_of", lambda package: spec)
    return made


def _member(host: str, tmp_path: Path) -> pack.Member:
    argv = ["--topology", str(PAPER), "--host", host, "--log-file", str(tmp_path / f"{host}.log")]
    return pack.Member(host, f"xx-{host}", "node_agent", argv)


@pytest.fixture
def logs() -> Any:
    handler = pack.LogByHost(logging.NullHandler())
    root = logging.getLogger()
    old, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield handler
    handler.close()
    root.handlers[:] = old
    root.setLevel(level)


def test_members_start_and_stop_in_their_namespace_and_log_to_their_own_file(
    fakes: dict[str, Fake], logs: pack.LogByHost, tmp_path: Path
) -> None:
    p = pack.Pack([_member(h, tmp_path) for h in ("tn1", "tn2")], logs)

    async def go() -> None:
        for m in p.members.values():
            p.build(m)
            await p.start(m)
        assert p.running == ["tn1", "tn2"]
        await p.stop_all()

    asyncio.run(go())
    assert fakes["tn1"].seen == [("start", "xx-tn1"), ("stop", "xx-tn1")]
    assert fakes["tn2"].seen == [("start", "xx-tn2"), ("stop", "xx-tn2")]
    assert netns.current() is None
    for h in ("tn1", "tn2"):
        records = [json.loads(line) for line in (tmp_path / f"{h}.log").read_text().splitlines()]
        assert {r.get("host") for r in records} == {h}, records
        assert "fake started" in [r["msg"] for r in records]


def test_control_stops_and_starts_one_member(
    fakes: dict[str, Fake], logs: pack.LogByHost, tmp_path: Path
) -> None:
    p = pack.Pack([_member(h, tmp_path) for h in ("tn1", "tn2")], logs)

    async def go() -> list[str]:
        for m in p.members.values():
            p.build(m)
            await p.start(m)
        answers = [
            await p.control(line)
            for line in (
                "stop tn2",
                "stop tn2",
                "list",
                "start tn2",
                "start tn2",
                "start tn9",
                "reboot tn1",
                'stop "tn1',
            )
        ]
        await p.stop_all()
        return answers

    assert asyncio.run(go()) == [
        "ok tn2 stopped",
        "error tn2 is not running",
        "ok tn1",
        "ok tn2 started",
        "error tn2 is running",
        "error tn9 is not in this pack",
        "error requests: stop HOST | start HOST [ARG ...] | list",
        "error No closing quotation",
    ]


def test_a_member_that_cannot_start_stops_the_pack_with_status_1(
    fakes: dict[str, Fake], logs: pack.LogByHost, tmp_path: Path
) -> None:
    p = pack.Pack([_member(h, tmp_path) for h in ("tn1", "tn4")], logs)
    for m in p.members.values():
        p.build(m)
    with pytest.raises(pack.BuildError) as e:
        asyncio.run(pack.run(p, None))
    assert e.value.status == dk.EXIT_START
    assert str(e.value) == "tn4: cannot start: [Errno 98] Address already in use"
    assert fakes["tn1"].seen == [("start", "xx-tn1"), ("stop", "xx-tn1")]


def test_a_member_of_the_wrong_kind_is_status_2(
    fakes: dict[str, Fake], logs: pack.LogByHost, tmp_path: Path
) -> None:
    p = pack.Pack([_member("pce", tmp_path)], logs)
    with pytest.raises(pack.BuildError) as e:
        p.build(p.members["pce"])
    assert e.value.status == dk.EXIT_CONFIG
    assert str(e.value) == "pce: host pce is of kind pce, not node"


def test_the_command_exits_2_on_a_bad_spec_file(tmp_path: Path, capsys: Any) -> None:
    spec = tmp_path / "pack.json"
    spec.write_text('{"members": [{"host": "tn1"}]}')
    old = logging.getLogger().handlers[:]
    try:
        assert pack.main([str(spec)]) == dk.EXIT_CONFIG
    finally:
        logging.getLogger().handlers[:] = old
    assert "pack.json" in capsys.readouterr().err


def test_every_daemon_package_has_a_spec_of_its_kind() -> None:
    kinds = {"node_agent": "node", "pce": "pce", "qkd_proxy": "qkd-proxy"}
    kinds["idq3p_emulator"] = "idq3p"
    for package, kind in kinds.items():
        spec = pack.spec_of(package)
        assert (spec.name, spec.kind) == (package, kind)


def test_netns_helpers_do_nothing_in_the_process_namespace() -> None:
    assert netns.current() is None
    ctx = netns.context("xx-tn1")
    assert ctx.run(netns.current) == "xx-tn1"
    tc = TcRules()
    assert tc._argv() == ["tc", "-force", "-batch", "-"]
    assert ctx.run(tc._argv) == ["tc", "-n", "xx-tn1", "-force", "-batch", "-"]
    assert netns.current() is None
    with netns.inside():
        pass


def test_a_datagram_endpoint_reads_the_largest_datagram_whole() -> None:
    """:func:`daemonkit.netns.datagram_endpoint` reads at most a UDP payload's worth (not
    asyncio's 256 KiB, an mmap per datagram), and that loses nothing: the largest
    datagram loopback carries and a small one after it arrive whole, in order. Its
    socket may queue a burst (:data:`daemonkit.netns.RECEIVE_BUFFER`)."""

    class Inbox(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.got.put_nowait(data)

    async def main() -> list[bytes]:
        rx, inbox = await netns.datagram_endpoint(Inbox, ("127.0.0.1", 0))
        tx, _ = await netns.datagram_endpoint(
            asyncio.DatagramProtocol, remote=rx.get_extra_info("sockname")
        )
        try:
            assert getattr(rx, "max_size", netns.MAX_DATAGRAM) == netns.MAX_DATAGRAM
            # a burst's worth of receive buffer (the kernel reports twice what was set;
            # without CAP_NET_ADMIN at most net.core.rmem_max)
            rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
            got = rx.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert got >= min(netns.RECEIVE_BUFFER, rmem_max)
            big = bytes(range(256)) * 255 + bytes(range(227))  # 65,507: IPv4's largest
            tx.sendto(big)
            tx.sendto(b"after")
            return [await asyncio.wait_for(inbox.got.get(), 5) for _ in range(2)]
        finally:
            tx.close()
            rx.close()

    big, small = asyncio.run(main())
    assert len(big) == 65507 and big[:256] == bytes(range(256)) and small == b"after"
