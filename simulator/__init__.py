"""The caller simulator and a local stand-in for Twilio's REST API (the "phone network").

A developer tool: it imports no other peerline package and the production code never
imports it. It speaks to the app only over HTTP (signed like Twilio) or a Flask test client.

Exceptions (defined in :mod:`simulator.errors`): :class:`SimulatorError` is the base for
errors raised here; :class:`TransportError` is one.
"""
from __future__ import annotations

from simulator.errors import SimulatorError, TransportError

__all__ = ["SimulatorError", "TransportError"]
