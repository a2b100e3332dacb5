"""ETSI GS QKD 014 on the paper topology in namespaces (prefix ``q4``): the issue's proofs.

Only the QKD daemons run (both emulators, both key managers, with the PKI ``up`` made in
``RUN/pki``). tn1 and tn5 call their key managers' HTTPS servers with curl and with an
independent client from PyPI (etsi-qkd-014-client), in their own namespaces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from compose import pki
from compose.backend import quiet
from compose.netns import NetnsTestbed, teardown
from tests.qkd.test_qkd_netns import PAPER, TN5_RID, cli, start_qkd, stop_qkd

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]
A, B = "https://10.2.1.11", "https://10.2.2.11"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsTestbed]:
    teardown("q4", progress=quiet)
    tb = NetnsTestbed(PAPER, tmp_path_factory.mktemp("q4lab"), prefix="q4", progress=quiet)
    codes: dict[str, int | None] = {}
    try:
        tb.up(start_daemons=False)
        start_qkd(tb)
        yield tb
    finally:
        codes = stop_qkd(tb)
        tb.down()
    assert all(c == 0 for c in codes.values()), codes


def curl(
    lab: NetnsTestbed, host: str, url: str, sae: str | None = None, data: Any = None, **files: Path
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of curl in ``host``'s namespace with ``sae``'s certificate
    (default: the host's; ``files`` may replace cert, key, cacert)."""
    d = lab.run_dir / "pki"
    sae = sae or host
    f = {"cert": d / f"{sae}.pem", "key": d / f"{sae}.key", "cacert": d / "ca.pem", **files}
    argv = ["curl", "-sS", "-w", "\n%{http_code}", "--max-time", "60"]
    for k, v in f.items():
        if v is not None:
            argv += [f"--{k}", str(v)]
    if data is not None:
        argv += ["-H", "Content-Type: application/json", "--data", json.dumps(data)]
    p = lab.exec(host, [*argv, url], capture_output=True, text=True, timeout=90)
    if p.returncode != 0:
        return -p.returncode, {"error": p.stderr}
    body, _, code = p.stdout.rpartition("\n")
    return int(code), json.loads(body)


def keys(r: tuple[int, dict[str, Any]]) -> dict[str, bytes]:
    code, body = r
    assert code == 200, body
    return {k["key_ID"]: base64.b64decode(k["key"]) for k in body["keys"]}


def test_curl_from_tn1_and_tn5(lab: NetnsTestbed) -> None:
    a = keys(curl(lab, "tn1", f"{A}/api/v1/keys/tn5/enc_keys?number=2"))
    assert len(a) == 2 and all(len(k) == 32 for k in a.values())
    ids = list(a)
    b = keys(curl(lab, "tn5", f"{B}/api/v1/keys/tn1/dec_keys?key_ID={ids[0]}"))
    body = {"key_IDs": [{"key_ID": ids[1]}]}
    b |= keys(curl(lab, "tn5", f"{B}/api/v1/keys/tn1/dec_keys", data=body))
    assert b == a
    # delivered once: the same ID again, and an ID of no key, are 400
    code, err = curl(lab, "tn5", f"{B}/api/v1/keys/tn1/dec_keys?key_ID={ids[0]}")
    assert code == 400 and err["message"] == "key_ID already delivered"
    unknown = "550e8400-e29b-41d4-a716-446655440000"
    code, err = curl(lab, "tn5", f"{B}/api/v1/keys/tn1/dec_keys?key_ID={unknown}")
    assert code == 400 and "key" not in err
    logs = b"".join((lab.run_dir / f"{h}.log").read_bytes() for h in ("etsiA", "etsiB"))
    for k in a.values():
        assert k.hex().encode() not in logs and base64.b64encode(k) not in logs


CLIENT = """
import base64, json, sys
from etsi_qkd_014_client import QKD014Client
host, cert, key, ca, role, arg = sys.argv[1:]
c = QKD014Client(host, cert, key, ca)
if role == "master":
    code, st = c.get_status("tn5")
    code2, kc = c.get_key("tn5", number=3, size=512)
    out = {"status": [code, st.stored_key_count, st.key_size, st.target_kme_id], "code": code2,
           "keys": {k.key_id: k.key for k in kc.keys}}
else:
    code2, kc = c.get_key_with_key_IDs("tn1", json.loads(arg))
    out = {"code": code2, "keys": {k.key_id: k.key for k in kc.keys}}
print(json.dumps(out))
"""


