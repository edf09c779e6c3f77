"""The caller simulator and a local stand-in for Twilio's REST API (the "phone network").

Exceptions: :class:`SimulatorError` is the base for errors raised here.
"""
from __future__ import annotations


class SimulatorError(Exception):
    """Base class for simulator errors."""
