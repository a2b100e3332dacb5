"""Bodies as tables: a class declares its wire layout, one codec encodes and decodes it.

Most TLVs, objects and subobjects of OSPF-TE, PCEP and RSVP-TE are a fixed run of
big-endian fields, sometimes followed by one variable-length part (TLVs, subobjects, a
list). Instead of writing ``encode`` and ``decode`` by hand for each, a class says what is
on the wire, in wire order, and :class:`Layout` does both. RSVP's ERROR_SPEC, for one,
is ``@layout("node:ipv4 flags:u8 code:u8 value:u16")`` on a class whose fields are
``node, code, value, flags`` (:mod:`gmpls.rsvp.objects`).

The spec is ``name:kind`` pairs. Kinds: ``u8 u16 u24 u32 u64 i32 f32 ipv4 ipv6``, ``bN``
(N raw bytes), ``xN`` (N reserved bytes: zero on encode, ignored on decode; the name only
labels errors) and ``kind*N`` (a tuple of N numbers). The names are the class's fields, so
the wire order need not be the constructor order. A variable-length last part is a keyword
argument naming its field: a :class:`Tail` that reads to the end of the body
(:class:`Repeat`, :class:`Records`, :data:`REST`, or a protocol's own, such as its TLVs),
or a counted list (:class:`Counted`), whose trailing bytes are the caller's to reject.

A keyword naming a fixed field says what its value is beyond its kind:

- an ``IntEnum`` class: the field decodes to the member, and a value that is not one is a
  :class:`DecodeError` naming the field (ETSI 004's ``status=Status``);
- a ``range``: the values the field may take (``key_bytes=range(1, 1025)``);
- a dataclass: the ``kind*N`` numbers are its N fields, in order (ETSI 004's
  ``qos:u32*4`` with ``qos=QoS``).

Enums and ranges are checked on encode too (an :class:`EncodeError` naming the field).

A class that checks more than its layout says overrides ``decode_body`` and calls
``cls.WIRE.decode(cls, r, **extra)`` (not ``super()``: a method defined in a slotted
dataclass cannot use the zero-argument form, the class it was compiled in is replaced).

Errors follow :mod:`gmpls.wire`: a short body raises :class:`DecodeError` naming the first
field that is not there, with the reader's protocol error code; a value that does not fit
its field raises :class:`EncodeError` naming it. Trailing bytes after a layout without a
tail are the caller's to reject (``Reader.expect_end``), as for any decoder.
"""

from __future__ import annotations

import dataclasses
import linecache
import struct
from collections.abc import Callable, Container
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

from gmpls.errors import EncodeError
from gmpls.wire import Reader, ipv4_of

Convert = Callable[[Any], Any]
#: what a keyword may say of a fixed field (see the module doc)
FieldType = type | range


def _packed(v: IPv4Address | IPv6Address) -> bytes:
    return v.packed


def _u24_out(v: int) -> bytes:
    return v.to_bytes(3, "big")


def _u24_in(b: bytes) -> int:
    return int.from_bytes(b, "big")


#: kind -> (struct code, value from the wire or None, value to the wire or None)
_KINDS: dict[str, tuple[str, Convert | None, Convert | None]] = {
    "u8": ("B", None, None),
    "u16": ("H", None, None),
    "u24": ("3s", _u24_in, _u24_out),
    "u32": ("I", None, None),
    "i32": ("i", None, None),
    "u64": ("Q", None, None),
    "f32": ("f", None, None),
    "ipv4": ("4s", ipv4_of, _packed),
    "ipv6": ("16s", IPv6Address, _packed),
}


#: conversions the compiled encoder writes inline rather than calls
_INLINE = {_packed: "{}.packed", _u24_out: "{}.to_bytes(3, 'big')"}


def _exactly(n: int) -> Convert:
    def check(v: bytes) -> bytes:
        if len(v) != n:
            raise OverflowError(f"{len(v)} bytes, needs {n}")
        return v

    return check


