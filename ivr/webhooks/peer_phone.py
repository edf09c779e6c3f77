"""Peers run their shift from any phone: sign in with a PIN, then available, break or sign off.

A peer calling from their registered number is recognised by its keyed hash at the entry
point, which hands over to :data:`~ivr.webhooks.actions.PEER_SIGN_IN`; from another phone they
press 8 at the language question (:data:`~ivr.webhooks.actions.PEER_ID`) and enter their peer
number. PINs are stored as werkzeug hashes; five wrong PINs in a row lock sign-in for 15
minutes (:func:`callflows.peers.sign_in`). After the PIN, a signed token bound to the CallSid
carries the sign-in through the menu (no server memory, and a token is useless on another call).
"""
from __future__ import annotations

from flask import Response, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.security import check_password_hash

from callflows import Flow, line, peers, shifts
from callflows.announce import spoken_day_time
from callflows.calls import by_id
from callflows.times import aware
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import Speaker, to_response
from ivr.webhooks import actions
from ivr.webhooks.blueprints import peer_phone as bp
from ivr.webhooks.context import Ctx, caller_flow, int_param, peer_flow, public_url
from ivr.webhooks.failures import Audience, heard_by
from models import Peer, utcnow

TOKEN_MAX_AGE_S = 3600
CHOICES = {"1": "available", "2": "break", "3": "signed_off"}


@actions.action(actions.PEER_SIGN_IN)
def greet_peer(ctx: Ctx) -> VoiceResponse:
    """A call from a peer's registered phone: ask for the PIN."""
    peer = peers.peer_for_number(get_session(), services().vault, request.form.get("From"))
    if peer is not None:  # on the phone with the line from now on: never rung during this call
        peers.on_line_call(get_session(), peer, request.form.get("CallSid", ""))
    speaker = Speaker(peer_flow(peer))
    return speaker.keypad([speaker.text("peer_signin")], public_url("peer_phone.pin", peer=peer.id if peer else 0))


@actions.action(actions.PEER_ID)
def ask_peer_id(ctx: Ctx) -> VoiceResponse:
    """The hidden option from another phone: ask for the peer number first."""
    return _ask_peer_id(ctx.flow)


def _ask_peer_id(flow: Flow) -> VoiceResponse:
    speaker = Speaker(flow)
    return speaker.keypad([speaker.text("peer_id_prompt")], public_url("peer_phone.peer_id", lang=flow.language))


@bp.post("/id")
@heard_by(Audience.LEG)
def peer_id() -> Response:
    """The peer number was entered: ask for the PIN (the same answer whether the id exists or not)."""
    digits = request.form.get("Digits", "")
    flow = caller_flow(request.args.get("lang"))
    speaker = Speaker(flow)
    if not digits.isdigit():
        return to_response(_ask_peer_id(flow))
    # A number larger than any id signs in no one, like a wrong one (never an error).
    peer_number = int_param("Digits", 0, form=True)
    return to_response(speaker.keypad([speaker.text("peer_signin")], public_url("peer_phone.pin", peer=peer_number)))


@bp.post("/pin")
@heard_by(Audience.LEG)
def pin() -> Response:
    """Check the PIN; wrong PINs count towards a lock."""
    session = get_session()
    now = utcnow()
    peer_number = int_param("peer")
    peer = by_id(session, Peer, peer_number)
    speaker = Speaker(peer_flow(peer))
    digits = request.form.get("Digits", "")
    again = public_url("peer_phone.pin", peer=peer_number)
    if not digits and not peers.locked_minutes(peer, now):
        return to_response(speaker.keypad([speaker.text("peer_signin")], again))
    # The same hash check whatever the peer: a wrong id and a wrong PIN sound alike.
    pin_ok = bool(peer is not None and peer.pin_hash and digits and check_password_hash(peer.pin_hash, digits))
    result = peers.sign_in(session, peer, pin_ok, now)
    if result.outcome == "locked":
        return to_response(speaker.say_then_hangup([speaker.flow.counted("peer_locked", result.minutes, minutes=result.minutes)]))
    if result.outcome == "wrong":
        return to_response(speaker.keypad([speaker.text("peer_pin_wrong"), speaker.text("peer_signin")], again))
    assert peer is not None
    # Never rung during this call: busy to the line until its status callback says it ended.
    peers.on_line_call(session, peer, request.form.get("CallSid", ""))
    return to_response(_menu(session, peer, _token(peer)))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services().settings.secret_key, salt="peerline-peer-phone")


def _token(peer: Peer) -> str:
    return _serializer().dumps({"peer": peer.id, "call": request.form.get("CallSid", "")})


def _signed_in_peer(session: Session) -> Peer | None:
    try:
        data = _serializer().loads(request.args.get("t", ""), max_age=TOKEN_MAX_AGE_S)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("call") != request.form.get("CallSid", ""):
        return None
    return session.get(Peer, int(data["peer"]))


def _menu(session: Session, peer: Peer, token: str, preface: list[str] | None = None) -> VoiceResponse:
    speaker = Speaker(peer_flow(peer))
    if peer.status == "break" and peer.auto_break_at is not None:  # why they are on a break, first
        limit = services().settings.peer_missed_offers_break
        preface = [*(preface or []), speaker.flow.counted("peer_auto_break", limit, count=limit)]
    lines = [*(preface or []),
             speaker.text("peer_status", status=speaker.text(f"status_{peer.status}")),
             *_next_shift(session, peer, speaker.flow),
             speaker.text("peer_waiting", count=line.waiting_count(session)),
             speaker.text("peer_menu")]
    return speaker.keypad(lines, public_url("peer_phone.choice", t=token), finish_on_key="", num_digits=1)


def _next_shift(session: Session, peer: Peer, flow: Flow) -> list[str]:
    """"Your next shift starts tomorrow at 9 am." ("Your shift ends today at 4 pm." in one; nothing with none)."""
    now = utcnow()
    shift = shifts.next_shift(session, peer.id, now)
    starts = aware(shift.starts_at) if shift is not None else None
    ends = aware(shift.ends_at) if shift is not None else None
    if starts is None or ends is None:
        return []
    if starts <= now:  # a shift under way has no start to look forward to: say when it ends
        return [flow.text("peer_shift_ends", when=spoken_day_time(ends, now, services().settings, flow))]
    return [flow.text("peer_next_shift", when=spoken_day_time(starts, now, services().settings, flow))]


@bp.post("/choice")
@heard_by(Audience.LEG)
def choice() -> Response:
    """1 available, 2 break, 3 sign off; star (or nothing) repeats."""
    session = get_session()
    peer = _signed_in_peer(session)
    if peer is None:
        speaker = Speaker(caller_flow("en"))
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    speaker = Speaker(peer_flow(peer))
    status = CHOICES.get(request.form.get("Digits", ""))
    if status is None:
        return to_response(_menu(session, peer, request.args.get("t", "")))
    # Ringing waits until they have hung up this call: the rule offers them a few seconds later.
    line.set_peer_status(session, services(), peer, status, utcnow(), on_phone=True)
    session.refresh(peer)
    lines = [speaker.text("peer_status", status=speaker.text(f"status_{peer.status}")),
             speaker.text("peer_waiting", count=line.waiting_count(session))]
    if peer.status == "available":
        lines.append(speaker.text("peer_hang_up"))
    lines.append(speaker.text("peer_thanks"))
    return to_response(speaker.say_then_hangup(lines))
