"""RSVP-TE for GMPLS (RFC 2205, RFC 3209, RFC 3473): the wire codec and, in
:mod:`gmpls.rsvp.core`, the sans-I/O signalling state machine.

- :mod:`gmpls.rsvp.constants`: message types, object classes, error codes;
- :mod:`gmpls.rsvp.objects`: the objects, one class per (class, C-Type);
- :mod:`gmpls.rsvp.message`: messages, :func:`decode` (re-exported here);
- :mod:`gmpls.rsvp.events`: what the core takes and returns.

See docs/rsvp.md for the objects carried, the choices made and the QE error codes.
"""

from gmpls.rsvp.message import Message, decode

__all__ = ["Message", "decode"]
