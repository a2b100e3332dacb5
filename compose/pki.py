"""The testbed's ETSI 014 PKI: a CA, a server certificate per key manager, a client
certificate per SAE, fresh per bring-up (docs/etsi014.md#certificates).

``qkdnet up`` writes into ``RUN/pki/`` (mode 0700; private keys 0600, certificates 0644),
with :mod:`cryptography` (ECDSA P-256, SHA-256, valid for 30 days from an hour ago):

- ``ca.pem``, ``ca.key``: the testbed's CA (``CN=qkdnet CA <topology>``), made for this
  bring-up only; nothing is shipped, nothing outlives ``qkdnet down`` but the files;
- ``KM.pem``, ``KM.key`` for every key manager: ``CN=KM`` (its KME ID), server auth, the
  subject alternative names its 014 URLs use (every address it has toward its SAEs, and
  its name);
- ``SAE.pem``, ``SAE.key`` for every SAE (:meth:`gmpls.topology.Topology.saes`): ``CN=SAE``
  (the SAE ID the key managers read from the certificate), client auth.

Key bytes are never printed or logged.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gmpls.topology import Topology

#: the folder of the PKI in the run directory
FOLDER = "pki"
DAYS = 30


def km_addresses(topo: Topology, km: str) -> list[str]:
    """The key manager's addresses toward its SAEs (where its 014 server listens), the
    site node's domain first."""
    h = topo.host(km)
    out: list[str] = []
    for sae in (*topo.served_by(km), *h.saes):
        d = topo.shared_domain(km, sae)
        if d is not None and str(h.interfaces[d]) not in out:
            out.append(str(h.interfaces[d]))
    return out


def url(topo: Topology, km: str) -> str:
    """The key manager's 014 base URL (``https://ADDR[:PORT]``)."""
    port = topo.host(km).etsi014_port
    addr = km_addresses(topo, km)[0]
    return f"https://{addr}" if port == 443 else f"https://{addr}:{port}"


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    cn: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
    )


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    cn: str,
    server_names: list[str] | None = None,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a new leaf: a server's (``server_names``: its IP
    addresses and DNS names) or else an SAE's client certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    b = _builder(cn, ca_cert.subject, key, now)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if server_names is not None:
        alt: list[x509.GeneralName] = []
        for n in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        eku = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        eku = ExtendedKeyUsageOID.CLIENT_AUTH
    b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_ca(topo: Topology) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name(f"qkdnet CA {topo.name}")
    cert = (
        _builder(f"qkdnet CA {topo.name}", name, key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write(topo: Topology, folder: Path) -> list[Path]:
    """Make ``folder`` (0700) and a fresh CA, KM and SAE certificates and keys in it,
    replacing those of an earlier bring-up; the files written (none without a site)."""
    if not topo.sites:
        return []
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key, ca_cert = make_ca(topo)
    out = [folder / "ca.pem", folder / "ca.key"]
    _write(out[0], ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(out[1], _key_pem(ca_key), 0o600)
    leaves: list[tuple[str, list[str] | None]]
    leaves = [(km, [*km_addresses(topo, km), km]) for km in topo.sites]
    leaves += [(sae, None) for sae in topo.saes()]
    for cn, names in leaves:
        cert, key = issue(ca_key, ca_cert, cn, names)
        _write(folder / f"{cn}.pem", cert, 0o644)
        _write(folder / f"{cn}.key", key, 0o600)
        out += [folder / f"{cn}.pem", folder / f"{cn}.key"]
    return out


def files(topo: Topology) -> dict[str, tuple[str, ...]]:
    """``{host: (file name, ...)}``: what each container mounts of the PKI: a key manager
    the CA, its certificate and key; an SAE the CA, its certificate and key."""
    out: dict[str, tuple[str, ...]] = {}
    for name in (*topo.sites, *topo.saes()):
        out[name] = ("ca.pem", f"{name}.pem", f"{name}.key")
    return out


def daemon_args(topo: Topology, host: str, folder: str | os.PathLike[str]) -> list[str]:
    """A key manager's flags for its 014 server (none for other hosts)."""
    if host not in topo.sites:
        return []
    return ["--pki-dir", str(folder)]


def status(topo: Topology, folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Per key manager: its 014 URL, the paths of the CA, its certificate and key, and
    those of each SAE it serves (``saes``: SAE ID -> cert, key)."""
    f = Path(folder)
    saes = topo.saes()
    return {
        km: {
            "url": url(topo, km),
            "ca": str(f / "ca.pem"),
            "cert": str(f / f"{km}.pem"),
            "key": str(f / f"{km}.key"),
            "saes": {
                s: {"cert": str(f / f"{s}.pem"), "key": str(f / f"{s}.key")}
                for s, k in saes.items()
                if k == km
            },
        }
        for km in topo.sites
    }
