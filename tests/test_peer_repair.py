"""Peer state that repairs itself, played through the phone network: the automatic break after
missed offers, and the reconciler that asks the REST API about peers held with no live leg."""
from __future__ import annotations

from typing import Any

import time
from datetime import timedelta

from rq import Queue
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from callflows import callbacks, line, peers
from models import AuditEntry, CallbackRequest, Peer, utcnow
from models.tables import CallbackAttempt, PeerRequest, RingLeg
from queues import periodic
from queues.connection import DEFAULT_QUEUE
from simulator.engine import HubClient, ScriptActor
from simulator.network_state import ENDED
from tests.factories import make_peer
from tests.test_dashboard import sign_in
from tests.test_stranded import DropsBeforeRoom, heard_by, net, place_call, run, wired  # noqa: F401  (fixtures)


def test_a_phone_that_misses_three_offers_in_a_row_puts_the_peer_on_a_break(
        svc: Any, db: Any, wired: Any, live_app: str, client: Any, dashboard_data: Any) -> None:  # noqa: F811
    sam = db.get(Peer, dashboard_data.sam.id)
    sam.pin_hash = generate_password_hash("4321")
    db.commit()
    make_peer(db, svc.vault, display_name="busy one", phone="+15555550561", status="busy")  # the line is open
    wired.state.answers[sam_phone := "+15555550101"] = "no-answer"
    callers = [place_call(wired, live_app, f"+1555555066{i}", ScriptActor(["1", "1"], hold_s=3)) for i in range(3)]
    threads = [run(c) for c in callers]
    for thread in threads:
        thread.join(60)
    wired.state.wait_for_legs()
    db.expire_all()
    sam = db.get(Peer, sam.id)
    assert (sam.status, sam.missed_offers, sam.auto_break_at is not None) == ("break", 0, True)
    legs = db.scalars(select(RingLeg).where(RingLeg.peer_id == sam.id).order_by(RingLeg.id)).all()
    assert [leg.status for leg in legs] == ["no_answer"] * 3  # rung for three callers, never again after
    (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "peer_auto_break")).all()
    assert (entry.target_type, entry.target_id) == ("peer", sam.id)
    assert entry.detail == "available -> break: 3 offers in a row not taken"
    # Told on the next call to the line...
    phone = place_call(wired, live_app, sam_phone, ScriptActor(["4321"]))
    run(phone).join(60)
    assert "You were put on a break because your phone did not take 3 calls in a row. " \
           "Press 1 when you are ready again." in phone.heard
    # ...and on their page.
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    page = client.get("/staff/me").get_data(as_text=True)
    assert "because your phone did not take 3 calls in a row" in page


def test_taking_a_call_starts_the_count_again(svc: Any, db: Any, wired: Any, live_app: str) -> None:  # noqa: F811
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550571", missed_offers=2)
    wired.state.answers["+15555550571"] = "accept"
    caller = place_call(wired, live_app, "+15555550671", ScriptActor(["1", "1"], talk_s=0.2, hold_s=10))
    run(caller).join(60)
    wired.state.wait_for_legs()
    db.expire_all()
    assert db.get(Peer, peer.id).missed_offers == 0
    assert db.get(Peer, peer.id).status == "wrap_up"



# Every way a peer becomes busy has a way back ---------------------------------------------


