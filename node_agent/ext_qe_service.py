"""Extension hook (see :mod:`node_agent.daemon`): RSVP-TE and the QE service of
:mod:`node_agent.qe_service` in the node agent."""

from node_agent.qe_service import setup

__all__ = ["setup"]
