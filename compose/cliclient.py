"""A client for the daemons' telnet CLI: a line protocol on TCP with a prompt (``tn1# ``).

The client connects, reads until a prompt appears (any last line ending in ``#``, ``>`` or
``$`` plus optional space, after which the server stays quiet for 50 ms; the first one
seen is then the exact prompt), sends one command
line, reads until that prompt comes back, and returns what came in between, without the
echoed command. Telnet option negotiation (IAC sequences), if the server sends any, is
refused and stripped; ``\\r\\n`` becomes ``\\n``. A server that closes the connection after
answering is fine too.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import time

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
QUIET = 0.05  # seconds without data after a candidate first prompt
PROMPT = re.compile(r"(?:^|\n)([^\n]*?[#>$] ?)$")


class CliError(RuntimeError):
    pass


class _Conn:
    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + timeout
        self.buf = ""
        self.closed = False

    def _strip_telnet(self, data: bytes) -> bytes:
        out = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b != IAC:
                out.append(b)
                i += 1
                continue
            if i + 1 >= len(data):
                break
            cmd = data[i + 1]
            if cmd in (DO, DONT, WILL, WONT) and i + 2 < len(data):
                opt = data[i + 2]
                if cmd in (DO, WILL):
                    reply = WONT if cmd == DO else DONT
                    self.sock.sendall(bytes([IAC, reply, opt]))
                i += 3
            elif cmd == SB:
                end = data.find(bytes([IAC, SE]), i)
                i = len(data) if end < 0 else end + 2
            elif cmd == IAC:
                out.append(IAC)
                i += 2
            else:
                i += 2
        return bytes(out)

    def _more_within(self, seconds: float) -> bool:
        r, _, _ = select.select([self.sock], [], [], seconds)
        return bool(r)

    def read_more(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CliError(f"timed out; received so far: {self.buf[-200:]!r}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise CliError(f"timed out; received so far: {self.buf[-200:]!r}") from None
        if not data:
            self.closed = True
            return False
        text = self._strip_telnet(data).decode("utf-8", "replace").replace("\r\n", "\n")
        self.buf += text.replace("\r", "").replace("\x00", "")
        return True

    def until_prompt(self, prompt: str | None) -> tuple[str, str]:
        """Read until the buffer ends with a prompt; returns (text before it, prompt)."""
        while True:
            if prompt is not None:
                if self.buf.endswith(prompt):
                    text = self.buf[: -len(prompt)]
                    self.buf = ""
                    return text, prompt
            else:
                m = PROMPT.search(self.buf)
                # a candidate prompt counts once the server has gone quiet: a banner line
                # read only up to a "#" must not be taken for the prompt
                if m and not self._more_within(QUIET):
                    text = self.buf[: m.start(1)]
                    self.buf = ""
                    return text, m.group(1)
            if not self.read_more():
                text, self.buf = self.buf, ""
                return text, prompt or ""


def run_command(
    sock: socket.socket, address: tuple[str, int], command: str, timeout: float = 10.0
) -> str:
    """Connect ``sock`` to ``address``, run ``command``, return its output."""
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as e:
            raise CliError(f"cannot connect to {address[0]}:{address[1]}: {e}") from None
        conn = _Conn(sock, timeout)
        _, prompt = conn.until_prompt(None)
        if conn.closed:
            raise CliError(f"{address[0]}:{address[1]} closed the connection before a prompt")
        sock.sendall(command.encode() + b"\n")
        text, _ = conn.until_prompt(prompt)
        if not conn.closed:
            with contextlib.suppress(OSError):
                sock.sendall(b"exit\n")
    lines = text.split("\n")
    if lines and lines[0].strip() == command.strip():
        lines = lines[1:]  # the server echoed the command
    return "\n".join(lines).rstrip("\n")
