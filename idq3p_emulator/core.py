"""The emulator's request handling, sans-I/O: datagram and time in, answer out.

:class:`Idq3pServer` keeps the contract of :mod:`gmpls.core`: ``handle(Datagram(data,
addr), now)`` returns the answer as a :class:`~idq3p_emulator.events.Send` (or nothing),
and ``next_timer()`` is always None (the key store is a function of time, not a timer).
A request repeated with the same (client address, request ID) is answered from a response
cache with the bytes sent the first time, so a retransmission after a lost answer never
deletes a second key (docs/idq3p.md §Reliability); the cache is bounded in bytes. When the
store keeps marks across restarts and they moved, a :class:`~idq3p_emulator.events.Persist`
comes before the answer.
"""

from __future__ import annotations

from gmpls.cache import ResponseCache
from gmpls.core import Tick
from gmpls.errors import DecodeError, EncodeError
from gmpls.qkd import idq3p as codec
from idq3p_emulator.events import Action, Addr, Datagram, Event, Persist, Send
from idq3p_emulator.store import KeyStore, Refused

#: default bound of the response cache: the bytes of the answers it holds
CACHE_BYTES = 4 << 20


class Idq3pServer:
    """Serves one :class:`KeyStore`; ``counters`` counts what happened (no key bytes)."""

    def __init__(
        self, store: KeyStore, cache_size: int = 4096, cache_bytes: int = CACHE_BYTES
    ) -> None:
        self.store = store
        self.cache = ResponseCache(cache_size, cache_bytes)
        self.counters: dict[str, int] = {
            "requests": 0,
            "duplicates": 0,
            "malformed": 0,
            "keys_next": 0,
            "keys_by_id": 0,
            "insufficient": 0,
            "unknown_id": 0,
            "future_id": 0,
        }

    def handle(self, event: Event, now: float) -> list[Action]:
        """Answer a :class:`Datagram`; a :class:`~gmpls.core.Tick` has nothing to do."""
        if isinstance(event, Datagram):
            reply = self._receive(event.data, event.addr, now)
            out: list[Action] = []
            if self.store.dirty and self.store.marks is not None:
                self.store.dirty = False
                out.append(Persist(self.store.marks.encode()))
            if reply is not None:
                out.append(Send(reply, event.addr))
            return out
        if isinstance(event, Tick):
            return []
        raise TypeError(f"not an IDQ3P server event: {event!r}")

    def next_timer(self) -> float | None:
        """Never: the server only answers."""
        return None

    def _receive(self, data: bytes, addr: Addr, now: float) -> bytes | None:
        """Answer one datagram from ``addr``; None when it deserves no answer."""
        hdr = codec.peek_header(data)
        if hdr is not None:
            cached = self.cache.get((addr, hdr[1]))
            if cached is not None:
                self.counters["duplicates"] += 1
                return cached
        try:
            msg = codec.decode(data)
        except DecodeError:
            self.counters["malformed"] += 1
            if hdr is None or hdr[0] & 0x80:
                return None  # no readable header, or an answer sent to us: drop
            return codec.encode(codec.Error(hdr[1]))
        self.counters["requests"] += 1
        try:
            reply = self._answer(msg, now)
        except EncodeError:
            self.counters["malformed"] += 1
            return codec.encode(codec.Error(msg.request_id))
        if reply is None:
            return None
        out = codec.encode(reply)
        self.cache.put((addr, msg.request_id), out)
        return out

    def _answer(self, msg: codec.AnyMessage, now: float) -> codec.AnyMessage | None:
        if isinstance(msg, codec.GetNextKey):
            # keep the answer inside one datagram
            fit = max(1, (codec.MAX_DATAGRAM - 64) // (msg.key_bytes + 8))
            got = self.store.next_keys(msg.key_bytes, min(msg.count, fit), now)
            if not got:
                self.counters["insufficient"] += 1
                return codec.Keys(msg.request_id, codec.Status.INSUFFICIENT_KEY, msg.key_bytes)
            self.counters["keys_next"] += len(got)
            return codec.Keys(
                msg.request_id,
                codec.Status.OK,
                msg.key_bytes,
                tuple(codec.Key(k, m) for k, m in got),
            )
        if isinstance(msg, codec.GetKeyById):
            return self._by_id(msg, now)
        if isinstance(msg, codec.StatusRequest):
            st = self.store.status(now)
            return codec.StatusReply(
                msg.request_id,
                codec.Status.OK,
                msg.key_bytes,
                min(st.keys_available(msg.key_bytes), 0xFFFFFFFF),  # a u32: saturates
                st.bits_available,
                st.rate_bps,
                st.buffer_bits,
                st.delivered_keys,
            )
        return None  # an answer type sent to the server: ignore

    def _by_id(self, msg: codec.GetKeyById, now: float) -> codec.Keys:
        """Every asked key that can be delivered; the status names the first kind of
        refusal: INSUFFICIENT_KEY for a key the pair has not released yet, else
        UNKNOWN_KEY_ID."""
        keys = []
        refused: set[Refused] = set()
        asked = msg.key_ids[: max(1, (codec.MAX_DATAGRAM - 64) // (msg.key_bytes + 8))]
        self.counters["unknown_id"] += len(msg.key_ids) - len(asked)  # beyond one datagram
        for kid in asked:
            m = self.store.take_by_id(kid, msg.key_bytes, now)
            if isinstance(m, bytes):
                keys.append(codec.Key(kid, m))
            else:
                refused.add(m)
                self.counters["future_id" if m is Refused.NOT_RELEASED else "unknown_id"] += 1
        self.counters["keys_by_id"] += len(keys)
        status = codec.Status.OK
        if Refused.NOT_RELEASED in refused:
            status = codec.Status.INSUFFICIENT_KEY
        elif len(keys) < len(msg.key_ids):
            status = codec.Status.UNKNOWN_KEY_ID
        return codec.Keys(msg.request_id, status, msg.key_bytes, tuple(keys))