def _kind(kind: str) -> tuple[str, Convert | None, Convert | None]:
    if kind in _KINDS:
        return _KINDS[kind]
    if kind[:1] == "b" and kind[1:].isdigit():
        return f"{kind[1:]}s", None, _exactly(int(kind[1:]))
    raise ValueError(f"unknown field kind {kind!r}")


class _Field:
    """One named field; ``count`` is N for ``kind*N``, 1 for a single value, 0 for ``xN``.

    A typed field (see the module doc) has ``allowed`` values and a ``check(value, reader)``
    that makes the value from the wire (an enum's member) or raises the reader's error, or
    is a ``record``: (class, the names of its fields)."""

    __slots__ = (
        "allowed",
        "check",
        "code",
        "count",
        "inn",
        "name",
        "offset",
        "out",
        "record",
        "size",
    )

    def __init__(self, name: str, kind: str, offset: int, typ: FieldType | None = None) -> None:
        self.name = name
        self.offset = offset
        self.inn: Convert | None = None
        self.out: Convert | None = None
        self.allowed: Container[Any] | None = None
        self.check: Callable[[Any, Reader], Any] | None = None
        self.record: tuple[type, tuple[str, ...]] | None = None
        if kind[:1] == "x" and kind[1:].isdigit():
            self.code, self.count = f"{kind[1:]}x", 0
        else:
            base, _, n = kind.partition("*")
            code, self.inn, self.out = _kind(base)
            self.count = int(n) if n else 1
            if self.count > 1 and (self.inn or self.out):
                raise ValueError(f"{name}: only numbers repeat in a fixed field")
            self.code = code if self.count == 1 else f"{self.count}{code}"
        self.size = struct.calcsize("!" + self.code)
        if typ is not None:
            self._typed(typ)

    def _typed(self, typ: FieldType) -> None:
        name = self.name
        if not self.count or self.inn or self.out:
            raise ValueError(f"{name}: only numbers have a type")
        if isinstance(typ, type) and dataclasses.is_dataclass(typ):
            names = tuple(f.name for f in dataclasses.fields(typ) if f.init)
            if self.count != len(names):
                raise ValueError(
                    f"{name}: {typ.__name__} is {len(names)} numbers, not {self.count}"
                )
            self.record = (typ, names)
            return
        if self.count != 1:
            raise ValueError(f"{name}: an enum or a range is of a single number")
        if isinstance(typ, range):
            allowed, bounds = typ, f"{typ.start}..{typ.stop - 1}"

            def check(v: int, r: Reader) -> int:
                if v in allowed:
                    return v
                raise r.fail(name, f"{v} is not in {bounds}")

            self.allowed, self.check = allowed, check
        elif isinstance(typ, type) and issubclass(typ, IntEnum):
            members: dict[int, IntEnum] = {m.value: m for m in typ}

            def member(v: int, r: Reader) -> IntEnum:
                try:
                    return members[v]
                except KeyError:
                    raise r.fail(name, f"unknown {name} {v}") from None

            self.allowed, self.check = members, member
        else:
            raise TypeError(f"{name}: {typ!r} is not an IntEnum, a range or a dataclass")

    def to_wire(self, v: Any) -> list[Any]:
        """The struct values of ``v`` (for naming the field a bad value is in)."""
        if self.allowed is not None and v not in self.allowed:
            raise OverflowError("not one of its values")
        if self.record is not None:
            return [getattr(v, n) for n in self.record[1]]
        if self.count == 1:
            return [v if self.out is None else self.out(v)]
        if len(v) != self.count:
            raise OverflowError(f"needs {self.count} values, has {len(v)}")
        return list(v)


class Tail:
    """The variable-length last part of a body: ``encode(value) -> bytes`` and
    ``decode(reader, name) -> value``, which reads to the end of the reader."""

    __slots__ = ("decode", "encode")

    def __init__(
        self, encode: Callable[[Any], bytes], decode: Callable[[Reader, str], Any]
    ) -> None:
        self.encode = encode
        self.decode = decode


