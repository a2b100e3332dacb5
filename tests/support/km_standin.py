"""A stand-in key manager status port for tests that need a site's QKD links in OSPF-TE
without the key side running: answers :mod:`gmpls.qkd.kmstatus` LinksRequests on
``ADDRESS:5425`` with the links of a JSON file, read afresh at each request (so a test
changes the stock or removes a link by rewriting the file)::

    python -m tests.support.km_standin 10.2.1.11 links.json

The file: a list of objects with the fields of :class:`gmpls.qkd.kmstatus.LinkStatus`.
"""

from __future__ import annotations

import json
import socket
import sys
from ipaddress import IPv4Address
from pathlib import Path

from gmpls.errors import DecodeError
from gmpls.qkd import kmstatus as K


def links(path: Path) -> tuple[K.LinkStatus, ...]:
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError):
        return ()
    return tuple(
        K.LinkStatus(**{**x, "far_site": IPv4Address(x["far_site"])})  # type: ignore[arg-type]
        for x in items
    )


def main(address: str, path: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, K.PORT))
    while True:
        data, peer = s.recvfrom(2048)
        try:
            req = K.decode(data)
        except DecodeError:
            continue
        if isinstance(req, K.LinksRequest):
            s.sendto(K.encode(K.LinksReply(req.request_id, links(Path(path)))), peer)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
