"""The exceptions of the ``callflows`` package (the line's rules), under one base.

- :class:`CallflowError`: base class of everything raised here.
- :class:`FlowError`: a call-flow file problem; :class:`FlowValidationError` lists each
  problem with the node id it concerns (``.problems``).
- :class:`SettingsError`: a setting cannot be used (``.problems`` names each variable); the
  web app and the worker refuse to start with it.
- :class:`TwilioGatewayError`: Twilio's REST API (or the network to it) refused or failed a request.
- :class:`SchedulingError`: background work could not be scheduled (Redis is down); the
  reconcilers repair it later, so callers of the rules log it and go on.
- :class:`RetentionError`: a retention policy is unusable, or the database refused a purge.
- :class:`ResearchExportError`: a research export cannot be written (Parquet without pyarrow).
"""
from __future__ import annotations


class CallflowError(Exception):
    """Base class of the errors raised by the line's rules."""


class FlowError(CallflowError):
    """Base class for call-flow errors."""


class FlowValidationError(FlowError):
    """A flow failed validation; ``problems`` names every offending node."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class SettingsError(CallflowError, ValueError):
    """One or more settings cannot be used; ``problems`` says which and why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class TwilioGatewayError(CallflowError):
    """Twilio's REST API (or the network to it) refused or failed a request."""


class SchedulingError(CallflowError):
    """Background work could not be scheduled (the job store is unreachable)."""


class RetentionError(CallflowError):
    """The retention policy is unusable, or the database refused the purge."""


class ResearchExportError(CallflowError):
    """A research export cannot be written as asked."""
