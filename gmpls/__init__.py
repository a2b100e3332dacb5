"""GMPLS wire codecs and sans-I/O protocol cores shared by the node agent and the PCE.

Nothing in this package performs I/O: no sockets, no asyncio, no threads. Codecs take
bytes and return frozen dataclasses (and back); state machines take events and the
current time and return actions. ``tests/test_layering.py`` enforces it.
"""