class Repeat(Tail):
    """A tuple of one fixed-size kind (``Repeat("ipv4")``) that fills the rest exactly."""

    __slots__ = ()

    def __init__(self, kind: str) -> None:
        code, inn, out = _kind(kind)
        size = struct.calcsize("!" + code)

        def encode(values: tuple[Any, ...]) -> bytes:
            if out is not None:  # each value converts to its bytes
                return b"".join(map(out, values))
            return struct.pack(f"!{len(values)}{code}", *values)

        def decode(r: Reader, name: str) -> tuple[Any, ...]:
            n, odd = divmod(r.end - r.pos, size)
            if odd:
                raise r.fail(name, f"{r.end - r.pos} bytes is not a list of {kind}")
            vals = struct.unpack_from("!" + code * n, r.data, r.pos)
            r.pos = r.end
            return vals if inn is None else tuple(inn(v) for v in vals)

        super().__init__(encode, decode)


class Records(Tail):
    """A tuple of fixed-size records, each a ``cls`` made from its fields in ``spec`` (by
    default the class's own layout)."""

    __slots__ = ()

    def __init__(self, cls: Any, spec: str | None = None) -> None:
        rec: Layout = cls.WIRE if spec is None else Layout(cls, spec)
        if rec.tail is not None:
            raise ValueError(f"{cls.__name__}: a record has a fixed size")

        def encode(values: tuple[Any, ...]) -> bytes:
            return b"".join(map(rec.encode, values))

        def decode(r: Reader, name: str) -> tuple[Any, ...]:
            if (r.end - r.pos) % rec.size:
                raise r.fail(name, f"{r.end - r.pos} bytes is not a list of {cls.__name__}")
            out = []
            while r.pos < r.end:
                out.append(rec.decode(cls, r))
            return tuple(out)

        super().__init__(encode, decode)


class Counted(Tail):
    """A count, then that many values of one fixed-size kind (a tuple), or that many bytes
    (kind ``bytes``). ``allowed`` bounds the count both ways, ``count`` is its kind, and
    ``names`` label the errors: the count, and the bytes or an item (``key_id[3]``)."""

    __slots__ = ()

    def __init__(
        self,
        kind: str,
        allowed: range,
        count: str = "u16",
        names: tuple[str, str] = ("count", "item"),
    ) -> None:
        if count not in ("u8", "u16", "u32"):
            raise ValueError(f"a count is u8, u16 or u32, not {count}")
        raw = kind == "bytes"
        code, inn, out = ("s", None, None) if raw else _kind(kind)
        size = 1 if raw else struct.calcsize("!" + code)
        head = struct.Struct("!" + _KINDS[count][0])
        read_count = getattr(Reader, count)
        count_name, item = names
        bounds = f"{allowed.start}..{allowed.stop - 1}"

        def encode(values: Any) -> bytes:
            n = len(values)
            if n not in allowed:
                raise OverflowError(f"{n} is not in {bounds}")
            if raw:
                return head.pack(n) + values
            if out is not None:
                return head.pack(n) + b"".join(map(out, values))
            return head.pack(n) + struct.pack(f"!{n}{code}", *values)

        def decode(r: Reader, name: str) -> Any:
            n = read_count(r, count_name)
            if n not in allowed:
                raise r.fail(count_name, f"{n} is not in {bounds}")
            left = r.end - r.pos
            if left < n * size:
                at, need = (item, n) if raw else (f"{item}[{left // size}]", size)
                raise r.fail(at, f"truncated: needs {need} bytes, {left % need} left")
            p = r.pos
            r.pos = p + n * size
            if raw:
                return r.data[p : r.pos]
            vals = struct.unpack_from(f"!{n}{code}", r.data, p)
            return vals if inn is None else tuple(map(inn, vals))

        super().__init__(encode, decode)


def _rest(r: Reader, name: str) -> bytes:
    return r.rest()


#: the raw bytes to the end of the body
REST = Tail(bytes, _rest)


