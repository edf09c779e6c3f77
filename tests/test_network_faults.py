"""Paths that only a faithful phone network reaches: key 0 through the webhooks, Twilio refusing a
request, jobs and reports that come late or never, a URL used with another call's CallSid, and a
failed delete of Twilio's recording copy.

Real SQL, real Redis and RQ workers; Twilio's REST API and network are the phone network
(``simulator/phone_network.py``), which refuses what Twilio refuses (``answers[n] = "refused"``,
``NetworkState.fail_next``) and ends calls as Twilio does.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from callflows import callbacks, line
from callflows.peers import start_wrap_up
from callflows.times import aware
from models import CallbackRequest, Peer, utcnow
from models.tables import CallbackAttempt, PeerRequest, RingLeg
from queues.connection import DEFAULT_QUEUE
from queues.reconcile import reconcile_callbacks
from simulator.engine import FlaskTransport, HubClient, Leg, ScriptActor, new_call_sid
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller
from tests.test_callbacks import add_peer, make_callback
from tests.test_routing import ask_for_peer, creates, dial_in, enqueue_of, pick_up, updates, wait_doc
from tests.workers import wait_for

PEER = "+15555550501"
OTHER_PEER = "+15555550502"


@pytest.fixture(autouse=True)
def net(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def played_by_network(net: Any, live_app: str) -> None:
    """The network rings the line's outbound calls and plays them against the app over HTTP."""
    net.state.rewrite[PUBLIC_BASE] = live_app
    net.state.peer_answers = "accept"


def heard_on(net: Any, number: str) -> list[str]:
    """What the phone at ``number`` heard, in order (the network's log)."""
    return [e.removeprefix(f"{number} hears ").strip('"') for e in net.state.events if e.startswith(f"{number} hears ")]


# Key 0 through the webhooks -----------------------------------------------------------------


def test_key_zero_at_the_main_menu_with_nobody_free_offers_a_message(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "+15555550511")
    caller.press("0")
    assert caller.said == "We are sorry. No peers are on shift right now, so nobody can answer live."
    caller.follow()
    assert caller.said.startswith("You can leave a message for our peer team.")
    assert [verb.tag for verb in caller.twiml] == ["Say", "Record", "Redirect"]
    assert creates(net) == []


def test_key_zero_at_the_main_menu_rings_a_free_peer(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone=PEER)
    caller = dial_in(client, net, "+15555550512")
    caller.press("0")
    assert "Finding a peer for you." in caller.said and enqueue_of(caller) is not None
    assert [form["To"] for form in creates(net)] == [[PEER]]


# Twilio refusing a request ------------------------------------------------------------------


