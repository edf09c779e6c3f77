"""Nobody stranded: hang-ups and dropped lines at awkward moments, played through the phone network.

Every call here runs end to end: the app over real HTTP, the phone network ringing the peers'
phones and playing them (``accept``, ``drop``...), the caller a simulated phone following the
app's TwiML, status callbacks as Twilio sends them. What each person heard is asserted.
"""
from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callflows import callbacks, line
from callflows.times import aware
from models import Call, CallbackRequest, Peer, utcnow
from models.tables import CallbackAttempt, PeerRequest, RingLeg
from simulator.engine import HttpTransport, HubClient, Leg, ScriptActor, new_call_sid
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

LINE = "+15005550006"
TAKEN = '"Another peer already took this call. Thank you."'


@pytest.fixture(autouse=True)
def net(app_config: dict[str, Any], phone_network: Any) -> Any:
    """The phone network, wired in before the app is built."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


@pytest.fixture
def wired(net: Any, live_app: str) -> Any:
    """The network rings phones and reaches the app where it really listens."""
    net.state.rewrite[PUBLIC_BASE] = live_app
    net.state.ring_s = 0.1
    return net


class DropsBeforeRoom(ScriptActor):
    """A caller whose line drops on the way into the conversation."""

    drops_before_room = True


def place_call(net: Any, live_app: str, number: str, actor: ScriptActor, lines: list[str] | None = None,
               pace: float = 0.0) -> Leg:
    """A call to the line from ``number``, registered with the network, with the number's status callback."""
    hub = HubClient(net.base_url, want_events=False)
    sid = hub.register(number, LINE, new_call_sid())
    return Leg(HttpTransport({PUBLIC_BASE: live_app}), TEST_AUTH_TOKEN, sid, number, LINE, actor,
               account_sid=TEST_ACCOUNT_SID, hub=hub, status_callback=f"{PUBLIC_BASE}/voice/status", max_s=60,
               out=(lines.append if lines is not None else (lambda line: None)), pace=pace)


def run(leg: Leg, url: str = f"{PUBLIC_BASE}/voice/incoming") -> threading.Thread:
    """Run a call in a thread (the test waits for it with join)."""
    thread = threading.Thread(target=leg.run, args=(url,), daemon=True)
    thread.start()
    return thread


def heard_by(net: Any, number: str, since: int = 0) -> list[str]:
    """What the phone at ``number`` heard, from the network's log."""
    prefix = f"{number} hears "
    return [e.removeprefix(prefix) for e in net.state.events[since:] if e.startswith(prefix)]


def status_of(db: Any, peer_id: int) -> str:
    db.expire_all()
    return str(db.get(Peer, peer_id).status)


# (a) the peer's line drops between pressing 1 and the room ---------------------------------


def test_peer_dropped_before_the_room_the_caller_is_told_and_the_next_peer_takes_them(
        svc: Any, db: Any, wired: Any, live_app: str, app_config: Any) -> None:
    svc.settings = svc.settings.replace(peers_ring_at_once=1)
    dropper = make_peer(db, svc.vault, display_name="drop", phone="+15555550501")
    other = make_peer(db, svc.vault, display_name="other", phone="+15555550502",
                      last_call_ended_at=utcnow() - timedelta(minutes=1))
    wired.state.answers.update({"+15555550501": "drop", "+15555550502": "accept"})
    caller = place_call(wired, live_app, "+15555550601", ScriptActor(["1", "1"], talk_s=0.5, hold_s=30))
    run(caller).join(60)
    wired.state.wait_for_legs()
    heard = caller.heard
    lost = "The peer's line dropped before you were connected. You keep your place in line."
    assert lost in heard, heard
    # Told, then back in the queue, then connected with the next peer (never hold music forever).
    after = heard[heard.index(lost):]
    assert "A peer is here. Connecting you now." in after
    db.expire_all()
    req = db.scalar(select(PeerRequest))
    assert req.status == "ended" and req.peer_id == other.id
    legs = {leg.peer_id: leg.status for leg in db.scalars(select(RingLeg))}
    assert legs == {dropper.id: "dropped", other.id: "completed"}
    assert status_of(db, dropper.id) == "available"
    assert status_of(db, other.id) == "wrap_up"


# (b) the caller hangs up after a peer accepted, before the room -----------------------------


def test_caller_gone_after_the_peer_accepted_the_peer_is_told_and_wraps_up(
        svc: Any, db: Any, wired: Any, live_app: str) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550511")
    wired.state.answers["+15555550511"] = "accept"
    caller = place_call(wired, live_app, "+15555550611", DropsBeforeRoom(["1", "1"], hold_s=30))
    run(caller).join(60)
    wired.state.wait_for_legs()
    assert caller.heard[-2:] == ["A peer is here. Connecting you now.",
                                 "A supervisor or a peer in training may listen to support your peer. If you need "
                                 "more help, your peer can add the crisis line while staying on the line with you."]
    assert heard_by(wired, "+15555550511")[-1] == '"The caller hung up before you were connected. Thank you."'
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "abandoned"
    assert db.scalar(select(RingLeg)).status == "completed"
    assert status_of(db, peer.id) == "wrap_up"
    assert wired.state.conferences == {}  # nobody left in a room


