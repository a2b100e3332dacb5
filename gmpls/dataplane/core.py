"""One end of an encrypted QE service, sans-I/O (docs/dataplane.md).

:class:`DataplaneEnd` keeps the contract of :mod:`gmpls.core` for its control events
(``handle(InstallKey | Stop | Tick, now) -> actions``, ``next_timer()``) and has two
per-frame calls, the hot path: :meth:`~DataplaneEnd.seal` (an access frame -> the QE PDU
for the channel) and :meth:`~DataplaneEnd.open` (a channel PDU -> the access frame). They
take no time: they work at the time of the last control event (the shell feeds a Tick
before each batch of frames), so time still enters through ``handle`` only. Both
ends of a service share each key; the head sends with D=0, the tail with D=1.

Rekey k -> k+1 without loss (docs/dataplane.md#rekey):

1. **Receive first.** An installed key is accepted on receive at once; every frame this
   end sends says, in its receive index, the newest key it holds. An installed key also
   sends an *announcement* (an empty authenticated frame under the current sending key)
   so the peer learns it without waiting for traffic.
2. **Send when the peer can receive.** This end sends under the newest key it holds that
   the peer's receive index covers (authenticated frames only move it). If the peer has
   said nothing about a key :attr:`~DataplaneEnd.tx_fallback` seconds after it was
   installed here (the announcement lost, the peer silent), this end sends under it
   anyway. The sending key never goes back.
3. **Retire late.** A key below the one the peer sends under and the one this end sends
   under is dropped :attr:`~DataplaneEnd.rx_grace` seconds later (frames in flight under
   it still pass); at most :data:`MAX_KEYS` keys are held (the oldest goes first).

Errors: :meth:`~DataplaneEnd.open` raises :class:`Dropped` (and counts it) for every
frame it refuses: malformed (:class:`~gmpls.errors.DecodeError` inside), wrong direction
or algorithm, unknown key index, replay, authentication failure; :meth:`seal` raises it
when no key is held. No other exception leaves the core for any input bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from gmpls.core import Tick
from gmpls.dataplane import events as E
from gmpls.dataplane.crypto import CipherKeyError, ReplayWindow, aead
from gmpls.dataplane.frame import (
    ALGORITHMS,
    FLAG_ANNOUNCE,
    FLAG_DIRECTION,
    HEADER_LEN,
    MAX_PN,
    TAG_LEN,
    VERSION,
    decode_header,
    nonce,
)
from gmpls.errors import DecodeError

#: keys held at once (the sending one, the newest, a few in between)
MAX_KEYS = 4
_HEADER = struct.Struct("!BBIIQ")
COUNTERS = (
    "frames_encrypted",
    "frames_decrypted",
    "bytes_encrypted",
    "bytes_decrypted",
    "auth_failures",
    "replays",
    "malformed",
    "unknown_key",
    "no_key",
    "announces_sent",
    "announces_received",
    "rekeys",
    "keys_installed",
    "keys_retired",
    "key_errors",
)


class Dropped(Exception):
    """A frame the data plane refused; ``reason`` is the counter it went to."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True, eq=False)
class _Sa:
    """One key index: its AEAD (which alone holds the key), receive window, sending PN."""

    index: int
    cipher: AESGCM | ChaCha20Poly1305 = field(repr=False)
    installed: float
    window: ReplayWindow = field(default_factory=ReplayWindow)
    tx_pn: int = 0
    retire_at: float | None = None