def test_twilio_refusing_to_ring_a_peer_leaves_the_caller_in_line_and_the_peer_free(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    refused = make_peer(db, svc.vault, display_name="a", phone=PEER, last_call_ended_at=utcnow() - timedelta(hours=1))
    net.state.answers[PEER] = "refused"
    caller = ask_for_peer(client, net, "+15555550513")
    assert enqueue_of(caller) is not None  # on hold, in line
    db.expire_all()
    request = db.scalar(select(PeerRequest))
    assert (request.call_sid, request.status) == (caller.call_sid, "waiting")
    assert db.get(Peer, refused.id).status == "available"  # never left "busy" by a call that never was
    assert db.scalar(select(RingLeg)).status == "no_answer"
    wait_doc(caller, 1)  # a hold round: the refusing phone is not tried again at once
    assert len(creates(net)) == 1
    # Another peer comes free: offered to this caller, who kept their place.
    other = make_peer(db, svc.vault, display_name="b", phone=OTHER_PEER, status="break")
    line.set_peer_status(db, svc, db.get(Peer, other.id), "available", utcnow())
    line.dispatch(db, svc, utcnow())
    assert creates(net)[-1]["To"] == [OTHER_PEER]
    db.expire_all()
    assert db.scalar(select(RingLeg).where(RingLeg.peer_id == other.id)).request_id == request.id


def test_a_peer_who_accepts_a_caller_who_already_hung_up_hears_so_and_is_free(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    peer_row = make_peer(db, svc.vault, display_name="a", phone=PEER)
    caller = ask_for_peer(client, net, "+15555550515")
    (form,) = creates(net)
    peer = pick_up(client, net, form)
    # The caller hangs up; their status callback is lost on the way to the line.
    HubClient(net.base_url).act(caller.call_sid, "end", status="completed", duration="9")
    peer.press("1")
    # Twilio refused to redirect the finished call (21220): nobody is bridged to a dead call.
    req_id = db.scalar(select(PeerRequest.id))
    assert updates(net) == [(caller.call_sid, {"Url": [f"{PUBLIC_BASE}/peer/caller/{req_id}/connect?lang=en"],
                                               "Method": ["POST"]})]
    assert peer.said == "The caller has hung up. Thank you."
    assert peer.twiml.find("Dial") is None
    db.expire_all()
    assert db.get(Peer, peer_row.id).status == "available"
    assert db.scalar(select(PeerRequest)).status == "abandoned"
    assert db.scalar(select(RingLeg)).status == "caller_gone"


def test_twilio_refusing_to_dial_a_callback_caller_counts_the_try_and_frees_the_peer(svc, db, net, live_app) -> None:  # type: ignore[no-untyped-def]
    played_by_network(net, live_app)
    net.state.answers["+15555550516"] = "refused"
    peer = add_peer(svc, db, PEER)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550516", now - timedelta(minutes=3), now)
    line.dispatch(db, svc, now)
    net.state.wait_for_legs()

    db.expire_all()
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts, again.outcome) == ("pending", 1, "failed")
    assert heard_on(net, PEER)[-1] == "They did not answer. We will try again later. Thank you."
    assert db.get(Peer, peer.id).status == "available"


def test_twilio_refusing_to_ring_a_callbacks_peer_puts_it_back_in_line_without_using_an_attempt(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    refused = add_peer(svc, db, PEER)
    net.state.answers[PEER] = "refused"
    now = utcnow()
    cb = make_callback(svc, db, "+15555550517", now - timedelta(minutes=3), now)
    arrived = aware(cb.arrived_at)
    line.dispatch(db, svc, now)
    db.expire_all()
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts, aware(again.arrived_at)) == ("pending", 0, arrived)
    assert db.scalar(select(CallbackAttempt)).outcome == "peer_failed"
    assert db.get(Peer, refused.id).status == "available"
    # Another peer comes free: the callback goes to them, not to the refusing phone again.
    other = add_peer(svc, db, OTHER_PEER, status="break")
    line.set_peer_status(db, svc, db.get(Peer, other.id), "available", now)
    line.dispatch(db, svc, now)
    assert [form["To"][0] for form in creates(net)] == [PEER, OTHER_PEER]
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "dialing"


def test_a_peer_who_does_not_answer_puts_the_callback_back_in_line_without_using_an_attempt(  # type: ignore[no-untyped-def]
        svc, db, net, live_app) -> None:
    played_by_network(net, live_app)
    net.state.answers.update({PEER: "no-answer", "+15555550518": "busy"})
    first = make_peer(db, svc.vault, display_name="a", phone=PEER, last_call_ended_at=utcnow() - timedelta(hours=2))
    make_peer(db, svc.vault, display_name="b", phone=OTHER_PEER, last_call_ended_at=utcnow())  # longest idle first
    now = utcnow()
    cb = make_callback(svc, db, "+15555550518", now - timedelta(minutes=3), now)
    line.dispatch(db, svc, now)
    net.state.wait_for_legs()

    db.expire_all()
    attempts = db.scalars(select(CallbackAttempt).order_by(CallbackAttempt.id)).all()
    # The first peer's miss used no attempt: the caller's first try came with the second peer.
    assert [(a.number, a.outcome) for a in attempts] == [(1, "peer_no_answer"), (1, "busy")]
    assert [a.peer_id for a in attempts] == [first.id, attempts[1].peer_id] and attempts[1].peer_id != first.id
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts, again.outcome) == ("pending", 1, "busy")
    assert {p.status for p in db.scalars(select(Peer))} == {"available"}


# A request URL used with another call's CallSid ----------------------------------------------


