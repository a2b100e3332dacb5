"""The link state database of one area (RFC 2328 §12.2, §13.2, §14).

Each entry keeps the LSA as installed and the time it was installed; its current age is
``header.age + (now - installed)`` capped at MaxAge (§12.4.2: ages are not stored, they
are computed). The database never reads a clock: every query takes ``now``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gmpls.ospf.constants import MAX_AGE
from gmpls.ospf.lsa import LSA, LSAHeader, LSAKey


@dataclass(slots=True)
class Entry:
    lsa: LSA
    installed: float

    def age(self, now: float) -> int:
        if self.lsa.header.age >= MAX_AGE:
            return MAX_AGE
        return min(MAX_AGE, self.lsa.header.age + int(now - self.installed))

    def header(self, now: float) -> LSAHeader:
        """The header with the current age."""
        h = self.lsa.header
        a = self.age(now)
        return (
            h
            if a == h.age
            else LSAHeader(
                a, h.options, h.ls_type, h.ls_id, h.adv_router, h.seq, h.checksum, h.length
            )
        )

    def current(self, now: float) -> LSA:
        """The LSA with its current age."""
        a = self.age(now)
        return self.lsa if a == self.lsa.header.age else self.lsa.with_age(a)

    def expires_at(self) -> float | None:
        """When this entry reaches MaxAge (None if it already has)."""
        if self.lsa.header.age >= MAX_AGE:
            return None
        return self.installed + (MAX_AGE - self.lsa.header.age)


def content_changed(old: LSA, new: LSA) -> bool:
    """RFC 2328 §13.2: options, MaxAge-ness, length or body differ (SPF must rerun)."""
    a, b = old.header, new.header
    if a.options != b.options or a.length != b.length:
        return True
    if (a.age >= MAX_AGE) != (b.age >= MAX_AGE):
        return True
    if old.exact and new.exact:  # the bodies as received or built, no encoding
        return old.wire[20:] != new.wire[20:]
    return old.encode()[20:] != new.encode()[20:]


class LSDB:
    """LSAs by (LS type, link state ID, advertising router)."""

    def __init__(self) -> None:
        self._db: dict[LSAKey, Entry] = {}

    def __len__(self) -> int:
        return len(self._db)

    def __contains__(self, key: LSAKey) -> bool:
        return key in self._db

    def __iter__(self) -> Iterator[LSAKey]:
        return iter(self._db)

    def get(self, key: LSAKey) -> Entry | None:
        return self._db.get(key)

    def entries(self) -> list[tuple[LSAKey, Entry]]:
        return list(self._db.items())

    def install(self, lsa: LSA, now: float, *, compare: bool = True) -> bool:
        """Install ``lsa`` (replacing any older instance); True when SPF must rerun
        (without ``compare``, True whatever the old instance was)."""
        key = lsa.key
        old = self._db.get(key)
        self._db[key] = Entry(lsa, now)
        return old is None or not compare or content_changed(old.lsa, lsa)

    def remove(self, key: LSAKey) -> Entry | None:
        return self._db.pop(key, None)

    def lsas(self, now: float) -> list[LSA]:
        """Every LSA with its current age, sorted by key."""
        return [self._db[k].current(now) for k in sorted(self._db)]

    def by_type(self, ls_type: int) -> list[Entry]:
        return [e for k, e in self._db.items() if k.ls_type == ls_type]

    def digest(self) -> frozenset[tuple[LSAKey, int, int]]:
        """(key, sequence, checksum) of every instance: equal digests = synchronised LSDBs."""
        return frozenset((k, e.lsa.header.seq, e.lsa.header.checksum) for k, e in self._db.items())

    def next_expiry(self) -> float | None:
        times = [t for e in self._db.values() if (t := e.expires_at()) is not None]
        return min(times) if times else None
