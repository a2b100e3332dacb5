"""The key manager's ETSI GS QKD 014 server: HTTPS with mutual TLS (aiohttp), a thin shell
around :class:`gmpls.qkd.etsi014.core.Etsi014Core` (docs/etsi014.md).

The HTTP library parses requests; the TLS layer verifies the client certificate against
the testbed's CA (``ca.pem``) when one is given (a certificate of another CA fails the
handshake; none at all is answered 401 by the core); the certificate's common name is the
request's SAE ID. Every request becomes one :class:`HttpRequest` for the core, whose
:class:`HttpResponse` is sent back as JSON. The core's ETSI 004 calls go into the key
manager (:class:`qkd_proxy.daemon.Shell` does the wiring). Nothing here reads a key: the
response body is serialised by the HTTP library and never logged.

``SSLKEYLOGFILE`` in the environment makes the server write its TLS secrets there (NSS key
log format), so Wireshark can decrypt a capture (docs/wireshark.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from daemonkit import netns
from gmpls.qkd.etsi014.events import HttpRequest, HttpResponse

log = logging.getLogger("qkd_proxy")
#: the largest request body read (a dec_keys of 1,024 key IDs is about 60 kB)
MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class Pki:
    """The files of a key manager's TLS identity: the CA, its certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, folder: Path, name: str) -> Pki:
        return cls(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key")


def tls_context(pki: Pki) -> ssl.SSLContext:
    """Server side of mutual TLS: our certificate, client certificates checked against the
    CA (optional at the TLS layer so that a request without one gets the spec's 401)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.cert), str(pki.key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def sae_of(peercert: Any) -> str | None:
    """The common name of a verified client certificate (None: no certificate)."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return str(v)
    return None


class Etsi014Server:
    """HTTPS on ``addrs`` x ``port``; ``feed`` gives a request to the core (through the
    shell); :meth:`answer` completes it."""

    def __init__(self, feed: Callable[[HttpRequest], None], pki: Pki) -> None:
        self.feed = feed
        self.pki = pki
        self.pending: dict[int, asyncio.Future[HttpResponse]] = {}
        self._ids = itertools.count(1)
        self.runner: web.AppRunner | None = None

    async def start(self, addrs: list[str], port: int) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        ctx = tls_context(self.pki)
        for a in addrs:
            sock = netns.listening(a, port)
            await web.SockSite(self.runner, sock, ssl_context=ctx).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        for f in self.pending.values():
            f.cancel()

    def answer(self, r: HttpResponse) -> None:
        f = self.pending.pop(r.stream, None)
        if f is not None and not f.done():
            f.set_result(r)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        t = request.transport
        sae = sae_of(t.get_extra_info("peercert") if t is not None else None)
        body = await request.read()
        stream = next(self._ids)
        fut: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self.pending[stream] = fut
        try:
            self.feed(
                HttpRequest(
                    stream, sae, request.method, request.path, tuple(request.query.items()), body
                )
            )
            r = await fut
        finally:
            self.pending.pop(stream, None)
        return web.json_response(dict(r.body), status=r.status)
