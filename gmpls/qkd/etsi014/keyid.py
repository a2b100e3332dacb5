"""014 key IDs and the ETSI 004 sessions they name (docs/etsi014.md#key-ids-and-the-pool).

Every (master SAE, slave SAE, key size) pair the master's key manager serves is one ETSI
004 session between the two key managers (direct or relayed), opened by the master's key
manager under a **pair nonce** (64 random bits) and the handle derived from it:
``SHA-512("qkdnet etsi014 v1" | nonce | len+master | len+slave | size in bytes)``. Key
*i* of that session gets the key ID carrying (nonce, size, i), a version-8 UUID (RFC 9562,
custom layout)::

    122 payload bits = nonce (64) | size in bytes - 1 (10) | zero (16) | index (32)

The slave's key manager derives the same handle from the key ID and the two SAE IDs (the
slave's from its certificate), so a key ID names a session only for its own master and
slave: any other SAE derives another handle, which names nothing. Pure.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

HANDLE_LEN = 64
#: key sizes in bytes the ID can carry (1..1024)
MAX_SIZE_BYTES = 1024
_TAG = b"qkdnet etsi014 v1"


@dataclass(frozen=True, slots=True)
class KeyId:
    nonce: int  # 64 bits
    size_bytes: int  # 1..1024
    index: int  # 32 bits

    def __str__(self) -> str:
        return str(encode(self))


def _lp(s: str) -> bytes:
    b = s.encode()
    return bytes([len(b)]) + b


def session_handle(nonce: int, master: str, slave: str, size_bytes: int) -> bytes:
    """The ETSI 004 key_handle of a pair's session (64 bytes, never all zero in practice)."""
    data = _TAG + nonce.to_bytes(8, "big") + _lp(master) + _lp(slave) + size_bytes.to_bytes(2)
    return hashlib.sha512(data).digest()


def encode(k: KeyId) -> uuid.UUID:
    if not (0 <= k.nonce < 1 << 64 and 1 <= k.size_bytes <= MAX_SIZE_BYTES):
        raise ValueError("nonce or size out of range")
    if not 0 <= k.index < 1 << 32:
        raise ValueError("index out of range")
    p = (k.nonce << 58) | ((k.size_bytes - 1) << 48) | k.index
    v = ((p >> 74) << 80) | (8 << 76) | (((p >> 62) & 0xFFF) << 64) | (2 << 62)
    v |= p & ((1 << 62) - 1)
    return uuid.UUID(int=v)


def decode(text: str) -> KeyId | None:
    """The key ID's fields, or None: not a UUID, or not one of ours."""
    try:
        u = uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None
    v = u.int
    if (v >> 76) & 0xF != 8 or (v >> 62) & 0x3 != 2:
        return None
    p = ((v >> 80) << 74) | (((v >> 64) & 0xFFF) << 62) | (v & ((1 << 62) - 1))
    if (p >> 32) & 0xFFFF:
        return None
    return KeyId(p >> 58, ((p >> 48) & 0x3FF) + 1, p & 0xFFFFFFFF)
