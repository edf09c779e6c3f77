"""Peers run their shift from any phone: sign in with a PIN, then available, break or sign off.

A peer calling from their registered number is recognised by its keyed hash (the hook in
:func:`ivr.voice.incoming`); from another phone they press 8 at the language question and
enter their peer number. PINs are stored as werkzeug hashes; five wrong PINs in a row lock
sign-in for 15 minutes. After the PIN, a signed token bound to the CallSid carries the
sign-in through the menu (no server memory, and a token is useless on another call).
"""
from __future__ import annotations

from flask import Blueprint, Response, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.security import check_password_hash

from callflows import Flow, line, peers
from ivr.db import get_session
from ivr.services import services
from ivr.signature import require_twilio_signature
from ivr.twiml import Speaker, to_response
from models import Peer, utcnow

bp = Blueprint("peer_phone", __name__, url_prefix="/peer/phone")
bp.before_request(require_twilio_signature)

TOKEN_MAX_AGE_S = 3600
CHOICES = {"1": "available", "2": "break", "3": "signed_off"}


def _flow_for(peer: Peer | None) -> Flow:
    flows = services().flows
    for lang in (peer.languages if peer else None) or []:
        if lang in flows:
            return flows[lang]
    return flows["en"]


def _abs(endpoint: str, **values: object) -> str:
    return services().settings.public_base_url + url_for(endpoint, **values)


def greet_peer(peer: Peer) -> VoiceResponse:
    """A call from a peer's registered phone: ask for the PIN."""
    speaker = Speaker(_flow_for(peer))
    return speaker.keypad([speaker.text("peer_signin")], _abs("peer_phone.pin", peer=peer.id))


def ask_peer_id(flow: Flow) -> VoiceResponse:
    """The hidden option from another phone: ask for the peer number first."""
    speaker = Speaker(flow)
    return speaker.keypad([speaker.text("peer_id_prompt")], _abs("peer_phone.peer_id", lang=flow.language))


@bp.post("/id")
def peer_id() -> Response:
    """The peer number was entered: ask for the PIN (the same answer whether the id exists or not)."""
    digits = request.form.get("Digits", "")
    flow = services().flows.get(request.args.get("lang", "en")) or services().flows["en"]
    speaker = Speaker(flow)
    if not digits.isdigit():
        return to_response(ask_peer_id(flow))
    return to_response(speaker.keypad([speaker.text("peer_signin")], _abs("peer_phone.pin", peer=int(digits))))


@bp.post("/pin")
def pin() -> Response:
    """Check the PIN; wrong PINs count towards a lock."""
    session = get_session()
    now = utcnow()
    peer = session.get(Peer, request.args.get("peer", type=int) or 0)
    speaker = Speaker(_flow_for(peer))
    digits = request.form.get("Digits", "")
    again = _abs("peer_phone.pin", peer=request.args.get("peer", ""))
    if not digits and not peers.locked_minutes(peer, now):
        return to_response(speaker.keypad([speaker.text("peer_signin")], again))
    # The same hash check whatever the peer: a wrong id and a wrong PIN sound alike.
    pin_ok = bool(peer is not None and peer.pin_hash and digits and check_password_hash(peer.pin_hash, digits))
    result = peers.sign_in(session, peer, pin_ok, now)
    if result.outcome == "locked":
        return to_response(speaker.say_then_hangup([speaker.text("peer_locked", minutes=result.minutes)]))
    if result.outcome == "wrong":
        return to_response(speaker.keypad([speaker.text("peer_pin_wrong"), speaker.text("peer_signin")], again))
    assert peer is not None
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
    if data.get("call") != request.form.get("CallSid", ""):
        return None
    return session.get(Peer, int(data["peer"]))


def _menu(session: Session, peer: Peer, token: str, preface: list[str] | None = None) -> VoiceResponse:
    speaker = Speaker(_flow_for(peer))
    lines = [*(preface or []),
             speaker.text("peer_status", status=speaker.text(f"status_{peer.status}")),
             speaker.text("peer_waiting", count=line.waiting_count(session)),
             speaker.text("peer_menu")]
    return speaker.keypad(lines, _abs("peer_phone.choice", t=token), finish_on_key="", num_digits=1)


@bp.post("/choice")
def choice() -> Response:
    """1 available, 2 break, 3 sign off; star (or nothing) repeats."""
    session = get_session()
    peer = _signed_in_peer(session)
    if peer is None:
        speaker = Speaker(services().flows["en"])
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    speaker = Speaker(_flow_for(peer))
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
