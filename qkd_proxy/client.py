"""The ETSI GS QKD 004 command line: one call per invocation, one JSON object printed::

    python -m qkd_proxy.client --proxy 10.2.1.11 open --destination 10.1.1.5
    {"status": 0, "key_handle": "9f..."}
    python -m qkd_proxy.client --proxy 10.2.1.11 get --handle 9f... --count 2
    {"status": 0, "keys": [{"index": 0, "fingerprint": "..."}, {"index": 1, ...}]}
    python -m qkd_proxy.client --proxy 10.2.1.11 close --handle 9f...
    {"status": 0}
    python -m qkd_proxy.client --proxy 10.2.1.11 links
    {"status": 0, "links": [{"name": "km1-km2", "far_site": "10.1.1.2", "up": true, ...}]}

``links`` asks the key manager's KM status port (5425, gmpls.qkd.kmstatus) for the
site's QKD links (only a node the key manager serves is answered).

It speaks through :class:`daemonkit.etsi004.Etsi004Client`, which retransmits a request
with the same request ID until the proxy answers. A fingerprint is the first 16 hex
digits of the key's SHA-256; the key itself is printed only with ``--show-key``. A
session belongs to the caller's address and key_handle, so separate invocations from one
host continue it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import secrets
import socket
import sys
import time
from typing import Any

from daemonkit import reach
from daemonkit.daemon import command_parser
from daemonkit.etsi004 import Etsi004Client
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import kmstatus
from gmpls.qkd.etsi004 import Status


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _addr(s: str, port: int) -> tuple[str, int]:
    host, _, p = s.rpartition(":") if s.count(":") == 1 else (s, "", "")
    return (host, int(p)) if p else (s, port)


def _handle(s: str) -> bytes:
    h = bytes.fromhex(s)
    if len(h) != etsi.HANDLE_LEN:
        raise argparse.ArgumentTypeError(f"a key_handle is {etsi.HANDLE_LEN} bytes (128 hex)")
    return h


def _links(a: argparse.Namespace) -> dict[str, Any]:
    """LINKS_REQUEST to the KM status port, resent every 0.5 s until answered."""
    rid = secrets.randbits(32)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if a.bind:
            s.bind((a.bind, 0))
        s.settimeout(0.5)
        end = time.monotonic() + a.deadline
        while time.monotonic() < end:
            s.sendto(kmstatus.encode(kmstatus.LinksRequest(rid)), _addr(a.proxy, a.status_port))
            try:
                msg = kmstatus.decode(s.recv(65535))
            except (TimeoutError, kmstatus.DecodeError):
                continue
            if isinstance(msg, kmstatus.LinksReply) and msg.request_id == rid:
                links = [{**dataclasses.asdict(x), "far_site": str(x.far_site)} for x in msg.links]
                return {"status": 0, "links": links}
    raise TimeoutError("no KM status reply")


async def _run(a: argparse.Namespace) -> tuple[dict[str, Any], int]:
    if a.cmd == "links":
        return _links(a), 0
    local = (a.bind, 0) if a.bind else None
    async with Etsi004Client(_addr(a.proxy, a.port), local, deadline=a.deadline) as c:
        if a.cmd == "open":
            st, h = await c.open(a.destination, a.handle, a.key_length)
            return {"status": int(st), "key_handle": h.hex()}, int(st)
        if a.cmd == "connect":
            st = await c.connect(a.handle, a.timeout_ms)
            return {"status": int(st)}, int(st)
        if a.cmd == "get":
            keys = []
            st = Status.SUCCESSFUL
            for _ in range(a.count):
                st, idx, key = await c.get_key(a.handle)
                if st != Status.SUCCESSFUL:
                    break
                k: dict[str, Any] = {"index": idx, "fingerprint": fingerprint(key)}
                if a.show_key:
                    k["key"] = key.hex()
                keys.append(k)
            return {"status": int(st), "keys": keys}, int(st)
        st = await c.close(a.handle)
        return {"status": int(st)}, int(st)


def main(argv: list[str] | None = None) -> int:
    p = command_parser("qkd_proxy.client", __doc__)
    p.add_argument("--proxy", required=True, help="proxy address[:port]")
    p.add_argument("--port", type=int, default=etsi.PORT, help="proxy port (default 5424)")
    p.add_argument("--bind", help="local address to send from")
    p.add_argument("--deadline", type=float, default=15.0, help="seconds per request")
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("open", help="QKD_OPEN")
    o.add_argument("--destination", required=True, help="the far node's router ID")
    o.add_argument("--handle", type=_handle, help="key_handle (hex) to join; default: new")
    o.add_argument("--key-length", type=int, default=32)
    c = sub.add_parser("connect", help="QKD_CONNECT_NONBLOCK / _BLOCKING (with --timeout-ms)")
    c.add_argument("--handle", type=_handle, required=True)
    c.add_argument("--timeout-ms", type=int)
    g = sub.add_parser("get", help="QKD_GET_KEY, --count times")
    g.add_argument("--handle", type=_handle, required=True)
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--show-key", action="store_true", help="print the key bytes too")
    sub.add_parser("links", help="the site's QKD links (KM status)")
    p.add_argument("--status-port", type=int, default=kmstatus.PORT, help="default 5425")
    x = sub.add_parser("close", help="QKD_CLOSE")
    x.add_argument("--handle", type=_handle, required=True)
    p.add_argument("--any-route", action="store_true", help="send even by the default route")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    far = None if a.any_route or a.bind else reach.not_local(_addr(a.proxy, a.port)[0])
    if far is not None:
        print(f"qkd_proxy.client: {far}{reach.TESTBED_HINT}", file=sys.stderr)
        return 2
    try:
        out, st = asyncio.run(_run(a))
    except TimeoutError as e:
        print(json.dumps({"status": None, "error": str(e)}))
        return 2
    if out.get("status") is not None:
        out["status_name"] = _status_name(out["status"])
    print(json.dumps(out))
    return 0 if st == 0 else 1


def _status_name(code: int) -> str:
    """The ETSI GS QKD 004 name of a status value (``INSUFFICIENT_KEY``)."""
    try:
        return Status(code).name
    except ValueError:
        return f"unknown status {code}"


if __name__ == "__main__":
    sys.exit(main())
