"""Type-code registries: one class per TLV/object/subobject, registered by decorator.

As in ExaBGP, a class registers itself for its code; registering a code twice is an
error at import time, and a code with no class decodes to the codec's generic "unknown"
class, which keeps the raw bytes so they can be re-encoded unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._by_code: dict[Hashable, T] = {}

    def register(self, *codes: Hashable) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            for code in codes:
                if code in self._by_code:
                    raise RuntimeError(
                        f"{self.name}: code {code!r} registered twice "
                        f"({self._by_code[code]!r} and {cls!r})"
                    )
                self._by_code[code] = cls
            return cls

        return deco

    def get(self, code: Hashable) -> T | None:
        return self._by_code.get(code)

    def __contains__(self, code: Hashable) -> bool:
        return code in self._by_code

    def codes(self) -> list[Hashable]:
        return list(self._by_code)
