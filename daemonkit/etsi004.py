"""The ETSI GS QKD 004 client (asyncio): :class:`Etsi004Client`, used by the node agents'
QE service, the command line ``python -m qkd_proxy.client``, tests and benchmarks.

The client retransmits every request with the same request ID and a doubling timeout
until the proxy answers, so a lost request or answer never costs or skips a key (the
proxy answers a repeat from its cache). A session belongs to the caller's address and
key_handle, so separate clients from one address continue it. A caller that knows which
key index it needs says so (``get_key(handle, expect_index=i)``): a key with any other
index raises :class:`KeyIndexError` and is never returned, so the two ends cannot use
different keys as "the same" one.
"""

from __future__ import annotations

import asyncio
import secrets
from ipaddress import IPv4Address

from daemonkit import netns
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd.etsi004 import Status


class KeyIndexError(Exception):
    """QKD_GET_KEY answered with a key of another index than the one expected."""

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(f"key index {got}, expected {expected}")
        self.got = got
        self.expected = expected


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, client: Etsi004Client) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client._received(data)

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable while the proxy starts: retransmission copes


class Etsi004Client:
    """One UDP socket to one proxy; requests may run concurrently.

    ``rto`` is the first retransmission timeout (doubling up to ``rto_max``); a call that
    gets no answer within ``deadline`` seconds raises :class:`TimeoutError`.
    """

    def __init__(
        self,
        proxy: tuple[str, int],
        local: tuple[str, int] | None = None,
        rto: float = 0.05,
        rto_max: float = 0.4,
        deadline: float = 15.0,
    ) -> None:
        self.proxy = proxy
        self.local = local
        self.rto = rto
        self.rto_max = rto_max
        self.deadline = deadline
        self._transport: asyncio.DatagramTransport | None = None
        self._waiting: dict[int, asyncio.Future[etsi.Reply]] = {}
        self._rid = secrets.randbits(32)
        #: transmissions of the last completed request (1 = no retransmission)
        self.last_attempts = 0
        self.retransmissions = 0

    async def __aenter__(self) -> Etsi004Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close_socket()

    async def start(self) -> None:
        self._transport, _ = await netns.datagram_endpoint(
            lambda: _Proto(self), self.local, self.proxy
        )

    def close_socket(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _received(self, data: bytes) -> None:
        try:
            msg = etsi.decode(data)
        except etsi.DecodeError:
            return
        fut = self._waiting.get(msg.request_id)
        if fut is not None and not fut.done():
            fut.set_result(msg)  # type: ignore[arg-type]

    def next_request_id(self) -> int:
        self._rid = (self._rid + 1) & 0xFFFFFFFF
        return self._rid

    async def request(self, msg: etsi.Request) -> etsi.Reply:
        """Send and retransmit until the answer with this request ID arrives."""
        if self._transport is None:
            await self.start()
        transport = self._transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[etsi.Reply] = loop.create_future()
        rid = msg.request_id
        self._waiting[rid] = fut
        data = etsi.encode(msg)
        end = loop.time() + self.deadline
        state = {"attempts": 1, "rto": self.rto}

        def retransmit() -> None:
            if fut.done():
                return
            now = loop.time()
            if now >= end:
                fut.set_exception(TimeoutError(f"no answer from {self.proxy[0]}:{self.proxy[1]}"))
                return
            transport.sendto(data)
            state["attempts"] += 1
            self.retransmissions += 1
            state["rto"] = min(state["rto"] * 2, self.rto_max)
            timer[0] = loop.call_at(min(now + state["rto"], end), retransmit)

        transport.sendto(data)
        timer = [loop.call_at(min(loop.time() + self.rto, end), retransmit)]
        try:
            reply = await fut
            self.last_attempts = int(state["attempts"])
            return reply
        finally:
            timer[0].cancel()
            self._waiting.pop(rid, None)

    # --- the ETSI 004 calls ---------------------------------------------------------
    async def open(
        self,
        destination: IPv4Address | str,
        key_handle: bytes | None = None,
        key_length: int = 32,
        max_bps: int = 0,
        priority: int = 0,
        timeout_ms: int = 0,
        relay: tuple[IPv4Address, ...] = (),
    ) -> tuple[Status, bytes]:
        """QKD_OPEN: (status, key_handle). ``relay``: the key relay path (site IDs, head
        site first, tail site last) for the key manager; empty: it decides."""
        r = await self.request(
            etsi.Open(
                self.next_request_id(),
                IPv4Address(destination),
                etsi.QoS(key_length, max_bps, priority, timeout_ms),
                key_handle or etsi.ZERO_HANDLE,
                tuple(relay),
            )
        )
        assert isinstance(r, etsi.OpenReply)
        return r.status, r.key_handle

    async def connect(self, key_handle: bytes, timeout_ms: int | None = None) -> Status:
        """QKD_CONNECT_NONBLOCK, or QKD_CONNECT_BLOCKING when ``timeout_ms`` is given."""
        msg: etsi.Request
        if timeout_ms is None:
            msg = etsi.ConnectNonblock(self.next_request_id(), key_handle)
        else:
            msg = etsi.ConnectBlocking(self.next_request_id(), key_handle, timeout_ms)
        r = await self.request(msg)
        assert isinstance(r, etsi.ConnectNonblockReply | etsi.ConnectBlockingReply)
        return r.status

    async def get_key(
        self, key_handle: bytes, expect_index: int | None = None
    ) -> tuple[Status, int, bytes]:
        """QKD_GET_KEY: (status, index, key); with ``expect_index``, a key of another
        index raises :class:`KeyIndexError`."""
        r = await self.request(etsi.GetKey(self.next_request_id(), key_handle))
        assert isinstance(r, etsi.GetKeyReply)
        if expect_index is not None and r.status == Status.SUCCESSFUL and r.index != expect_index:
            raise KeyIndexError(r.index, expect_index)
        return r.status, r.index, r.key

    async def close(self, key_handle: bytes) -> Status:
        """QKD_CLOSE."""
        r = await self.request(etsi.Close(self.next_request_id(), key_handle))
        assert isinstance(r, etsi.CloseReply)
        return r.status
