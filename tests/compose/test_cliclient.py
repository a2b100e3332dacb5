"""The telnet CLI client against small line-protocol servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from compose import cliclient
from compose.cliclient import DO, IAC, WILL, CliError, run_command

Handler = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], tuple[str, int]]]:
    threads: list[threading.Thread] = []
    socks: list[socket.socket] = []

    def start(handler: Handler) -> tuple[str, int]:
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        socks.append(lst)

        def run() -> None:
            conn, _ = lst.accept()
            with conn, contextlib.suppress(OSError):
                handler(conn)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return lst.getsockname()

    yield start
    for s in socks:
        s.close()
    for t in threads:
        t.join(timeout=5)


def lines(conn: socket.socket) -> Iterator[str]:
    buf = b""
    while True:
        data = conn.recv(1024)
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode().rstrip("\r")


def node_cli(
    prompt: bytes = b"tn1# ", echo: bool = False, chunk: int = 0, status: bool = True
) -> Handler:
    """A node-like CLI: banner, prompt, answers `show version` and `show two`; with
    ``status`` it knows `terminal status` (daemonkit/cli.py), else it answers it with
    `% unknown command` as an older daemon would."""

    def send(conn: socket.socket, data: bytes) -> None:
        if chunk:
            for i in range(0, len(data), chunk):
                conn.sendall(data[i : i + chunk])
        else:
            conn.sendall(data)

    def handler(conn: socket.socket) -> None:
        send(conn, b"QKD GMPLS node tn1\r\n\r\n" + prompt)
        with_status = False
        for line in lines(conn):
            if line == "exit":
                return
            out = b""
            if echo:
                out += line.encode() + b"\r\n"
            code = 0
            if line == "terminal status" and status:
                with_status = True
            elif line == "show version":
                out += b"qkdnet 0.1\r\n"
            elif line == "show two":
                out += b"line one\r\nline two\r\n"
            else:
                out += b"% unknown command\r\n"
                code = 1
            if with_status:
                out += b"@status %d\r\n" % code
            send(conn, out + prompt)

    return handler


def client(addr: tuple[str, int], command: str, timeout: float = 5.0) -> str:
    return run_command(socket.socket(), addr, command, timeout)


def test_one_command(server: Callable[[Handler], tuple[str, int]]) -> None:
    out = run_command(socket.socket(), server(node_cli()), "show version", 5.0)
    assert out == "qkdnet 0.1" and out.status == 0


def test_the_status_line_is_the_commands_status(
    server: Callable[[Handler], tuple[str, int]],
) -> None:
    out = run_command(socket.socket(), server(node_cli()), "show bogus", 5.0)
    assert out == "% unknown command" and out.status == 1
    assert "@status" not in out


def test_a_daemon_without_status_lines_has_its_percent_messages_fail(
    server: Callable[[Handler], tuple[str, int]],
) -> None:
    assert run_command(socket.socket(), server(node_cli(status=False)), "show two").status == 0
    assert run_command(socket.socket(), server(node_cli(status=False)), "nope").status == 1


def test_split_status() -> None:
    assert cliclient.split_status("a\nb\n@status 1\n") == ("a\nb", 1)
    assert cliclient.split_status("@status 0") == ("", 0)
    assert cliclient.split_status("a\n@status x") == ("a\n@status x", None)


def test_multi_line_output_and_echo(server: Callable[[Handler], tuple[str, int]]) -> None:
    assert client(server(node_cli(echo=True)), "show two") == "line one\nline two"


def test_byte_at_a_time(server: Callable[[Handler], tuple[str, int]]) -> None:
    assert client(server(node_cli(chunk=1)), "show two") == "line one\nline two"


def test_other_prompt_styles(server: Callable[[Handler], tuple[str, int]]) -> None:
    assert client(server(node_cli(prompt=b"pce> ")), "show version") == "qkdnet 0.1"
    assert client(server(node_cli(prompt=b"tn1(config)#")), "nope") == "% unknown command"


def test_telnet_negotiation_is_refused_and_stripped(
    server: Callable[[Handler], tuple[str, int]],
) -> None:
    got: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        conn.sendall(bytes([IAC, WILL, 1, IAC, DO, 31]) + b"tn1# ")
        data = b""
        while data.count(b"\n") < 2:
            data += conn.recv(100)
            if data.endswith(b"terminal status\n"):
                conn.sendall(b"@status 0\r\ntn1# ")
        got.append(data)
        conn.sendall(b"ok\r\n@status 0\r\ntn1# ")

    assert client(server(handler), "show x") == "ok"
    assert got[0].startswith(bytes([IAC, 254, 1, IAC, 252, 31]))  # DONT echo, WONT naws
    assert got[0].endswith(b"terminal status\nshow x\n")


def test_server_that_closes_after_answering(server: Callable[[Handler], tuple[str, int]]) -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"tn1# ")
        it = lines(conn)
        next(it)  # terminal status
        conn.sendall(b"@status 0\r\ntn1# ")
        next(it)
        conn.sendall(b"bye\r\n")

    assert client(server(handler), "quit") == "bye"


def test_no_prompt_times_out(server: Callable[[Handler], tuple[str, int]]) -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"booting...\n")
        conn.recv(10)

    with pytest.raises(CliError, match="timed out"):
        client(server(handler), "show version", timeout=0.3)


def test_connection_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(CliError, match="cannot connect"):
        client(("127.0.0.1", port), "show version")


def test_banner_split_at_a_hash_is_not_a_prompt(
    server: Callable[[Handler], tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cliclient, "QUIET", 0.5)  # far longer than the server's pause

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"node #")  # looks like a prompt until the rest arrives
        time.sleep(0.01)
        conn.sendall(b"1 of the testbed\r\ntn1# ")
        it = lines(conn)
        next(it)  # terminal status, which this server does not know
        conn.sendall(b"% unknown command\r\ntn1# ")
        next(it)
        conn.sendall(b"fine\r\ntn1# ")

    assert client(server(handler), "show version") == "fine"
