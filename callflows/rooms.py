"""The private room of one caller and their peer, whichever way they met: a live call or a callback.

A live caller meets the peer who accepted them in ``call-<request id>``
(:func:`callflows.routing.room_name`); a called-back caller meets the peer the line rang first
in ``callback-<attempt id>`` (:func:`callflows.callbacks.room_name`). The in-call help
(:mod:`callflows.escalation`: the peer's ``*`` menu, the warm hand-off, the supervisor, listeners)
works on a :class:`Room`, so it holds the same way for both. A room wraps the rows it belongs to
(never copies of them), so what it says follows the rows as the request changes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from callflows import callbacks, routing
from callflows.services import Services
from models import CallbackRequest
from models.escalation import Handoff, MonitorSession
from models.tables import CallbackAttempt, PeerRequest, RingLeg

# What Twilio fetches for a room, by what it is for: the endpoint of a live call's and of a callback's.
# The live call's routes are keyed by the peer's leg (the peer's side) or the request (the caller's).
_LIVE = {"peer_notice": ("routing.in_call_peer_notice", "leg"), "rejoin": ("routing.in_call_rejoin", "leg"),
         "caller_notice": ("routing.in_call_caller_notice", "req"), "caller_done": ("routing.caller_done", "req")}
_CALLBACK = {"peer_notice": "callbacks.in_call_peer_notice", "rejoin": "callbacks.in_call_rejoin",
             "caller_notice": "callbacks.in_call_caller_notice",
             # The caller's own Dial action: the goodbye a callback caller hears when the call with the peer ends.
             "caller_done": "callbacks.caller_after"}


@dataclass
class Room:
    """One caller and their peer: a live request (with the peer's accepted leg) or a callback attempt."""

    req: PeerRequest | None = None
    leg: RingLeg | None = None  # a live call's: the leg of the peer who accepted (None when not looked up)
    attempt: CallbackAttempt | None = None
    callback: CallbackRequest | None = None  # a callback attempt's request

    @property
    def is_callback(self) -> bool:
        """True for a callback attempt's room."""
        return self.attempt is not None

    def _attempt(self) -> CallbackAttempt:
        assert self.attempt is not None, "a room is a live request's or a callback attempt's"
        return self.attempt

    def _req(self) -> PeerRequest:
        assert self.req is not None, "a room is a live request's or a callback attempt's"
        return self.req

    @property
    def name(self) -> str:
        """The conference's friendly name."""
        return callbacks.room_name(self._attempt().id) if self.is_callback else routing.room_name(self._req())

    @property
    def label(self) -> str:
        """What logs call it."""
        return f"callback attempt {self._attempt().id}" if self.is_callback else f"request {self._req().id}"

    @property
    def talking(self) -> bool:
        """True while the caller and their peer are in conversation (the peer may be in their menu)."""
        if self.is_callback:
            attempt = self._attempt()
            # Connected and past the greeting into the room, and the caller's side of it not over yet.
            return (attempt.stage == "connected" and attempt.caller_joined_at is not None
                    and self.callback is not None and self.callback.status == "dialing")
        return self._req().status == "connected"

    @property
    def caller_call_sid(self) -> str | None:
        """The caller's call."""
        return self._attempt().caller_call_sid if self.is_callback else self._req().call_sid

    @property
    def peer_call_sid(self) -> str | None:
        """The peer's call while it is still theirs in this conversation (None once they left)."""
        if self.is_callback:
            attempt = self._attempt()
            return attempt.peer_call_sid if attempt.stage == "connected" else None
        return self.leg.call_sid if self.leg is not None and self.leg.status == "accepted" else None

    @property
    def peer_id(self) -> int | None:
        """The peer who is (or was) with the caller."""
        return self._attempt().peer_id if self.is_callback else self._req().peer_id

    @property
    def language(self) -> str:
        """The caller's language."""
        if self.is_callback:
            return self.callback.language if self.callback is not None else "en"
        return self._req().language

    @property
    def event_sid(self) -> str | None:
        """The call the room's steps are recorded on: a live caller's call (a callback's legs have no call row)."""
        return None if self.is_callback else self._req().call_sid

    def owner(self) -> dict[str, Any]:
        """The columns that tie a hand-off or a monitor session to this room (exactly one is set)."""
        if self.is_callback:
            return {"callback_attempt_id": self._attempt().id, "request_id": None}
        return {"request_id": self._req().id, "callback_attempt_id": None}

    def audit_target(self) -> tuple[str, int]:
        """What the audit log names: ``("peer_request", id)`` or ``("callback_attempt", id)``."""
        return ("callback_attempt", self._attempt().id) if self.is_callback else ("peer_request", self._req().id)

    def url(self, svc: Services, purpose: str, /, **values: Any) -> str:
        """A URL Twilio fetches for this room: ``peer_notice``, ``rejoin``, ``caller_notice`` or ``caller_done``."""
        if purpose == "caller_notice":
            values = {"lang": self.language, **values}
        if self.is_callback:
            return svc.public_url(_CALLBACK[purpose], attempt_id=self._attempt().id, **values)
        endpoint, key = _LIVE[purpose]
        if key == "leg":
            assert self.leg is not None, "the peer's leg is looked up for the peer's URLs"
            return svc.public_url(endpoint, leg_id=self.leg.id, **values)
        return svc.public_url(endpoint, req_id=self._req().id, **values)


def peer_leg(session: Session, req: PeerRequest) -> RingLeg | None:
    """The accepted leg of the peer who took this caller (None before anyone accepted)."""
    return session.scalars(select(RingLeg).where(RingLeg.request_id == req.id, RingLeg.peer_id == req.peer_id,
                                                 RingLeg.status.in_(("accepted", "completed")))
                           .order_by(RingLeg.id.desc())).first()


def of_request(session: Session, req: PeerRequest) -> Room:
    """A live caller's room, with their peer's leg."""
    return Room(req=req, leg=peer_leg(session, req))


def of_attempt(session: Session, attempt: CallbackAttempt) -> Room:
    """A callback attempt's room."""
    return Room(attempt=attempt, callback=session.get(CallbackRequest, attempt.callback_id))


def of_row(session: Session, row: Handoff | MonitorSession) -> Room | None:
    """The room a hand-off or a monitor session belongs to (None when its rows are gone)."""
    if row.callback_attempt_id is not None:
        attempt = session.get(CallbackAttempt, row.callback_attempt_id)
        return of_attempt(session, attempt) if attempt is not None else None
    req = session.get(PeerRequest, row.request_id) if row.request_id is not None else None
    return of_request(session, req) if req is not None else None


def in_room(model: type[Handoff] | type[MonitorSession], room: Room) -> ColumnElement[bool]:
    """The WHERE clause that picks this room's hand-offs or monitor sessions."""
    if room.is_callback:
        return model.callback_attempt_id == room._attempt().id
    return model.request_id == room._req().id