class Layout:
    """The fields of ``cls`` in wire order (see the module doc), then at most one tail.

    ``encode(obj)`` and ``decode(cls, r, **extra)`` are compiled from the spec when the
    layout is made, the way :mod:`dataclasses` compiles ``__init__``: one ``struct`` call
    and one constructor call, no per-field interpretation. :attr:`source` is their code.
    """

    __slots__ = ("_fields", "decode", "encode", "size", "source", "spec", "tail", "tail_name")

    def __init__(self, cls: type, spec: str = "", **parts: Tail | FieldType) -> None:
        tail = {k: v for k, v in parts.items() if isinstance(v, Tail)}
        if len(tail) > 1:
            raise ValueError("a layout has at most one tail")
        types = {k: v for k, v in parts.items() if not isinstance(v, Tail)}
        self.spec = spec
        fields: list[_Field] = []
        offset = 0
        for item in spec.split():
            name, _, kind = item.partition(":")
            fields.append(_Field(name, kind, offset, types.pop(name, None)))
            offset += fields[-1].size
        if types:
            raise TypeError(f"{cls.__name__}: {', '.join(types)} is not a field of the layout")
        self._fields = tuple(fields)
        self.size = offset
        self.tail_name: str = next(iter(tail), "")
        self.tail: Tail | None = tail.get(self.tail_name)
        init = [f.name for f in dataclasses.fields(cls) if f.init]
        for name in self.names:
            if name not in init:
                raise TypeError(f"{cls.__name__}: layout field {name!r} is not a field")
        scope: dict[str, Any] = {
            "st": struct.Struct("!" + "".join(f.code for f in fields)),
            "struct_error": struct.error,
            "short": self._short,
            "bad_value": self._bad_value,
            "tail": self.tail,
        }
        for k, f in enumerate(fields):
            scope[f"in{k}"], scope[f"out{k}"] = f.inn, f.out
            scope[f"allowed{k}"], scope[f"check{k}"] = f.allowed, f.check
            scope[f"record{k}"] = f.record[0] if f.record else None
        self.source = self._source(init)
        filename = f"<layout of {cls.__module__}.{cls.__qualname__}>"
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        exec(compile(self.source, filename, "exec"), scope)
        self.encode: Callable[[Any], bytes] = scope["encode"]
        self.decode: Callable[..., Any] = scope["decode"]

    @property
    def names(self) -> tuple[str, ...]:
        """The fields the layout reads and writes, tail included."""
        fixed = tuple(f.name for f in self._fields if f.count)
        return (*fixed, self.tail_name) if self.tail is not None else fixed

    def _source(self, init: list[str]) -> str:
        """``encode(obj)`` and ``decode(cls, r, **extra)`` as Python source."""
        packs: list[str] = []  # the struct's arguments, in wire order
        reads: dict[str, str] = {}  # field name -> its value from the unpacked v0, v1...
        checks: list[str] = []  # encode: the fields whose values are a set
        n = 0
        for k, f in enumerate(self._fields):
            if not f.count:
                continue
            get = f"obj.{f.name}"
            values = "".join(f"v{n + i}, " for i in range(f.count))
            if f.record is not None:
                packs += [f"{get}.{name}" for name in f.record[1]]
                reads[f.name] = f"record{k}({values})"
            elif f.count > 1:
                packs.append(f"*{get}")
                reads[f.name] = f"({values})"
            elif f.check is not None:
                checks.append(
                    f"        if {get} not in allowed{k}:\n            raise OverflowError\n"
                )
                packs.append(get)
                reads[f.name] = f"check{k}(v{n}, r)"
            else:
                packs.append(
                    get if f.out is None else _INLINE.get(f.out, f"out{k}({{}})").format(get)
                )
                reads[f.name] = f"v{n}" if f.inn is None else f"in{k}(v{n})"
            n += f.count
        parts = [f"st.pack({', '.join(packs)})"] if self._fields else []
        if self.tail is not None:
            parts.append(f"tail.encode(obj.{self.tail_name})")
            reads[self.tail_name] = f"tail.decode(r, {self.tail_name!r})"
        encode = " + ".join(parts) or 'b""'
        args: list[str] = []  # positional up to the first field not on the wire, then named
        for name in init:
            if name not in reads:
                break
            args.append(reads.pop(name))
        args += [f"{name}={value}" for name, value in reads.items()]
        args.append("**extra")
        unpack = f"    {''.join(f'v{i}, ' for i in range(n))}= st.unpack_from(r.data, pos)\n"
        fixed = (  # read the fixed fields, if any
            "    pos = r.pos\n"
            f"    if r.end - pos < {self.size}:\n"
            "        raise short(r)\n"
            f"{unpack if n else ''}"
            f"    r.pos = pos + {self.size}\n"
        )
        return (
            "def encode(obj):\n"
            "    try:\n"
            f"{''.join(checks)}"
            f"        return {encode}\n"
            "    except (struct_error, OverflowError, TypeError, AttributeError) as e:\n"
            "        raise bad_value(obj, e) from None\n"
            "\n"
            "def decode(cls, r, **extra):\n"
            f"{fixed if self._fields else ''}"
            f"    return cls({', '.join(args)})\n"
        )

    def _short(self, r: Reader) -> Exception:
        left = r.end - r.pos
        for f in self._fields:
            if f.offset + f.size > left:
                return r.fail(f.name, f"truncated: needs {f.size} bytes, {left - f.offset} left")
        raise AssertionError("the layout fits")

    def _bad_value(self, obj: Any, err: Exception) -> Exception:
        """The error naming the first field whose value does not fit (the slow path)."""
        where = type(obj).__name__
        for f in self._fields:
            if not f.count:
                continue
            v = getattr(obj, f.name, None)
            try:
                struct.pack("!" + f.code, *f.to_wire(v))
            except (struct.error, OverflowError, TypeError, AttributeError) as e:
                return EncodeError(f"{where}.{f.name}", f"{v!r} does not fit {f.code}: {e}")
        if self.tail is not None:  # the fixed fields fit: the tail's value did not
            return EncodeError(f"{where}.{self.tail_name}", str(err))
        return err


