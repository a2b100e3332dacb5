"""The key index the node agent asks for (issue 12, item 8): the QE service core says which
index each QKD_GET_KEY must return and takes no key of another index; the ETSI 004
client (daemonkit/etsi004.py) raises on one, on loopback against a proxy that lies."""

from __future__ import annotations

import asyncio
import socket

import pytest

from daemonkit.etsi004 import Etsi004Client, KeyIndexError
from gmpls import qe
from gmpls.qe_service.events import (
    Create,
    EtsiClose,
    EtsiConnect,
    EtsiGetKey,
    EtsiOpen,
    EtsiReply,
    PathReply,
    RequestPath,
    ToRsvp,
)
from gmpls.qkd import etsi004 as etsi
from gmpls.rsvp.events import NeedQeSession, QeFailed
from tests.qe.test_qe_core import HANDLE, PARAMS, TN5, Node, head_up, key, lsp, of, one, route


def test_keying_asks_for_index_0_and_refuses_a_key_of_another_index() -> None:
    n = Node()
    out = n(Create(TN5, PARAMS, 10e9))
    n(PathReply(one(out, RequestPath).cid, True, route()))
    out = n(NeedQeSession(lsp(), TN5, PARAMS))
    out = n(EtsiReply(one(out, EtsiOpen).cid, 0, key_handle=HANDLE))
    get = one(out, EtsiGetKey)
    assert get.index == 0
    n(EtsiReply(one(out, EtsiConnect).cid, 1))
    out = n(EtsiReply(get.cid, 0, key_index=1, key=key(1)))  # a key, but index 1
    why = "QKD_GET_KEY index 1, expected 0"
    assert one(out, EtsiClose).key_handle == HANDLE  # what was opened is closed
    out = n(EtsiReply(one(out, EtsiClose).cid, 0))
    assert one(out, ToRsvp).event == QeFailed(lsp(), why)
    s = n.core.find("1")
    assert s.key is None and s.key_index is None and why in s.error


def test_a_refresh_asks_for_the_next_index_and_never_takes_another() -> None:
    n = Node()
    sid, _, _ = head_up(n, qe.QeParams(refresh_value=100))
    s = n.core.find(sid)
    get = one(n.tick(), EtsiGetKey)
    assert get.index == 1
    errors = n.core.counters["etsi_errors"]
    n(EtsiReply(get.cid, 0, key_index=2, key=key(2)))  # index 1 skipped: not a key for us
    assert (s.key_index, s.key, s.refresh_failures) == (0, key(0), 1)
    assert n.core.counters["etsi_errors"] == errors + 1
    again = one(n.tick(), EtsiGetKey)
    assert again.index == 1
    n(EtsiReply(again.cid, 0, key_index=1, key=key(1)))
    assert (s.key_index, s.key, s.refresh_failures) == (1, key(1), 1)
    assert [i for i, _ in s.history] == [0, 1]
    assert of(n.log, EtsiGetKey)[-1].index == 2  # refresh 2 is due: the next one


class _LyingProxy(asyncio.DatagramProtocol):
    """Answers every QKD_GET_KEY with a key of index 5."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        req = etsi.decode(data)
        reply = etsi.GetKeyReply(req.request_id, etsi.Status.SUCCESSFUL, 5, bytes(32))
        self.transport.sendto(etsi.encode(reply), addr)  # type: ignore[attr-defined]


async def test_the_client_raises_on_a_key_of_another_index() -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        transport, _ = await loop.create_datagram_endpoint(_LyingProxy, sock=sock.dup())
        try:
            async with Etsi004Client(sock.getsockname()) as c:
                with pytest.raises(KeyIndexError, match="key index 5, expected 0") as e:
                    await c.get_key(HANDLE, expect_index=0)
                assert (e.value.got, e.value.expected) == (5, 0)
                assert (await c.get_key(HANDLE, expect_index=5))[1] == 5
                assert (await c.get_key(HANDLE))[1] == 5  # no expectation: no check
        finally:
            transport.close()