def test_a_peers_leg_url_with_another_calls_sid_claims_nothing(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone=PEER)
    caller = ask_for_peer(client, net, "+15555550521")
    (form,) = creates(net)
    peer = pick_up(client, net, form)
    stranger = TestCaller(client, number="+15555550522")  # another call, replaying the leg's URLs
    stranger.post(form["Url"][0], CallStatus="in-progress", Direction="outbound-api")
    assert stranger.said == "" and stranger.twiml.find("Gather") is None
    stranger.post(peer.gather().get("action"), Digits="1")
    assert stranger.twiml.find("Dial") is None
    assert updates(net) == []  # the caller was not moved to anybody's room
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "ringing"
    # The peer's own call still accepts.
    peer.press("1")
    assert peer.twiml.find("Dial/Conference") is not None
    connect = f"/peer/caller/{db.scalar(select(PeerRequest.id))}/connect?lang=en"
    assert updates(net) == [(caller.call_sid, {"Url": [PUBLIC_BASE + connect], "Method": ["POST"]})]
    # Another caller who posts that connect URL is not put in their room.
    stranger.post(connect)
    assert stranger.twiml.find("Dial") is None
    caller.post(connect)
    assert caller.twiml.find("Dial/Conference").text == peer.twiml.find("Dial/Conference").text


def test_a_callback_peer_url_with_another_calls_sid_dials_nobody(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db, PEER)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550523", now - timedelta(minutes=3), now)
    line.dispatch(db, svc, now)
    (form,) = creates(net)
    stranger = TestCaller(client, number="+15555550524")
    stranger.post(form["Url"][0] + "/answer", Digits="1")
    assert list(stranger.twiml) == []
    assert len(creates(net)) == 1  # the caller was not dialled
    db.expire_all()
    assert db.scalar(select(CallbackAttempt)).stage == "peer_ringing"
    assert db.get(CallbackRequest, cb.id).status == "dialing"


# Jobs and reports that come late or never ------------------------------------------------------


def test_a_stale_wrap_up_job_leaves_a_later_wrap_up_and_a_new_call_alone(svc, db, redis, work_jobs) -> None:  # type: ignore[no-untyped-def]
    peer = make_peer(db, svc.vault, display_name="a", phone=PEER, status="busy")
    first_end = utcnow() - timedelta(minutes=5)
    start_wrap_up(db, svc, peer, first_end)
    stale_id = f"wrap-up-{peer.id}-{int(first_end.timestamp() * 1000)}"
    # Freed early (the reconciler, or by phone), the peer took another call and is in its wrap-up.
    second_end = utcnow()
    start_wrap_up(db, svc, db.get(Peer, peer.id), second_end)
    queue = Queue(DEFAULT_QUEUE, connection=redis)
    registry = ScheduledJobRegistry(queue=queue)
    assert stale_id in registry.get_job_ids()

    def run_now(job_id: str) -> Any:
        """RQ's scheduler moves the job to its queue when due; here it is due now."""
        registry.remove(job_id)
        queue.enqueue_job(Job.fetch(job_id, connection=redis))
        work_jobs(DEFAULT_QUEUE)
        return Job.fetch(job_id, connection=redis).return_value()

    assert run_now(stale_id) == "superseded"
    db.expire_all()
    assert db.get(Peer, peer.id).status == "wrap_up"
    # Or the peer is on a call again when the old job runs: they stay on it.
    peer = db.get(Peer, peer.id)
    peer.status = "busy"
    db.commit()
    current_id = f"wrap-up-{peer.id}-{int(second_end.timestamp() * 1000)}"
    assert run_now(current_id) == "nothing to do"
    db.expire_all()
    assert db.get(Peer, peer.id).status == "busy"


