"""The ETSI 014 HTTPS shell (qkd_proxy/etsi014.py) on loopback, with a PKI from
compose/pki.py: the client certificate's CN becomes the request's SAE, a request without
one still reaches the core (which answers 401), a certificate of another CA fails the TLS
handshake, and the server checks out against the CA with the key manager's address."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from compose import pki
from gmpls.qkd.etsi014.events import HttpRequest, HttpResponse
from gmpls.topology import load
from qkd_proxy.etsi014 import Etsi014Server, Pki

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    topo = load(PAPER)
    d = tmp_path / "pki"
    made = pki.write(topo, d)
    assert {p.name for p in made} >= {"ca.pem", "etsiA.pem", "etsiA.key", "tn1.pem", "tn5.key"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in made if p.suffix == ".key")
    cert = x509.load_pem_x509_certificate((d / "etsiA.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.2.1.11" in [str(x) for x in san.get_values_for_type(x509.IPAddress)]
    # a key manager's server certificate for 127.0.0.1, for this test
    ca_key = pki.serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    c, k = pki.issue(ca_key, ca, "etsiA", ["127.0.0.1"])  # type: ignore[arg-type]
    (d / "etsiA.pem").write_bytes(c)
    (d / "etsiA.key").write_bytes(k)
    other_key, other = pki.make_ca(topo)
    c, k = pki.issue(other_key, other, "tn1")
    (d / "forged.pem").write_bytes(c)
    (d / "forged.key").write_bytes(k)
    return d


def _client(d: Path, who: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    if who is not None:
        ctx.load_cert_chain(str(d / f"{who}.pem"), str(d / f"{who}.key"))
    return ctx


async def test_the_certificate_names_the_sae(ca_dir: Path) -> None:
    seen: list[HttpRequest] = []

    def feed(r: HttpRequest) -> None:
        seen.append(r)
        server.answer(HttpResponse(r.stream, 401 if r.sae is None else 200, {"sae": r.sae}))

    server = Etsi014Server(feed, Pki.in_dir(ca_dir, "etsiA"))
    await server.start(["127.0.0.1"], 0)
    try:
        assert server.runner is not None
        port = server.runner.addresses[0][1]
        url = f"https://127.0.0.1:{port}/api/v1/keys/tn5/enc_keys?number=2"
        conn = aiohttp.TCPConnector(ssl=_client(ca_dir, "tn1"), limit=1)
        async with aiohttp.ClientSession(connector=conn) as s:
            for _ in range(2):  # keep-alive: one connection, two requests
                async with s.get(url) as r:
                    assert (r.status, await r.json()) == (200, {"sae": "tn1"})
            async with s.post(url.split("?")[0], json={"number": 3}) as r:
                assert r.status == 200
        assert seen[0].query == (("number", "2"),) and seen[2].body == b'{"number": 3}'
        assert seen[0].method == "GET" and seen[0].path == "/api/v1/keys/tn5/enc_keys"
        async with aiohttp.ClientSession() as s:
            async with s.get(url, ssl=_client(ca_dir, None)) as r:
                assert r.status == 401
            with pytest.raises(aiohttp.ClientError):
                async with s.get(url, ssl=_client(ca_dir, "forged")) as r:
                    await r.read()
        assert len(seen) == 4  # the forged certificate's request never reached the core
    finally:
        await server.stop()


async def test_the_pypi_client_reads_our_objects(ca_dir: Path) -> None:
    """etsi-qkd-014-client (PyPI) against the shell and a real 014 core whose key manager
    is stood in by a fake ETSI 004 endpoint: it parses our Status and Key container."""
    import asyncio
    import itertools
    from ipaddress import IPv4Address

    from etsi_qkd_014_client import QKD014Client

    from gmpls.qkd import etsi004 as etsi
    from gmpls.qkd.etsi014.core import Etsi014Config, Etsi014Core, Sae
    from gmpls.qkd.etsi014.events import Call004, Reply004

    saes = {
        "tn1": Sae("tn1", "etsiA", IPv4Address("10.1.1.1")),
        "tn5": Sae("tn5", "etsiB", IPv4Address("10.1.1.5")),
    }
    core = Etsi014Core(Etsi014Config("etsiA", saes), bytes, lambda kme: (1 << 20, 1 << 26))
    index = itertools.count()

    def km(data: bytes) -> bytes:  # the key manager: opens anything, keys 0, 1, 2...
        m = etsi.decode(data)
        if isinstance(m, etsi.Open):
            return etsi.encode(
                etsi.OpenReply(m.request_id, etsi.Status.SUCCESSFUL, m.key_handle, m.qos)
            )
        assert isinstance(m, etsi.GetKey)
        i = next(index)
        return etsi.encode(
            etsi.GetKeyReply(m.request_id, etsi.Status.SUCCESSFUL, i, bytes([i]) * 64)
        )

    def feed(ev: object) -> None:
        for a in core.handle(ev, 0.0):  # type: ignore[arg-type]
            if isinstance(a, Call004):
                feed(Reply004(km(a.data)))
            elif isinstance(a, HttpResponse):
                server.answer(a)

    server = Etsi014Server(feed, Pki.in_dir(ca_dir, "etsiA"))
    await server.start(["127.0.0.1"], 0)
    try:
        assert server.runner is not None
        port = server.runner.addresses[0][1]
        d = ca_dir
        c = QKD014Client(
            f"127.0.0.1:{port}", str(d / "tn1.pem"), str(d / "tn1.key"), str(d / "ca.pem")
        )
        code, st = await asyncio.to_thread(c.get_status, "tn5")
        assert code == 200 and (st.target_kme_id, st.key_size) == ("etsiB", 256)  # type: ignore[attr-defined]
        assert st.stored_key_count == (1 << 20) // 256  # type: ignore[attr-defined]
        code, kc = await asyncio.to_thread(c.get_key, "tn5", 3, 512)
        assert code == 200
        got = [(k.key_id, k.key) for k in kc.keys]  # type: ignore[attr-defined]
        assert len(got) == 3 and len({i for i, _ in got}) == 3
        code, err = await asyncio.to_thread(c.get_key, "tn5", 3, 12)
        assert code == 400 and err.message == "size is not a multiple of 8"  # type: ignore[attr-defined]
    finally:
        await server.stop()
