"""OSPFv2 with opaque LSAs, TE and Router Information: wire codecs and the sans-I/O core.

Importing the package registers every LSA body and TLV class, so :func:`packet.decode`
and :meth:`lsa.LSA.decode` know all of them.
"""

from gmpls.ospf import lsa, packet, ri, te  # noqa: F401  (registration side effects)
