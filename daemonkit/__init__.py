"""The daemons' shared asyncio layer: what more than one of the four daemons uses.

- :mod:`daemonkit.daemon`: the daemon skeleton (common flags, JSON-lines logging,
  SIGTERM/SIGINT shutdown, exit status 2 with one line for a bad topology or config);
- :mod:`daemonkit.cli`: the telnet CLI server and its command table;
- :mod:`daemonkit.timer`: the one timer of a sans-I/O core's shell;
- :mod:`daemonkit.ospf`: the OSPF speaker on raw IP protocol 89 sockets;
- :mod:`daemonkit.pcep`: the PCEP client (PCC);
- :mod:`daemonkit.etsi004`: the ETSI GS QKD 004 client.

It stands on :mod:`gmpls` (codecs and sans-I/O cores) and never imports a daemon package.
"""
