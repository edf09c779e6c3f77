"""Menus as data: loading, validation and a pure engine. Plain Python, no Flask.

Exceptions:

- :class:`FlowError`: base class.
- :class:`FlowValidationError`: a flow file is wrong; ``.problems`` lists each problem with
  the node id it concerns.
"""
from __future__ import annotations


class FlowError(Exception):
    """Base class for call-flow errors."""


class FlowValidationError(FlowError):
    """A flow failed validation; ``problems`` names every offending node."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


from callflows.engine import Transition, step  # noqa: E402
from callflows.loader import ACTIONS, Flow, Menu, Option, load_flow, load_flows  # noqa: E402

__all__ = [
    "ACTIONS",
    "Flow",
    "FlowError",
    "FlowValidationError",
    "Menu",
    "Option",
    "Transition",
    "load_flow",
    "load_flows",
    "step",
]
