"""What the three QKD codecs share: a message is a class whose body is a layout
(:mod:`gmpls.layout`) and whose type code its registry sets (:class:`QkdMessage`), and a
datagram's body is decoded by that code (:func:`decode_body`).

Each codec keeps its own header (ETSI 004 and IDQ3P carry a request ID, the sync channel a
sequence number and an HMAC): the header's fields that are the message's own, such as the
request ID, reach the class as ``extra`` fields of ``decode_body``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar

from gmpls.layout import Wired
from gmpls.registry import Registry
from gmpls.wire import Reader


class QkdMessage(Wired):
    """A message of one of the QKD codecs; ``TYPE`` is the code it is registered under."""

    __slots__ = ()
    TYPE: ClassVar[IntEnum]


def decode_body(registry: Registry[Any], mtype: int, r: Reader, **extra: Any) -> Any:
    """The message of type ``mtype`` whose body is the rest of ``r``, which it must fill;
    ``extra`` are its fields from the header. Errors name the field under the type's name
    (``etsi004.CLOSE_REPLY.status``)."""
    cls = registry.get(mtype)
    if cls is None:
        raise r.fail("type", f"unknown message type {mtype:#04x}")
    body = r.sub(r.remaining, cls.TYPE.name)
    msg = cls.decode_body(body, **extra)
    body.expect_end("end")
    return msg
