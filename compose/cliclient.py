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
import os
import re
import select
import socket
import sys
import time
from typing import Any

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


#: the last line of an answer once ``terminal status`` is on (daemonkit/cli.py)
STATUS_PREFIX = "@status "


class CliOutput(str):
    """A command's output (a ``str``) with the daemon's result status: ``status`` 0 when
    the command succeeded, 1 when it did not (``% Unknown command``, ``% error``, a
    service that ended failed ...)."""

    status: int

    def __new__(cls, text: str, status: int = 0) -> CliOutput:
        out = super().__new__(cls, text)
        out.status = status
        return out


def split_status(text: str) -> tuple[str, int | None]:
    """(the answer without its ``@status N`` line, N); N is None when there is none."""
    body = text.rstrip("\n")
    head, _, last = body.rpartition("\n")
    if last.startswith(STATUS_PREFIX) and last[len(STATUS_PREFIX) :].strip().isdigit():
        return head, int(last[len(STATUS_PREFIX) :])
    return text, None


def _guess_status(text: str) -> int:
    """The status of an answer from a daemon that sends none: its ``%`` messages fail."""
    return 1 if text.lstrip().startswith("%") else 0


class Session:
    """One connection to a daemon's CLI: the prompt, then any number of commands, each
    answered with its :class:`CliOutput` (``terminal status`` asked for once)."""

    def __init__(self, sock: socket.socket, address: tuple[str, int], timeout: float) -> None:
        self.sock, self.address, self.timeout = sock, address, timeout
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as e:
            raise CliError(f"cannot connect to {address[0]}:{address[1]}: {e}") from None
        self.conn = _Conn(sock, timeout)
        _, self.prompt = self.conn.until_prompt(None)
        if self.conn.closed:
            raise CliError(f"{address[0]}:{address[1]} closed the connection before a prompt")
        self.with_status = False

    def _ask(self, command: str) -> str:
        self.conn.deadline = time.monotonic() + self.timeout
        self.sock.sendall(command.encode() + b"\n")
        text, _ = self.conn.until_prompt(self.prompt)
        lines = text.split("\n")
        if lines and lines[0].strip() == command.strip():
            lines = lines[1:]  # the server echoed the command
        return "\n".join(lines).rstrip("\n")

    def ask_status(self) -> None:
        """Turn the daemon's result status on (a daemon that does not know it says so
        with a ``%`` message: its answers' statuses are then guessed)."""
        _, status = split_status(self._ask("terminal status"))
        self.with_status = status is not None

    def run(self, command: str) -> CliOutput:
        text = self._ask(command)
        status: int | None = None
        if self.with_status:
            text, status = split_status(text)
        return CliOutput(text, _guess_status(text) if status is None else status)

    def complete(self, line: str) -> list[str]:
        if not self.with_status:
            return []
        text, _ = split_status(self._ask(f"terminal complete {line}"))
        return [w for w in text.split("\n") if w and not w.startswith("%")]

    def close(self) -> None:
        if not self.conn.closed:
            with contextlib.suppress(OSError):
                self.sock.sendall(b"exit\n")
        self.sock.close()


def run_command(
    sock: socket.socket, address: tuple[str, int], command: str, timeout: float = 10.0
) -> CliOutput:
    """Connect ``sock`` to ``address``, run ``command``, return its output and status."""
    with sock:
        s = Session(sock, address, timeout)
        try:
            s.ask_status()
            if s.conn.closed:
                raise CliError(f"{address[0]}:{address[1]} closed the connection")
            return s.run(command)
        finally:
            s.close()


# --- the interactive session (qkdnet cli HOST) --------------------------------------------

#: where the interactive session keeps its history (``QKDNET_HISTORY`` overrides it)
HISTORY = "~/.qkdnet_history"


def _history_file() -> str:
    return os.path.expanduser(os.environ.get("QKDNET_HISTORY", HISTORY))


def _setup_readline(session: Session) -> Any:
    """Tab completion from the daemon's candidates, ``?`` answered at once, history."""
    try:
        import readline
    except ImportError:  # no readline on this Python: plain input() still works
        return None

    def complete(text: str, state: int) -> str | None:
        if state == 0:
            line = readline.get_line_buffer()[: readline.get_endidx()]
            try:
                words = session.complete(line)
            except (CliError, OSError):
                words = []
            complete.found = [w + " " for w in words if w.startswith(text)]  # type: ignore[attr-defined]
        found: list[str] = complete.found  # type: ignore[attr-defined]
        return found[state] if state < len(found) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t")
    readline.parse_and_bind("tab: complete")
    # '?' inserts itself and sends the line (vtysh's context help, no Enter needed)
    readline.parse_and_bind(r'"?": "\C-v?\C-j"')
    with contextlib.suppress(OSError):
        readline.read_history_file(_history_file())
    readline.set_history_length(1000)
    return readline


def interactive(sock: socket.socket, address: tuple[str, int], timeout: float = 30.0) -> int:
    """``qkdnet cli HOST``: a session with the daemon's prompt, completion (Tab), context
    help (``?``), history (``~/.qkdnet_history``); ``exit``, ``quit`` or Ctrl-D leave.
    Its status: 0, or 1 when the daemon went away."""
    # input() edits a line with readline only when sys.stdout is the process's own (qkdnet
    # wraps it against broken pipes)
    saved, sys.stdout = sys.stdout, sys.__stdout__ or sys.stdout
    try:
        return _session(sock, address, timeout)
    finally:
        sys.stdout = saved


def _session(sock: socket.socket, address: tuple[str, int], timeout: float) -> int:
    with sock:
        s = Session(sock, address, timeout)
        s.ask_status()
        rl = _setup_readline(s)
        again = ""
        try:
            while True:
                if rl is not None and again:
                    rl.set_startup_hook(lambda t=again: rl.insert_text(t))
                try:
                    line = input(s.prompt)
                except EOFError:
                    print()
                    return 0
                except KeyboardInterrupt:
                    print()
                    continue
                finally:
                    if rl is not None:
                        rl.set_startup_hook(None)
                again = ""
                if line.strip() in ("exit", "quit", "end"):
                    return 0
                if not line.strip():
                    continue
                out = s.run(line)
                if out:
                    print(out)
                if s.conn.closed:
                    print(f"% {address[0]}:{address[1]} closed the connection")
                    return 1
                if line.rstrip().endswith("?"):  # the line again, without its '?'
                    again = line.rstrip()[:-1]
                    if rl is not None and rl.get_current_history_length() > 0:
                        rl.remove_history_item(rl.get_current_history_length() - 1)
        finally:
            if rl is not None:
                with contextlib.suppress(OSError):
                    rl.write_history_file(_history_file())
            s.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m compose.cliclient ADDRESS PORT [COMMAND ...]``: one command (its
    output; exit status 1 when it failed), or without a command an interactive session.
    What ``qkdnet cli`` runs inside a container."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or not args[1].isdigit():
        print("usage: python -m compose.cliclient ADDRESS PORT [COMMAND ...]", file=sys.stderr)
        return 2
    address = (args[0], int(args[1]))
    try:
        if len(args) == 2:
            return interactive(socket.socket(), address)
        out = run_command(socket.socket(), address, " ".join(args[2:]))
    except CliError as e:
        print(f"cli: {e}", file=sys.stderr)
        return 2
    print(out)
    return out.status


if __name__ == "__main__":
    sys.exit(main())