def test_an_attempt_twilio_never_reported_on_is_recovered_once_and_follows_the_retry_schedule(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    """The worker died after Twilio accepted the peer's call but before the SID was stored, and no
    webhook of that call ever came (the network placed it and never rang: peer_answers is off)."""
    peer = add_peer(svc, db, PEER)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550525", now - timedelta(minutes=3), now)
    line.dispatch(db, svc, now)
    attempt = db.scalar(select(CallbackAttempt))
    attempt.peer_call_sid = None  # what the killed worker never stored
    db.commit()

    assert reconcile_callbacks(svc, now + timedelta(minutes=5)) == []  # not stale yet: left alone
    db.expire_all()
    assert db.scalar(select(CallbackAttempt)).stage == "peer_ringing"
    assert db.get(Peer, peer.id).status == "busy"

    later = now + callbacks.STALE_ATTEMPT + timedelta(seconds=1)
    assert reconcile_callbacks(svc, later) == [cb.id]  # its next try is scheduled
    reconcile_callbacks(svc, later)  # a second run changes nothing
    db.expire_all()
    attempts = db.scalars(select(CallbackAttempt)).all()
    assert [(a.stage, a.outcome) for a in attempts] == [("ended", "lost")]
    again = db.get(CallbackRequest, cb.id)
    # Counted: if Twilio did place that call, the next one keeps the retry schedule's distance.
    assert (again.status, again.attempts) == ("pending", 1)
    assert aware(again.due_at) == later + svc.settings.retry_waits[0]
    assert db.get(Peer, peer.id).status == "available"
    assert [form["To"] for form in creates(net)] == [[PEER]]  # nobody was called twice


# What the network's detection says, played end to end ------------------------------------------


def test_a_quiet_person_detection_cannot_classify_presses_a_key_and_meets_the_peer(svc, db, net, live_app) -> None:  # type: ignore[no-untyped-def]
    played_by_network(net, live_app)
    number = "+15555550526"
    net.state.answers[number] = "unknown"  # says nothing at first; presses 1 when asked
    add_peer(svc, db, PEER)
    now = utcnow()
    make_callback(svc, db, number, now - timedelta(minutes=3), now, allow_message=False)
    line.dispatch(db, svc, now)
    room = f"callback-{db.scalar(select(CallbackAttempt.id))}"
    wait_for(lambda: f"{number} joins conference {room} (2 on the line)" in net.state.events, 30,
             "the caller to join the peer")
    assert heard_on(net, number) == ["Hello. To take this call, press 1.", "Hello. To take this call, press 1.",
                                     "Hello. This is the call back you asked for. Connecting you now."]
    assert f"{number} presses 1" in net.state.events
    caller_sid = next(sid for sid, call in net.state.calls.items() if call.get("To") == number)
    HubClient(net.base_url).act(caller_sid, "end", status="completed", duration="30")  # they talk, then hang up
    net.state.wait_for_legs()
    db.expire_all()
    assert db.scalar(select(CallbackAttempt)).answered_by == "unknown"
    assert db.scalar(select(Peer)).status == "wrap_up"  # a real conversation: the peer wraps up


def test_nine_on_hold_moves_the_call_out_of_the_queue_to_the_crisis_line_through_the_network(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    make_peer(db, svc.vault, display_name="a", phone=PEER, status="busy")  # nobody free: the caller holds
    hub = HubClient(net.base_url)
    sid = hub.register("+15555550527", "+15005550006", new_call_sid())
    leg = Leg(FlaskTransport(client), TEST_AUTH_TOKEN, sid, "+15555550527", "+15005550006",
              ScriptActor(["1", "1", "*", "9"], hold_s=0.5), account_sid=TEST_ACCOUNT_SID, hub=hub)
    leg.run(f"{PUBLIC_BASE}/voice/incoming")

    choices = ["While you wait, you can choose.", "To keep waiting, press 1.",
               "To get a call back and keep your place, press 2.", "To leave a message, press 3.",
               "To hear this again, press star. For a person, press 0. If you are in danger or thinking of "
               "suicide, press 9 for the crisis line."]
    on_hold = leg.heard.index("You are number 1 in line.")
    # * on hold: the choices again (only them), then 9: out of the queue, straight to the crisis line.
    assert leg.heard[on_hold + 2:on_hold + 13] == [*choices, *choices,
                                                   "Connecting you to the crisis line now. You can also dial 9 8 8 any time."]
    assert "the line redirects the call of the caller" in net.state.events  # moved by the REST API
    assert "the caller dials 988: completed" in net.state.events
    # Gone to the crisis line, recorded so (the queue's action says "redirected"): not a caller lost on hold.
    db.expire_all()
    assert db.scalar(select(PeerRequest.status)) == "crisis"
    # Gone to the crisis line: no peer is rung for them when one comes free.
    line.set_peer_status(db, svc, db.scalar(select(Peer)), "available", utcnow())
    line.dispatch(db, svc, utcnow())
    assert db.scalar(select(Peer)).status == "available" and creates(net) == []