class Wired:
    """Base of the classes :func:`layout` makes: their body is their :class:`Layout`.

    These two methods say what every such class does; :func:`layout` puts the compiled
    ``WIRE.encode``/``WIRE.decode`` in their place on the class itself (one call less per
    object), unless the class writes its own.
    """

    __slots__ = ()
    WIRE: ClassVar[Layout]

    def encode_body(self) -> bytes:
        return self.WIRE.encode(self)

    @classmethod
    def decode_body(cls, r: Reader, **extra: Any) -> Self:
        """The object read from ``r``; ``extra`` are fields from outside the body (header
        flags such as PCEP's P and I, an ERO subobject's L bit)."""
        obj: Self = cls.WIRE.decode(cls, r, **extra)
        return obj


W = TypeVar("W", bound=Wired)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def layout(spec: str = "", **parts: Tail | FieldType) -> Callable[[type[W]], type[W]]:
    """Make the class a frozen, slotted dataclass whose body is ``Layout(cls, spec, **parts)``
    (a subclass without fields of its own shares it). A name in the layout that is not a
    field of the class is an error at import time."""

    def make(cls: type[W]) -> type[W]:
        made = dataclasses.dataclass(frozen=True, slots=True)(cls)
        made.WIRE = wire = Layout(made, spec, **parts)
        # where the class keeps Wired's methods, the compiled ones take their place: the
        # same code, one call less on every object encoded or decoded
        if made.encode_body is Wired.encode_body:
            made.encode_body = wire.encode  # type: ignore[method-assign,assignment]
        if made.decode_body.__func__ is Wired.decode_body.__func__:  # type: ignore[attr-defined]
            made.decode_body = classmethod(wire.decode)  # type: ignore[method-assign,assignment]
        return made

    return make
