"""The ETSI GS QKD 014 core (gmpls.qkd.etsi014) wired in memory to real key managers
(qkd_proxy.km, tests/support/km_net.py): a direct link and a relay through a trusted site,
on a virtual clock, no sockets. Key IDs round-trip; 014 and 004 share the pool; every
refusal is the spec's code and takes no key."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmpls.core import Tick
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd.etsi004 import Status
from gmpls.qkd.etsi014 import keyid
from gmpls.qkd.etsi014.core import ADDR, NODE, Etsi014Config, Etsi014Core, Sae
from gmpls.qkd.etsi014.events import Call004, HttpRequest, HttpResponse, Log, Reply004
from qkd_proxy.events import Channel, Send
from tests.support.km_net import KmNet, site
from tests.support.sim import Alarm

SAES = {
    "n1": Sae("n1", "km1", site(1)),
    "n2": Sae("n2", "km2", site(2)),
    "n3": Sae("n3", "km3", site(3)),
    "app2": Sae("app2", "km2", site(2)),  # a second SAE at site 2
}
RID = itertools.count(1)


class Net014:
    """Key managers in memory, each with its 014 core wired to it as :data:`ADDR`."""

    def __init__(self, n: int, links: list[tuple[int, int]]) -> None:
        self.net = net = KmNet(n, links)
        self.cores: dict[int, Etsi014Core] = {}
        self.alarms: dict[int, Alarm] = {}
        for i in net.km:
            km = net.km[i]
            cfg = Etsi014Config(f"km{i}", SAES)
            sites = {f"km{j}": site(j) for j in net.km}
            self.cores[i] = Etsi014Core(
                cfg, lambda k: bytes(k), lambda kme, km=km, s=sites: km.stock_toward(s[kme])
            )
            self.alarms[i] = Alarm(net.sim, lambda _at, i=i: self._feed(i, Tick()))
        self.responses: dict[int, HttpResponse] = {}
        self.logs: list[Log] = []
        self.calls: list[bytes] = []
        self.stream = itertools.count(1)
        route = net._route

        def _route(i: int, a: Send) -> None:
            if a.channel is Channel.NORTH and a.addr == ADDR:
                self._feed(i, Reply004(a.data))
            else:
                route(i, a)

        net._route = _route  # type: ignore[method-assign]

    def _feed(self, i: int, ev: Any) -> None:
        for a in self.cores[i].handle(ev, self.net.now):
            if isinstance(a, Call004):
                self.calls.append(a.data)
                self.net.send(i, ADDR, Channel.NORTH, a.data)
            elif isinstance(a, HttpResponse):
                self.responses[a.stream] = a
            else:
                self.logs.append(a)
        self.alarms[i].set(self.cores[i].next_timer())

    def http(
        self,
        i: int,
        sae: str | None,
        method: str,
        path: str,
        query: tuple[tuple[str, str], ...] = (),
        body: Any = None,
    ) -> HttpResponse:
        s = next(self.stream)
        raw = json.dumps(body).encode() if body is not None else b""
        self._feed(i, HttpRequest(s, sae, method, path, query, raw))
        assert self.net.run_until(lambda: s in self.responses, 30.0), path
        return self.responses.pop(s)

    def enc(self, i: int, master: str, slave: str, n: int = 2, size: int = 256) -> HttpResponse:
        return self.http(
            i, master, "POST", f"/api/v1/keys/{slave}/enc_keys", body={"number": n, "size": size}
        )

    def dec(self, i: int, slave: str, master: str, ids: list[str]) -> HttpResponse:
        body = {"key_IDs": [{"key_ID": k} for k in ids]}
        return self.http(i, slave, "POST", f"/api/v1/keys/{master}/dec_keys", body=body)


def _keys(r: HttpResponse) -> dict[str, bytes]:
    assert r.status == 200, r.body
    return {k["key_ID"]: base64.b64decode(k["key"]) for k in r.body["keys"]}


@pytest.fixture(scope="module")
def direct() -> Net014:
    return Net014(2, [(1, 2)])


def test_enc_keys_then_dec_keys_give_the_same_keys(direct: Net014) -> None:
    a = _keys(direct.enc(1, "n1", "n2", 3))
    assert len(a) == 3 and all(len(k) == 32 for k in a.values())
    assert len(set(a.values())) == 3
    for kid in a:
        assert uuid.UUID(kid).version == 8
    # the slave asks in another order, and one at a time with GET
    ids = list(a)
    b = _keys(direct.dec(2, "n2", "n1", [ids[2], ids[0]]))
    assert b == {ids[2]: a[ids[2]], ids[0]: a[ids[0]]}
    r = direct.http(2, "n2", "GET", "/api/v1/keys/n1/dec_keys", (("key_ID", ids[1]),))
    assert _keys(r) == {ids[1]: a[ids[1]]}
    # GET enc_keys: the defaults (one key of key_size bits)
    g = _keys(direct.http(1, "n1", "GET", "/api/v1/keys/n2/enc_keys"))
    assert [len(k) for k in g.values()] == [32]


def test_a_key_id_is_delivered_once_and_only_to_its_slave(direct: Net014) -> None:
    a = _keys(direct.enc(1, "n1", "n2", 2, size=128))
    ids = list(a)
    # another SAE of the slave's site: the key ID names nothing for it, and nothing is taken
    r = direct.dec(2, "app2", "n1", ids)
    assert r.status == 400 and r.body["message"] == "unknown key_ID"
    assert _keys(direct.dec(2, "n2", "n1", ids)) == a
    again = direct.dec(2, "n2", "n1", ids[:1])
    assert again.status == 400 and again.body["message"] == "key_ID already delivered"
    # a well-formed UUID of no session, and one of another layout
    forged = str(keyid.encode(keyid.KeyId(12345, 16, 0)))
    assert direct.dec(2, "n2", "n1", [forged]).status == 400
    assert direct.dec(2, "n2", "n1", [str(uuid.uuid4())]).status == 400


def test_unauthorised_callers_get_401(direct: Net014) -> None:
    for sae in (None, "mallory", "n2"):  # no certificate, unknown, served elsewhere
        r = direct.http(1, sae, "GET", "/api/v1/keys/n2/enc_keys")
        assert r.status == 401 and "message" in r.body, sae
    r = direct.http(2, "n1", "GET", "/api/v1/keys/n2/status")
    assert r.status == 401


@pytest.mark.parametrize(
    "method,path,query,body,status",
    [
        ("GET", "/api/v1/keys/n2/enc_keys", (("size", "12"),), None, 400),
        ("GET", "/api/v1/keys/n2/enc_keys", (("number", "0"),), None, 400),
        ("GET", "/api/v1/keys/n2/enc_keys", (("number", "x"),), None, 400),
        ("GET", "/api/v1/keys/n2/enc_keys", (("size", "9000"),), None, 400),
        ("POST", "/api/v1/keys/n2/enc_keys", (), {"number": 5000}, 400),
        ("POST", "/api/v1/keys/n2/enc_keys", (), {"number": True}, 400),
        ("POST", "/api/v1/keys/n2/enc_keys", (), {"extension_mandatory": [{"x": 1}]}, 400),
        ("POST", "/api/v1/keys/n2/enc_keys", (), {"additional_slave_SAE_IDs": ["n3"]}, 400),
        ("POST", "/api/v1/keys/n2/enc_keys", (), [1], 400),
        ("GET", "/api/v1/keys/nobody/enc_keys", (), None, 400),
        ("GET", "/api/v1/keys/n1/enc_keys", (), None, 400),  # same KME: no QKD link
        ("GET", "/api/v1/keys/n2/dec_keys", (), None, 400),  # no key_ID
        ("POST", "/api/v1/keys/n2/dec_keys", (), {"key_IDs": []}, 400),
        ("POST", "/api/v1/keys/n2/dec_keys", (), {"key_IDs": [{"id": 1}]}, 400),
        ("POST", "/api/v1/keys/n2/status", (), None, 405),
        ("GET", "/api/v1/keys/n2/other", (), None, 404),
    ],
)
def test_bad_requests(
    direct: Net014, method: str, path: str, query: Any, body: Any, status: int
) -> None:
    before = len(direct.calls)
    r = direct.http(1, "n1", method, path, query, body)
    assert r.status == status and isinstance(r.body["message"], str)
    assert len(direct.calls) == before  # refused before any ETSI 004 call


def test_bad_json_body(direct: Net014) -> None:
    s = next(direct.stream)
    direct._feed(1, HttpRequest(s, "n1", "POST", "/api/v1/keys/n2/enc_keys", (), b"{no"))
    assert direct.responses.pop(s).status == 400


def test_status_reflects_the_stock(direct: Net014) -> None:
    r = direct.http(1, "n1", "GET", "/api/v1/keys/n2/status")
    assert r.status == 200
    b = r.body
    stock, buffer = direct.net.km[1].stock_toward(site(2))
    assert b["stored_key_count"] == min(stock, buffer) // 256
    assert b["max_key_count"] == buffer // 256
    assert b["stored_key_count"] > 0
    assert (b["source_KME_ID"], b["target_KME_ID"]) == ("km1", "km2")
    assert (b["master_SAE_ID"], b["slave_SAE_ID"]) == ("n1", "n2")
    assert (b["key_size"], b["min_key_size"], b["max_key_size"]) == (256, 8, 8192)
    assert b["max_SAE_ID_count"] == 0 and b["max_key_per_request"] == 1024


def test_014_and_004_draw_from_one_pool(direct: Net014) -> None:
    net = direct.net
    o = net.call(1, etsi.Open(next(RID), site(2), etsi.QoS(32)))
    assert isinstance(o, etsi.OpenReply) and o.status == Status.SUCCESSFUL
    k004, k014 = [], []
    for _ in range(5):
        for _ in range(20):
            g = net.call(1, etsi.GetKey(next(RID), o.key_handle))
            assert isinstance(g, etsi.GetKeyReply) and g.status == Status.SUCCESSFUL
            k004.append(g.key)
        k014 += _keys(direct.enc(1, "n1", "n2", 20)).values()
    assert len(set(k004) | set(k014)) == 200
    text = repr([(x.event, dict(x.fields)) for x in net.logs + direct.logs])
    for k in k004 + k014:
        assert k.hex() not in text and repr(k) not in text


def test_a_004_sae_cannot_join_a_014_session(direct: Net014) -> None:
    a = _keys(direct.enc(1, "n1", "n2", 1))
    k = keyid.decode(next(iter(a)))
    assert k is not None
    h = keyid.session_handle(k.nonce, "n1", "n2", k.size_bytes)
    r = direct.net.call(2, etsi.Open(next(RID), NODE, etsi.QoS(32), h))
    assert r.status == Status.NO_QKD_CONNECTION
    assert _keys(direct.dec(2, "n2", "n1", list(a))) == a


def test_a_request_times_out_with_503() -> None:
    net = Net014(2, [(1, 2)])
    net.net.silent.add(2)  # the far key manager is gone
    net.net.sim.run(5.0)
    r = net.enc(1, "n1", "n2", 1)
    assert r.status == 503 and "message" in r.body


def test_a_014_key_through_a_trusted_site() -> None:
    net = Net014(3, [(1, 2), (2, 3)])
    a = _keys(net.enc(1, "n1", "n3", 4))
    assert _keys(net.dec(3, "n3", "n1", list(a))) == a
    assert net.net.km[2].all_counters()["relay_keys"] >= 4
    assert net.dec(3, "n3", "n1", list(a)[:1]).status == 400


@given(st.integers(0, 2**64 - 1), st.integers(1, keyid.MAX_SIZE_BYTES), st.integers(0, 2**32 - 1))
def test_key_ids_round_trip(nonce: int, size: int, index: int) -> None:
    k = keyid.KeyId(nonce, size, index)
    u = keyid.encode(k)
    assert u.version == 8 and u.variant == uuid.RFC_4122
    assert keyid.decode(str(u)) == k
    assert keyid.decode(str(u).upper()) == k
