"""The cipher side of the data plane: the cipher key of a QKD key, the AEAD of each
algorithm, and the replay window (docs/dataplane.md#keys-and-ciphers).

* :func:`cipher_key`: the QKD key of index *k* is the cipher key when its length is the
  algorithm's; a longer one is reduced with HKDF-SHA256 (RFC 5869; salt
  :data:`KDF_SALT`, info = the algorithm code point and the key index, so two indices
  never share a cipher key even if their QKD keys were equal); a shorter one is refused
  (:class:`CipherKeyError`): the service must ask for ``key_length`` of at least
  :data:`KEY_BYTES` bytes.
* :class:`ReplayWindow`: the sliding bitmap of IPsec (RFC 4303 §3.4.3) and MACsec: the
  highest packet number accepted and the :data:`WINDOW` below it; a number at or below
  the window's bottom, or seen already, is a replay. The check runs before the AEAD (cheap
  rejection), the update only after the tag verified (a forged number never moves it).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gmpls.dataplane.frame import ALGORITHMS

#: cipher key bytes per algorithm code point
KEY_BYTES = {10: 32, 11: 16, 12: 32}
KDF_SALT = b"qkdnet dataplane v1"
#: packet numbers remembered below the highest accepted (IPsec's default is 64)
WINDOW = 128


class CipherKeyError(ValueError):
    """A QKD key that cannot key the algorithm (too short), or an algorithm the data
    plane does not run: the service's parameters are at fault, not the peer."""


def cipher_key(algorithm: int, qkd_key: bytes, index: int) -> bytes:
    """The cipher key for ``algorithm`` from the QKD key of index ``index``."""
    need = KEY_BYTES.get(algorithm)
    if need is None:
        names = ", ".join(f"{a} {n}" for a, n in ALGORITHMS.items())
        raise CipherKeyError(f"algorithm {algorithm} has no data plane (only {names})")
    if len(qkd_key) < need:
        raise CipherKeyError(
            f"QKD key of {len(qkd_key)} bytes too short for {ALGORITHMS[algorithm]}"
            f" ({need} bytes needed: create the service with key length >= {need})"
        )
    if len(qkd_key) == need:
        return bytes(qkd_key)
    info = bytes([algorithm]) + index.to_bytes(4, "big")
    return HKDF(hashes.SHA256(), need, KDF_SALT, info).derive(bytes(qkd_key))


def aead(algorithm: int, qkd_key: bytes, index: int) -> AESGCM | ChaCha20Poly1305:
    """The AEAD object of key ``index`` (its key lives in the object only)."""
    key = cipher_key(algorithm, qkd_key, index)
    return ChaCha20Poly1305(key) if algorithm == 12 else AESGCM(key)


class ReplayWindow:
    """The receive window of one key index in one direction (see the module docstring)."""

    __slots__ = ("bits", "mask", "size", "top")

    def __init__(self, size: int = WINDOW) -> None:
        self.size = size
        self.mask = (1 << size) - 1
        self.top = 0  # the highest packet number accepted (0: none yet)
        self.bits = 0  # bit i: top - i was accepted

    def fresh(self, pn: int) -> bool:
        """Whether ``pn`` may be accepted (not seen, not below the window)."""
        if pn > self.top:
            return True
        off = self.top - pn
        return off < self.size and not (self.bits >> off) & 1

    def accept(self, pn: int) -> None:
        """Note ``pn`` as accepted (after its tag verified)."""
        if pn > self.top:
            shift = pn - self.top
            self.bits = ((self.bits << shift) | 1) & self.mask if shift < self.size else 1
            self.top = pn
        else:
            self.bits |= 1 << (self.top - pn)
