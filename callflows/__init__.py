"""Menus as data: loading, validation and a pure engine. Plain Python, no Flask.

The package also holds the line's rules as plain Python (no Flask, werkzeug or RQ): peers
and their state (:mod:`callflows.peers`), who gets rung and the first-pickup claim
(:mod:`callflows.routing`), callbacks (:mod:`callflows.callbacks`), the one arrival-ordered
line and the events that free a peer (:mod:`callflows.line`), stories, research export and
retention, the settings, the services of a process and the Twilio REST client.

Exceptions live in :mod:`callflows.errors`, under :class:`~callflows.errors.CallflowError`.
"""
from __future__ import annotations


from callflows.errors import FlowError, FlowValidationError
from callflows.engine import Transition, choose_language, step
from callflows.loader import ACTIONS, TOPIC_ACTIONS, Flow, Menu, Option, load_flow, load_flows

__all__ = [
    "ACTIONS",
    "Flow",
    "FlowError",
    "FlowValidationError",
    "Menu",
    "Option",
    "TOPIC_ACTIONS",
    "Transition",
    "choose_language",
    "load_flow",
    "load_flows",
    "step",
]