def test_called_back_caller_hanging_up_at_the_greeting_is_not_a_completed_callback(
        svc: Any, db: Any, wired: Any) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550521")
    number = "+15555550621"
    wired.state.answers.update({"+15555550521": "accept", number: "drop"})
    now = utcnow()
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text(number), language="en", window="now",
                         allow_message=False, status="pending", arrived_at=now, not_before=not_before,
                         not_after=not_after, due_at=not_before)
    db.add(cb)
    db.commit()
    assert line.dispatch(db, svc, now) == 1
    wired.state.wait_for_legs()
    # Caller leg: answered, greeted, dropped before the room; the peer in the room was told.
    assert heard_by(wired, number) == ['"Hello. This is the call back you asked for. Connecting you now."']
    assert heard_by(wired, "+15555550521")[-1] == ('"The caller hung up before you were connected. '
                                                   'We will try them again later. Thank you."')
    db.expire_all()
    cb = db.get(CallbackRequest, cb.id)
    assert (cb.status, cb.outcome, cb.attempts) == ("pending", "caller_left", 1)
    assert db.scalar(select(CallbackAttempt)).outcome == "caller_left"
    assert status_of(db, peer.id) == "wrap_up"
    assert wired.state.conferences == {}


def test_a_callback_is_completed_once_the_caller_was_in_the_room(svc: Any, db: Any, wired: Any) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550531")
    number = "+15555550631"
    wired.state.answers.update({"+15555550531": "accept", number: "accept"})
    wired.state.pace = 0.0
    now = utcnow()
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text(number), language="en", window="now",
                         allow_message=False, status="pending", arrived_at=now, not_before=not_before,
                         not_after=not_after, due_at=not_before)
    db.add(cb)
    db.commit()
    line.dispatch(db, svc, now)
    # Both phones stay in the room until the test ends the caller's call, as a caller hanging up.
    room = f"callback-{db.scalar(select(CallbackAttempt)).id}"
    for _ in range(200):
        if len(wired.state.conferences.get(room, {})) == 2:
            break
        threading.Event().wait(0.05)
    db.expire_all()
    attempt = db.scalar(select(CallbackAttempt))
    caller_sid = attempt.caller_call_sid
    HubClient(wired.base_url).act(caller_sid, "leave")  # the caller leaves the room: it ends for both
    wired.state.wait_for_legs()
    db.expire_all()
    cb = db.get(CallbackRequest, cb.id)
    assert (cb.status, cb.outcome, cb.attempts) == ("completed", "connected", 1)
    assert status_of(db, peer.id) == "wrap_up"


# (d) a peer who goes available by phone is not rung during that call ------------------------


def test_a_peer_going_available_by_phone_is_rung_only_after_that_call(
        svc: Any, db: Any, wired: Any, live_app: str) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550541", status="signed_off", pin="4321")
    make_peer(db, svc.vault, display_name="on a break", phone="+15555550542", status="break")  # the line is open
    wired.state.answers["+15555550541"] = "accept"
    waiting = place_call(wired, live_app, "+15555550641", ScriptActor(["1", "1"], talk_s=0.3, hold_s=30))
    waiting_run = run(waiting)
    for _ in range(200):  # the caller is on hold
        if db.scalar(select(PeerRequest.status)) == "waiting":
            break
        threading.Event().wait(0.05)
    # The peer signs on by phone; their words take a while (pace), while the caller's hold polls run.
    sign_on = place_call(wired, live_app, "+15555550541", ScriptActor(["4321", "1"]), pace=0.3)
    run(sign_on).join(60)
    waiting_run.join(60)
    wired.state.wait_for_legs()
    assert "Hang up now, and we will ring you when a caller needs a peer." in sign_on.heard
    assert "A peer is here. Connecting you now." in waiting.heard
    db.expire_all()
    ended = db.scalar(select(Call.ended_at).where(Call.call_sid == sign_on.call_sid))
    (leg,) = db.scalars(select(RingLeg)).all()  # rung once, after the sign-on call: no busy, no miss
    assert ended is not None and aware(leg.created_at) >= aware(ended)
    assert leg.status == "completed"
    assert db.get(Peer, peer.id).missed_offers == 0


# (e) two peers press 1 together: the loser hears why ------------------------------------------


def test_twenty_races_the_loser_always_hears_the_call_was_taken(svc: Any, db: Any, wired: Any,
                                                                 live_app: str) -> None:
    a = make_peer(db, svc.vault, display_name="a", phone="+15555550551")
    b = make_peer(db, svc.vault, display_name="b", phone="+15555550552")
    wired.state.answers.update({"+15555550551": "accept", "+15555550552": "accept"})
    raced = 0
    for race in range(20):
        since = len(wired.state.events)
        caller = place_call(wired, live_app, f"+155555507{race:02d}", ScriptActor(["1", "1"], talk_s=0.2, hold_s=30))
        run(caller).join(60)
        wired.state.wait_for_legs()
        assert "A peer is here. Connecting you now." in caller.heard, (race, caller.heard)
        said = [heard_by(wired, phone, since) for phone in ("+15555550551", "+15555550552")]
        winners = [h for h in said if '"Thank you. Connecting you to the caller now."' in h]
        losers = [h for h in said if h not in winners]
        assert (len(losers), len(winners)) == (1, 1), (race, said)
        if losers[0]:  # the loser picked up too (a phone still ringing is canceled and hears nothing)
            # Both pressed 1: the loser hears why, last, before the line hangs up.
            assert losers[0][-1] == TAKEN, (race, losers[0])
            assert TAKEN not in winners[0]
            raced += 1
        db.expire_all()  # one call, one peer: the winner wraps up, the loser is free again
        assert sorted(str(db.get(Peer, p.id).status) for p in (a, b)) == ["available", "wrap_up"], race
        for peer in (a, b):  # ready for the next race
            row = db.get(Peer, peer.id)
            db.refresh(row)
            row.status = "available"
        db.commit()
    assert raced >= 1  # most of the twenty are true races (both phones answered)