def wait_until(condition: Any, seconds: float = 20.0) -> None:
    """Poll ``condition`` until it holds (a test waits on an event, never on a fixed time)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def tick(work_jobs: Any, redis: Any) -> None:
    """One periodic tick, run by a real RQ worker."""
    Queue(DEFAULT_QUEUE, connection=redis).enqueue(periodic.tick)
    work_jobs(DEFAULT_QUEUE)


def backdate(db: Any, peer_id: int, seconds: float = 120) -> None:
    """The peer has been busy for a while (longer than the repair's grace)."""
    db.execute(update(Peer).where(Peer.id == peer_id).values(status_changed_at=utcnow() - timedelta(seconds=seconds)))
    db.commit()


def test_caller_gone_while_the_peer_rings_cancels_the_leg_no_zombie(svc: Any, db: Any, wired: Any,  # noqa: F811
                                                                     live_app: str) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550581")
    wired.state.answers["+15555550581"] = "accept"
    wired.state.ring_s = 30.0  # still ringing when the caller gives up
    caller = place_call(wired, live_app, "+15555550681", ScriptActor(["1", "1"], hold_s=0.5))
    run(caller).join(60)
    wired.state.wait_for_legs()
    db.expire_all()
    (leg,) = db.scalars(select(RingLeg)).all()
    assert leg.status == "caller_gone"
    assert wired.state.calls[leg.call_sid]["status"] == "canceled"  # not left ringing on the peer's phone
    assert "+15555550581 stops ringing (canceled)" in wired.state.events
    assert db.get(Peer, peer.id).status == "available"


def test_a_peer_hanging_up_in_the_whisper_is_free_and_the_next_peer_takes_the_caller(
        svc: Any, db: Any, wired: Any, live_app: str) -> None:  # noqa: F811
    svc.settings = svc.settings.replace(peers_ring_at_once=1)
    quiet = make_peer(db, svc.vault, display_name="quiet", phone="+15555550582")
    taker = make_peer(db, svc.vault, display_name="taker", phone="+15555550583",
                      last_call_ended_at=utcnow() - timedelta(minutes=1))
    wired.state.answers.update({"+15555550582": "ignore", "+15555550583": "accept"})
    caller = place_call(wired, live_app, "+15555550682", ScriptActor(["1", "1"], talk_s=0.2, hold_s=30))
    run(caller).join(60)
    wired.state.wait_for_legs()
    assert "A peer is here. Connecting you now." in caller.heard
    db.expire_all()
    assert (db.get(Peer, quiet.id).status, db.get(Peer, quiet.id).missed_offers) == ("available", 1)
    assert db.get(Peer, taker.id).status == "wrap_up"


def test_a_callback_ended_by_the_peer_ends_for_both(svc: Any, db: Any, wired: Any) -> None:  # noqa: F811
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550584")
    number = "+15555550684"
    wired.state.answers.update({"+15555550584": "accept", number: "accept"})
    now = utcnow()
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text(number), language="en", window="now",
                         allow_message=False, status="pending", arrived_at=now, not_before=not_before,
                         not_after=not_after, due_at=not_before)
    db.add(cb)
    db.commit()
    line.dispatch(db, svc, now)
    room = f"callback-{db.scalar(select(CallbackAttempt)).id}"
    wait_until(lambda: len(wired.state.conferences.get(room, {})) == 2)
    db.expire_all()
    # The peer hangs up (their call ends; a leg that only leaves the room is a peer pressing *, who comes back).
    HubClient(wired.base_url).act(db.scalar(select(CallbackAttempt)).peer_call_sid, "end", status="completed")
    wired.state.wait_for_legs()
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "completed"
    assert db.scalar(select(CallbackAttempt)).outcome == "connected"
    assert db.get(Peer, peer.id).status == "wrap_up"
    assert wired.state.conferences == {}
    assert all(call["status"] in ENDED for call in wired.state.calls.values())


# A webhook lost between Twilio and the app: the tick asks the REST API -----------------------


def test_a_lost_sign_on_status_callback_is_repaired_by_the_tick(svc: Any, db: Any, wired: Any, live_app: str,  # noqa: F811
                                                                work_jobs: Any, redis: Any) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550585", status="signed_off", pin="4321")
    make_peer(db, svc.vault, display_name="on a break", phone="+15555550586", status="break")
    wired.state.answers["+15555550585"] = "accept"
    db.add(PeerRequest(call_sid="CAwaiting", language="en", status="waiting", arrived_at=utcnow()))
    db.commit()
    sign_on = place_call(wired, live_app, "+15555550585", ScriptActor(["4321", "1"]))
    sign_on.status_callback = None  # the call's status callback never reaches the app
    run(sign_on).join(60)
    db.expire_all()
    assert db.get(Peer, peer.id).line_call_sid == sign_on.call_sid  # still "on the phone" for the line
    assert db.scalars(select(RingLeg)).all() == []
    tick(work_jobs, redis)
    db.expire_all()
    assert db.get(Peer, peer.id).line_call_sid is None
    (leg,) = db.scalars(select(RingLeg)).all()  # offered to the caller waiting
    assert leg.peer_id == peer.id
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "peer_repaired"))
    assert entry.target_id == peer.id and "sign-on call completed" in entry.detail


def test_a_lost_caller_status_callback_never_leaves_the_peer_alone_in_the_room(
        svc: Any, db: Any, wired: Any, live_app: str, work_jobs: Any, redis: Any) -> None:  # noqa: F811
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550587")
    wired.state.answers["+15555550587"] = "accept"
    caller = place_call(wired, live_app, "+15555550687", DropsBeforeRoom(["1", "1"], hold_s=30))
    caller.status_callback = None  # hangs up before the room, and the status callback is lost
    run(caller).join(60)
    wait_until(lambda: any(wired.state.conferences.values()))  # the peer waits in the room, alone
    db.expire_all()
    assert db.get(Peer, peer.id).status == "busy"
    tick(work_jobs, redis)  # within the grace: nothing asked yet
    assert any(wired.state.conferences.values())
    backdate(db, peer.id)
    tick(work_jobs, redis)
    wired.state.wait_for_legs()
    assert heard_by(wired, "+15555550587")[-1] == '"The caller hung up before you were connected. Thank you."'
    db.expire_all()
    assert db.get(Peer, peer.id).status == "wrap_up"
    assert db.scalar(select(PeerRequest)).status == "abandoned"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "peer_repaired"))
    assert entry.target_id == peer.id and "caller of request" in entry.detail