class DataplaneEnd:
    """One end (head or tail) of one service's encrypted data plane."""

    def __init__(
        self,
        *,
        service_id: str,
        head: bool,
        algorithm: int,
        rx_grace: float = 0.5,
        tx_fallback: float = 0.5,
        report_every: float = 0.1,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise CipherKeyError(f"algorithm {algorithm} has no data plane")
        self.service_id = service_id
        self.algorithm = algorithm
        #: the D bit this end sends with; it receives the other one
        self.direction = 0 if head else 1
        self.rx_grace = rx_grace
        self.tx_fallback = tx_fallback
        self.report_every = report_every
        self.keys: dict[int, _Sa] = {}
        self.tx: _Sa | None = None
        #: the newest key index the peer said it can receive (-1: nothing yet)
        self.peer_rx = -1
        #: the newest key index the peer was seen sending under
        self.peer_tx = -1
        self.newest = -1
        self.error = ""
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._unreported = 0
        self._report_at: float | None = None
        #: the time of the last control event (what the per-frame calls work at)
        self._now = 0.0
        self._first = (VERSION << 4) | (0 if head else FLAG_DIRECTION)
        #: the first header byte of the peer's frames (the A bit masked off)
        self._rx_first = (VERSION << 4) | (FLAG_DIRECTION if head else 0)
        #: the nonces' direction words: ours when sealing, the peer's when opening
        self._tx_nonce = nonce(self.direction, 1)[:4]
        self._rx_nonce = nonce(1 - self.direction, 1)[:4]
        #: the receive index our frames carry (the newest key held; 0 before any)
        self._rx_newest = 0
        self._on: dict[type, Callable[[Any, float], list[E.Action]]] = {
            E.InstallKey: self._install,
            E.Stop: self._stop,
            Tick: self._tick,
        }

    # --- the contract of gmpls.core ---------------------------------------------------

    def handle(self, event: E.Event, now: float) -> list[E.Action]:
        """Take a control event at ``now`` (also the time :meth:`seal` and :meth:`open`
        work at until the next call: a shell feeds a Tick before each batch of frames)."""
        on = self._on.get(type(event))
        if on is None:
            raise TypeError(f"not a data-plane event: {event!r}")
        self._now = max(self._now, now)
        out = on(event, now)
        return out + self._tick(Tick(), now) if not isinstance(event, Tick) else out

    def next_timer(self) -> float | None:
        times = [s.retire_at for s in self.keys.values() if s.retire_at is not None]
        if self._unreported:
            times.append(self._report_at if self._report_at is not None else 0.0)
        fb = self._fallback_at()
        if fb is not None:
            times.append(fb)
        return min(times) if times else None

    @property
    def tx_index(self) -> int | None:
        return self.tx.index if self.tx is not None else None

    # --- the hot path -----------------------------------------------------------------

    def seal(self, frame: bytes, prefix: bytes = b"") -> bytes:
        """The QE PDU (header, ciphertext, tag) carrying Ethernet frame ``frame``, after
        ``prefix`` (the shell's Ethernet header: one copy of the ciphertext, not two)."""
        sa = self.tx
        if sa is None:
            self.counters["no_key"] += 1
            raise Dropped("no_key", "no key yet")
        pn = sa.tx_pn + 1
        if pn > MAX_PN:  # 2^64 frames: never in practice, but never a nonce twice
            self.counters["no_key"] += 1
            raise Dropped("no_key", f"packet numbers of key {sa.index} exhausted")
        sa.tx_pn = pn
        hdr = _HEADER.pack(self._first, self.algorithm, sa.index, self._rx_newest, pn)
        out = b"".join((prefix, hdr, sa.cipher.encrypt(self._tx_nonce + hdr[10:], frame, hdr)))
        c = self.counters
        c["frames_encrypted"] += 1
        c["bytes_encrypted"] += len(frame)
        self._count(len(frame))
        return out

    def open(self, pdu: bytes | memoryview) -> bytes | None:
        """The Ethernet frame a channel PDU carries (None: an announcement, nothing to
        deliver). Raises :class:`Dropped`, counted, for any frame it refuses. ``pdu`` may
        be a memoryview (the shell's, past the Ethernet header: no copy)."""
        if len(pdu) < HEADER_LEN + TAG_LEN:
            self._malformed(pdu)
        first, alg, index, rx_index, pn = _HEADER.unpack_from(pdu)
        # version 1, reserved bits 0, the peer's direction, our algorithm, PN not 0
        if first & ~FLAG_ANNOUNCE & 0xFF != self._rx_first or alg != self.algorithm or not pn:
            self._malformed(pdu)
        sa = self.keys.get(index)
        if sa is None:
            self.counters["unknown_key"] += 1
            raise Dropped("unknown_key", f"key index {index} not held")
        if not sa.window.fresh(pn):
            self.counters["replays"] += 1
            raise Dropped("replays", f"key {index} packet number {pn}")
        try:
            frame = sa.cipher.decrypt(
                self._rx_nonce + pdu[10:HEADER_LEN], pdu[HEADER_LEN:], pdu[:HEADER_LEN]
            )
        except InvalidTag:
            self.counters["auth_failures"] += 1
            raise Dropped("auth_failures", f"key {index} packet number {pn}") from None
        sa.window.accept(pn)
        if rx_index > self.peer_rx or index > self.peer_tx:
            self._heard(index, rx_index, self._now)
        if first & FLAG_ANNOUNCE:
            self.counters["announces_received"] += 1
            return None
        c = self.counters
        c["frames_decrypted"] += 1
        c["bytes_decrypted"] += len(frame)
        self._count(len(frame))
        return frame

    def _malformed(self, pdu: bytes | memoryview) -> NoReturn:
        """Count and refuse a frame the fast checks of :meth:`open` do not pass, with the
        decoder's reason (the slow path: malformed frames only)."""
        self.counters["malformed"] += 1
        try:
            h = decode_header(bytes(pdu))
        except DecodeError as e:
            raise Dropped("malformed", str(e)) from None
        why = "our own direction" if h.direction == self.direction else "another algorithm"
        raise Dropped("malformed", f"{why} (D={h.direction}, algorithm {h.algorithm})")

    def announce(self) -> bytes | None:
        """An announcement PDU (empty, authenticated, under the sending key): tells the
        peer the newest key this end holds. None when no key is held."""
        sa = self.tx
        if sa is None or sa.tx_pn >= MAX_PN:
            return None
        sa.tx_pn += 1
        pn = sa.tx_pn
        hdr = _HEADER.pack(self._first | FLAG_ANNOUNCE, self.algorithm, sa.index, self.newest, pn)
        self.counters["announces_sent"] += 1
        return hdr + sa.cipher.encrypt(self._tx_nonce + hdr[10:], b"", hdr)

    # --- keys -------------------------------------------------------------------------

    def _install(self, ev: E.InstallKey, now: float) -> list[E.Action]:
        if ev.index in self.keys or (ev.index <= self.newest and self.newest >= 0):
            return []  # a key we hold already (or older than one we hold): ignored
        try:
            cipher = aead(self.algorithm, ev.key, ev.index)
        except CipherKeyError as e:
            self.counters["key_errors"] += 1
            self.error = str(e)
            return [E.Log("dataplane key refused", {"service": self.service_id,
                                                    "key_index": ev.index, "why": str(e)},
                          True)]  # fmt: skip
        self.error = ""
        self.keys[ev.index] = _Sa(ev.index, cipher, now)
        self.newest = self._rx_newest = ev.index
        self.counters["keys_installed"] += 1
        if self.tx is None:
            self.tx = self.keys[ev.index]
        self._choose_tx(now)
        self._cap()
        pdu = self.announce()
        return [E.Send(pdu)] if pdu is not None else []

    def _stop(self, ev: E.Stop, now: float) -> list[E.Action]:
        self.keys.clear()
        self.tx = None
        self.newest = -1
        self._rx_newest = 0
        return self._flush(now)

    def _heard(self, index: int, rx_index: int, now: float) -> None:
        """An authenticated frame from the peer: sent under ``index``, saying it can
        receive up to ``rx_index``."""
        moved = False
        if rx_index > self.peer_rx:
            self.peer_rx = rx_index
            moved = True
        if index > self.peer_tx:
            self.peer_tx = index
            moved = True
        if moved:
            self._choose_tx(now)

    def _choose_tx(self, now: float) -> None:
        held = sorted(self.keys)
        if not held:
            return
        covered = [i for i in held if i <= self.peer_rx]
        best = covered[-1] if covered else held[0]
        newest = self.keys[held[-1]]
        if now >= newest.installed + self.tx_fallback:
            best = newest.index
        if self.tx is None or best > self.tx.index:
            if self.tx is not None:
                self.counters["rekeys"] += 1
            self.tx = self.keys[best]
        self._mark_retired(now)

    def _mark_retired(self, now: float) -> None:
        assert self.tx is not None
        floor = min(self.tx.index, self.peer_tx)
        for sa in self.keys.values():
            if sa.index < floor and sa.retire_at is None:
                sa.retire_at = now + self.rx_grace

    def _cap(self) -> None:
        while len(self.keys) > MAX_KEYS:
            oldest = min(i for i in self.keys if self.tx is None or i != self.tx.index)
            del self.keys[oldest]
            self.counters["keys_retired"] += 1

    def _fallback_at(self) -> float | None:
        if self.tx is None or self.newest <= self.tx.index:
            return None
        return self.keys[self.newest].installed + self.tx_fallback

    # --- time -------------------------------------------------------------------------

    def _tick(self, ev: Tick, now: float) -> list[E.Action]:
        fb = self._fallback_at()
        if fb is not None and now >= fb:
            self._choose_tx(now)
        for sa in list(self.keys.values()):
            if sa.retire_at is not None and sa.retire_at <= now and sa is not self.tx:
                del self.keys[sa.index]
                self.counters["keys_retired"] += 1
        if self._unreported and (self._report_at is None or now >= self._report_at):
            return self._flush(now)
        return []

    def _count(self, n: int) -> None:
        if not self._unreported:
            self._report_at = self._now + self.report_every
        self._unreported += n

    def _flush(self, now: float) -> list[E.Action]:
        n, self._unreported = self._unreported, 0
        self._report_at = None
        return [E.Traffic(n)] if n else []

    def status(self) -> dict[str, Any]:
        """Counters and key indices (never a key byte)."""
        return {
            **self.counters,
            "key_index": self.tx_index,
            "rx_keys": sorted(self.keys),
            "peer_rx_index": self.peer_rx if self.peer_rx >= 0 else None,
            "error": self.error or None,
        }
