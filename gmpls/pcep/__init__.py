"""PCEP (RFC 5440): wire codec, QE service request helpers and the sans-I/O session.

- :mod:`gmpls.pcep.constants` — message types, object classes, error codes
- :mod:`gmpls.pcep.tlv` — TLVs (NO-PATH-VECTOR, OVERLOAD-DURATION, REQ-MISSING, unknown)
- :mod:`gmpls.pcep.objects` — objects (§7), P-flag rules (:func:`unprocessable`)
- :mod:`gmpls.pcep.messages` — messages and their grammars (§6), stream framing
- :mod:`gmpls.pcep.qemetrics` — the QE METRIC objects of docs/design.md#qe-metric-types
- :mod:`gmpls.pcep.events` and :mod:`gmpls.pcep.session` — the sans-I/O session

Import each name from the module that defines it.
"""
