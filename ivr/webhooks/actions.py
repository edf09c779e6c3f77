"""The one registry of what a call can be handed to, so that handler modules never import each other.

Each handler module registers its handlers here when it is imported; ``create_app`` imports
them all, then :func:`unhandled` checks that every action the flow files may use has one.
Two kinds of name live in the one table:

- flow actions, the ``action:`` targets of ``callflows/data/*.yaml`` (``peer``, ``callback``,
  ``voicemail``, ``callback_now``...), each a ``handler(ctx)``; ``story:<topic>`` is one
  topic handler ``handler(ctx, topic)`` registered under ``story``;
- hand-overs between handler modules that no flow file names (:data:`HAND_OVERS`): the start
  of a call asking a returning caller about their pending callback, a peer's sign-in.

This module imports only the shared :mod:`ivr.webhooks.context` and :mod:`ivr.twiml`. A
handler module imports it to register and to hand over, and never another handler module,
so the graph of imports has no cycle and no import hides inside a function.
"""
from __future__ import annotations

from typing import Callable, Iterable

from twilio.twiml.voice_response import VoiceResponse

from ivr.webhooks.context import Ctx

Handler = Callable[[Ctx], VoiceResponse]
TopicHandler = Callable[[Ctx, str], VoiceResponse]

# Hand-overs: names no flow file uses, so a menu can never reach them.
PENDING_CALLBACK = "pending_callback"  # a call starts: the caller keeps or cancels their waiting callback
PEER_SIGN_IN = "peer_sign_in"  # a peer calls from their registered phone: ask for the PIN
PEER_ID = "peer_id"  # key 8 at the language question: a peer on another phone gives their peer number
HAND_OVERS = frozenset({PENDING_CALLBACK, PEER_SIGN_IN, PEER_ID})

_handlers: dict[str, Handler] = {}
_topic_handlers: dict[str, TopicHandler] = {}


def action(name: str) -> Callable[[Handler], Handler]:
    """Register ``handler(ctx)`` for a flow action or a hand-over (one handler per name)."""
    def register(handler: Handler) -> Handler:
        if name in _handlers:
            raise ValueError(f"action {name!r} already has a handler: {_handlers[name].__qualname__}")
        _handlers[name] = handler
        return handler
    return register


def topic_action(family: str) -> Callable[[TopicHandler], TopicHandler]:
    """Register ``handler(ctx, topic)`` for the flow actions ``<family>:<topic>``."""
    def register(handler: TopicHandler) -> TopicHandler:
        if family in _topic_handlers:
            raise ValueError(f"actions {family}:<topic> already have a handler")
        _topic_handlers[family] = handler
        return handler
    return register


def perform(ctx: Ctx, name: str) -> VoiceResponse:
    """Carry out a flow action or a hand-over; LookupError for a name nobody registered (a programming error)."""
    handler = _handlers.get(name)
    if handler is not None:
        return handler(ctx)
    family, colon, topic = name.partition(":")
    if colon and family in _topic_handlers:
        return _topic_handlers[family](ctx, topic)
    raise LookupError(f"no handler for action {name!r}")


def is_flow_action(name: str) -> bool:
    """True when ``name`` is a flow action with a handler (hand-overs are not reachable from a URL)."""
    if name in HAND_OVERS:
        return False
    family, colon, _topic = name.partition(":")
    return name in _handlers or bool(colon and family in _topic_handlers)


def flow_actions() -> frozenset[str]:
    """The flow actions with a handler; a topic family shows as ``story:``."""
    return frozenset((set(_handlers) - HAND_OVERS) | {f"{family}:" for family in _topic_handlers})


def unhandled(names: Iterable[str], families: Iterable[str]) -> list[str]:
    """The flow actions and topic families (``story:``) and hand-overs that have no handler yet."""
    missing = [name for name in (*names, *HAND_OVERS) if name not in _handlers]
    missing += [f"{family}:" for family in families if family not in _topic_handlers]
    return sorted(missing)
