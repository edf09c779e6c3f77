"""The simulator's exceptions: one tree, so callers catch :class:`SimulatorError` alone.

- :class:`SimulatorError`: the base; something the simulator cannot go on with (the phone
  network is unreachable or refused a request, a verb needs the network, a redirect loop).
- :class:`TransportError` (a :class:`SimulatorError`): the app could not be reached or did
  not answer with TwiML.

``simulator.engine.HangUp`` and ``simulator.engine.Redirected`` are not errors: they are how
a leg learns that its call ended or was redirected, and the leg handles them itself.
"""
from __future__ import annotations


class SimulatorError(Exception):
    """Base class for simulator errors."""


class TransportError(SimulatorError):
    """The app could not be reached or did not answer with TwiML."""