def test_a_lost_ring_leg_status_callback_is_repaired_by_the_tick(svc: Any, db: Any, wired: Any, live_app: str,  # noqa: F811
                                                                 work_jobs: Any, redis: Any) -> None:
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550588")
    wired.state.answers["+15555550588"] = "no-answer"
    wired.state.ring_s = 1.0
    db.add(PeerRequest(call_sid="CAwaiting2", language="en", status="waiting", arrived_at=utcnow()))
    db.commit()
    line.dispatch(db, svc, utcnow())
    (sid,) = [sid for sid, call in wired.state.calls.items() if call.get("To") == "+15555550588"]
    with wired.state.lock:
        wired.state.calls[sid]["StatusCallback"] = ""  # its status callbacks never reach the app
    wired.state.wait_for_legs()
    db.expire_all()
    assert (db.get(Peer, peer.id).status, db.scalar(select(RingLeg)).status) == ("busy", "ringing")
    backdate(db, peer.id)
    tick(work_jobs, redis)
    db.expire_all()
    assert db.scalar(select(RingLeg)).status == "no_answer"
    assert db.get(Peer, peer.id).status == "available"
    assert db.get(Peer, peer.id).missed_offers == 1
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "peer_repaired"))
    assert entry.detail == f"busy -> available: leg {db.scalar(select(RingLeg)).id} no-answer (its status callback was lost)"


# The live board and the end of a callback's talk --------------------------------------------


def test_the_board_shows_a_callback_holding_a_peer_and_the_network_ends_it_after_the_talk(
        svc: Any, db: Any, wired: Any, client: Any, dashboard_data: Any) -> None:  # noqa: F811
    sam = dashboard_data.sam
    number = "+15555550690"
    wired.state.answers.update({"+15555550101": "accept", number: "accept"})
    wired.state.talk_s = 1.0  # the called-back caller talks a second, then hangs up (--talk-seconds)
    now = utcnow()
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text(number), language="en", window="now",
                         allow_message=False, status="pending", arrived_at=now, not_before=not_before,
                         not_after=not_after, due_at=not_before)
    db.add(cb)
    db.commit()
    line.dispatch(db, svc, now)
    room = f"callback-{db.scalar(select(CallbackAttempt)).id}"
    wait_until(lambda: len(wired.state.conferences.get(room, {})) == 2)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    board = client.get("/staff/board").get_data(as_text=True)
    assert "Calls holding a peer (1)" in board
    assert f"{sam.display_name}: callback: with the caller · 0 min" in board
    wired.state.wait_for_legs()  # nobody hangs up by hand: the talk ends it
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "completed"
    assert db.get(Peer, sam.id).status == "wrap_up"
    assert all(call["status"] in ENDED for call in wired.state.calls.values())
    board = client.get("/staff/board").get_data(as_text=True)
    assert "Calls holding a peer (0)" in board and "No peer is on a call." in board


def test_a_ring_leg_whose_worker_died_before_twilio_answered_is_repaired_by_the_tick(
        svc: Any, db: Any, wired: Any, work_jobs: Any, redis: Any) -> None:  # noqa: F811
    """A worker killed between claiming a peer and storing the leg's SID (Twilio never placed it)."""
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550589", status="busy")
    req = PeerRequest(call_sid="CAwaiting3", language="en", status="ringing", arrived_at=utcnow())
    db.add(req)
    db.flush()
    db.add(RingLeg(request_id=req.id, peer_id=peer.id, status="ringing", created_at=utcnow() - timedelta(minutes=2)))
    db.commit()
    backdate(db, peer.id)
    tick(work_jobs, redis)
    db.expire_all()
    assert db.scalar(select(RingLeg).where(RingLeg.call_sid.is_(None))).status == "failed"
    # Free again, not counted as a miss, and rung for the same caller at once (placed this time).
    (placed,) = db.scalars(select(RingLeg).where(RingLeg.call_sid.is_not(None))).all()
    assert (placed.peer_id, placed.status, placed.request_id) == (peer.id, "ringing", req.id)
    assert wired.state.calls[placed.call_sid]["To"] == "+15555550589"
    assert (db.get(Peer, peer.id).status, db.get(Peer, peer.id).missed_offers) == ("busy", 0)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "peer_repaired"))
    assert entry is not None and "never placed" in entry.detail


def test_a_busy_signal_while_the_peer_is_calling_the_line_is_not_a_miss(svc: Any, db: Any, wired: Any) -> None:  # noqa: F811
    peer = make_peer(db, svc.vault, display_name="p", phone="+15555550591")
    wired.state.answers["+15555550591"] = "busy"
    wired.state.ring_s = 1.0
    db.add(PeerRequest(call_sid="CAwaiting4", language="en", status="waiting", arrived_at=utcnow()))
    db.commit()
    line.dispatch(db, svc, utcnow())
    peers.on_line_call(db, db.get(Peer, peer.id), "CApeercalling")  # they dial the line while it rings
    wired.state.wait_for_legs()
    db.expire_all()
    assert db.scalar(select(RingLeg)).status == "no_answer"
    assert (db.get(Peer, peer.id).status, db.get(Peer, peer.id).missed_offers) == ("available", 0)