def pypi_client(lab: NetnsTestbed, host: str, kme: str, role: str, arg: str = "") -> Any:
    d = lab.run_dir / "pki"
    argv = [sys.executable, "-c", CLIENT, kme, str(d / f"{host}.pem"), str(d / f"{host}.key")]
    p = lab.exec(
        host, [*argv, str(d / "ca.pem"), role, arg], capture_output=True, text=True, timeout=90
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_the_pypi_client_gets_the_same_keys_at_both_ends(lab: NetnsTestbed) -> None:
    m = pypi_client(lab, "tn1", "10.2.1.11", "master")
    assert m["status"][0] == 200 and m["status"][2:] == [256, "etsiB"]
    assert m["status"][1] > 0 and m["code"] == 200 and len(m["keys"]) == 3
    s = pypi_client(lab, "tn5", "10.2.2.11", "slave", json.dumps(list(m["keys"])))
    assert s["code"] == 200 and s["keys"] == m["keys"]
    assert all(len(base64.b64decode(k)) == 64 for k in s["keys"].values())


def _foreign_cert(lab: NetnsTestbed, cn: str, own_ca: bool) -> tuple[Path, Path]:
    """A client certificate for ``cn``, issued by the testbed's CA or by another one."""
    d = lab.run_dir
    if own_ca:
        ca_key = serialization.load_pem_private_key((d / "pki" / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((d / "pki" / "ca.pem").read_bytes())
    else:
        ca_key, ca_cert = pki.make_ca(lab.topology)
    cert, key = pki.issue(ca_key, ca_cert, cn)  # type: ignore[arg-type]
    tag = "own" if own_ca else "other"
    (d / f"{cn}-{tag}.pem").write_bytes(cert)
    (d / f"{cn}-{tag}.key").write_bytes(key)
    (d / f"{cn}-{tag}.key").chmod(0o600)
    return d / f"{cn}-{tag}.pem", d / f"{cn}-{tag}.key"


def test_a_third_party_gets_401_or_no_handshake_and_no_key(lab: NetnsTestbed) -> None:
    a = keys(curl(lab, "tn1", f"{A}/api/v1/keys/tn5/enc_keys?number=1"))
    (kid,) = a
    url = f"{B}/api/v1/keys/tn1/dec_keys?key_ID={kid}"
    # a certificate of our CA for an SAE that is none of ours; tn1's own at tn5's KME;
    # no certificate at all
    cert, key = _foreign_cert(lab, "mallory", own_ca=True)
    for code, body in (
        curl(lab, "tn5", url, cert=cert, key=key),
        curl(lab, "tn5", url, sae="tn1"),
        curl(lab, "tn5", url, cert=None, key=None),
    ):
        assert code == 401 and "keys" not in body and isinstance(body["message"], str)
    # tn5's name on a certificate of another CA: the TLS handshake fails
    cert, key = _foreign_cert(lab, "tn5", own_ca=False)
    code, body = curl(lab, "tn5", url, cert=cert, key=key)
    assert code < 0 and "keys" not in body
    # the key is still there for tn5
    assert keys(curl(lab, "tn5", url)) == a


def test_status_reflects_the_stock(lab: NetnsTestbed) -> None:
    before = cli(lab, "tn1", "links")
    code, st = curl(lab, "tn1", f"{A}/api/v1/keys/tn5/status")
    after = cli(lab, "tn1", "links")
    assert code == 200, st
    assert (st["source_KME_ID"], st["target_KME_ID"]) == ("etsiA", "etsiB")
    assert (st["master_SAE_ID"], st["slave_SAE_ID"]) == ("tn1", "tn5")
    stocks = [
        min(x["links"][0]["stock_bits"], x["links"][0]["buffer_bits"]) // 256
        for x in (before, after)
    ]
    assert st["max_key_count"] == before["links"][0]["buffer_bits"] // 256
    assert min(stocks) - 60_000 <= st["stored_key_count"] <= max(stocks) + 60_000
    assert st["stored_key_count"] > 0


def _fp(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def test_1000_keys_through_014_never_repeat_a_key_through_004(lab: NetnsTestbed) -> None:
    o = cli(lab, "tn1", "open", "--destination", TN5_RID)
    assert o["status"] == 0
    h = o["key_handle"]
    fp004: list[str] = []
    fp014: list[str] = []
    for _ in range(4):
        g = cli(lab, "tn1", "get", "--handle", h, "--count", "250")
        assert g["status"] == 0
        fp004 += [k["fingerprint"] for k in g["keys"]]
        body = {"number": 250, "size": 256}
        fp014 += map(
            _fp, keys(curl(lab, "tn1", f"{A}/api/v1/keys/tn5/enc_keys", data=body)).values()
        )
    assert len(fp004) == len(fp014) == 1000
    assert len(set(fp004) | set(fp014)) == 2000
    assert cli(lab, "tn1", "close", "--handle", h) == {"status": 0, "status_name": "SUCCESSFUL"}
