"""Type-code registries: one class per TLV/object/subobject, registered by decorator.

As in ExaBGP, a class registers itself for its code; registering a code twice is an
error at import time, and a code with no class decodes to the codec's generic "unknown"
class, which keeps the raw bytes so they can be re-encoded unchanged. The code is written
once, in the decorator: a registry made with ``attrs`` sets those class attributes from
it (``Registry("PCEP object", attrs=("CLASS", "TYPE"))`` and ``register((6, 1))`` give
``CLASS = 6`` and ``TYPE = 1``) when a class registers one code; a class registered under
several codes carries its code in its instances instead.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, name: str, attrs: tuple[str, ...] = ()) -> None:
        self.name = name
        self.attrs = attrs
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
            if self.attrs and len(codes) == 1:
                values = codes[0] if isinstance(codes[0], tuple) else (codes[0],)
                for attr, value in zip(self.attrs, values, strict=True):
                    setattr(cls, attr, value)
            return cls

        return deco

    def get(self, code: Hashable) -> T | None:
        return self._by_code.get(code)

    def __contains__(self, code: Hashable) -> bool:
        return code in self._by_code

    def codes(self) -> list[Hashable]:
        return list(self._by_code)
