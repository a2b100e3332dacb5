"""The proxy's northbound response cache: the answers already sent, per client address.

A client retransmits a request with the same bytes (the same request ID) until it hears
the answer; the proxy answers such a repeat with the bytes it sent the first time, so a
lost answer never costs a second key (docs/etsi004.md#reliability-request-ids-and-the-response-cache).

Entries are kept **per client address**, each address in its own bounded LRU
(:class:`gmpls.cache.ResponseCache`), keyed by **content**: the client's port and the
request's bytes (which carry its request ID). One client's requests therefore never
evict another's answers, and a different request that reuses a request ID is a new
request, not a repeat. The core only caches the answers to the addresses it serves, so
the number of buckets is bounded by the served node's addresses.
"""

from __future__ import annotations

from gmpls.cache import ResponseCache
from qkd_proxy.events import Addr


class ReplyCache:
    __slots__ = ("_by_client", "per_client")

    def __init__(self, per_client: int) -> None:
        if per_client <= 0:
            raise ValueError("per_client must be positive")
        self.per_client = per_client
        self._by_client: dict[str, ResponseCache] = {}

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_client.values())

    def clients(self) -> int:
        return len(self._by_client)

    def get(self, addr: Addr, request: bytes) -> bytes | None:
        """The answer sent to this very request from ``addr``, if it is still kept."""
        c = self._by_client.get(addr[0])
        return None if c is None else c.get((addr[1], request))

    def put(self, addr: Addr, request: bytes, reply: bytes) -> None:
        c = self._by_client.get(addr[0])
        if c is None:
            c = self._by_client[addr[0]] = ResponseCache(self.per_client)
        c.put((addr[1], request), reply)
