"""Live peer routing through the public webhooks, with Twilio's REST API at the HTTP boundary."""
from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from callflows import line, peers, routing
from callflows.times import aware
from models import CallbackRequest, Peer, PeerStory, utcnow
from models.tables import PeerRequest, RingLeg
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TestCaller

LINE = "+15005550006"
CALLS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"


@pytest.fixture(autouse=True)
def net(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built (autouse: it must come first)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def idle(minutes: int):  # type: ignore[no-untyped-def]
    """When a peer's last call ended, ``minutes`` ago."""
    return utcnow() - timedelta(minutes=minutes)


def dial_in(client, net, number: str, lang_key: str = "1") -> TestCaller:  # type: ignore[no-untyped-def]
    """A caller reaches the main menu (the phone network knows the call is live)."""
    caller = TestCaller(client, number=number)
    net.state.calls[caller.call_sid] = {"sid": caller.call_sid, "account_sid": TEST_ACCOUNT_SID, "status": "in-progress",
                                        "direction": "inbound", "From": number, "To": LINE, "redirect_seq": 0}
    caller.call()
    caller.press(lang_key)
    caller.to_menu()
    return caller


def ask_for_peer(client, net, number: str, lang_key: str = "1") -> TestCaller:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, number, lang_key)
    caller.press("1")
    return caller


def creates(net) -> list[dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    return [r.form for r in net.state.requests if r.method == "POST" and r.path == CALLS]


def updates(net) -> list[tuple[str, dict[str, list[str]]]]:  # type: ignore[no-untyped-def]
    return [(r.path.rsplit("/", 1)[-1].removesuffix(".json"), r.form) for r in net.state.requests
            if r.method == "POST" and r.path.startswith(CALLS.removesuffix(".json") + "/")]


def leg_sid(net, url: str) -> str:  # type: ignore[no-untyped-def]
    """The CallSid the phone network gave the leg whose whisper is ``url``."""
    return next(sid for sid, call in net.state.calls.items() if call.get("Url") == url)


def pick_up(client, net, form: dict[str, list[str]]) -> TestCaller:  # type: ignore[no-untyped-def]
    """The peer answers a ringing leg: Twilio fetches the leg's Url."""
    url = form["Url"][0]
    peer_phone = TestCaller(client, number=LINE, call_sid=leg_sid(net, url))
    peer_phone.post(url, CallStatus="in-progress", Direction="outbound-api", To=form["To"][0])
    return peer_phone


def wait_doc(caller: TestCaller, position: int) -> None:
    enqueue = caller.twiml.find("Enqueue") if caller.twiml is not None else None
    assert enqueue is not None
    caller.post(enqueue.get("waitUrl"), QueuePosition=str(position), QueueTime="10", CurrentQueueSize=str(position))


def enqueue_of(caller: TestCaller):  # type: ignore[no-untyped-def]
    assert caller.twiml is not None
    return caller.twiml.find("Enqueue")


def test_rings_longest_idle_first_in_the_callers_language(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="recent", phone="+15555550111", last_call_ended_at=idle(5))
    make_peer(db, svc.vault, display_name="long", phone="+15555550112", last_call_ended_at=idle(90))
    make_peer(db, svc.vault, display_name="never", phone="+15555550113")
    make_peer(db, svc.vault, display_name="spanish-only", phone="+15555550114", languages=("es",))
    make_peer(db, svc.vault, display_name="busy", phone="+15555550115", status="busy")
    caller = ask_for_peer(client, net, "+15555550199")
    enqueue = enqueue_of(caller)
    assert enqueue.text == "peerline-en"
    assert "Finding a peer for you." in caller.said
    legs = db.scalars(select(RingLeg).order_by(RingLeg.id)).all()
    req = db.scalar(select(PeerRequest))
    assert enqueue.get("waitUrl") == f"{PUBLIC_BASE}/peer/hold/{req.id}/wait?lang=en&told=1"
    assert enqueue.get("action") == f"{PUBLIC_BASE}/peer/hold/{req.id}/done?lang=en&told=1"
    # Two at once (PEERS_RING_AT_ONCE default), never-called first, then the longest idle.
    assert creates(net) == [
        {"To": [phone], "From": [LINE], "Url": [f"{PUBLIC_BASE}/peer/leg/{leg.id}/whisper"],
         "StatusCallback": [f"{PUBLIC_BASE}/peer/leg/{leg.id}/status"],
         "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"], "Timeout": ["20"]}
        for phone, leg in zip(["+15555550113", "+15555550112"], legs)
    ]
    db.expire_all()
    statuses = {p.display_name: p.status for p in db.scalars(select(Peer)).all()}
    assert statuses == {"recent": "available", "long": "busy", "never": "busy", "spanish-only": "available",
                        "busy": "busy"}
    # A Spanish caller rings only the peer who speaks Spanish.
    ask_for_peer(client, net, "+15555550198", lang_key="2")
    assert creates(net)[-1]["To"] == ["+15555550114"] and len(creates(net)) == 3


def test_lived_experience_is_matched_with_fallback_to_any_peer(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    db.add(PeerStory(title="Methadone mornings", topic="medication", language="en", transcript="It helped me.",
                     status="approved", consent_given=True))
    db.commit()
    make_peer(db, svc.vault, display_name="idle", phone="+15555550121", last_call_ended_at=idle(300))
    make_peer(db, svc.vault, display_name="mbr", phone="+15555550122", tags=("medication-based-recovery",),
              last_call_ended_at=idle(1))
    caller = dial_in(client, net, "+15555550197")
    caller.press("2")  # stories
    caller.press("1")  # medication
    caller.press("1")  # talk with a peer about this story
    assert creates(net)[0]["To"] == ["+15555550122"]  # the peer with that experience, not the longest idle
    assert len(creates(net)) == 1  # the others are not rung when one with the experience is free
    whisper = pick_up(client, net, creates(net)[0])
    assert "The caller asked for a peer in recovery with medication." in whisper.said
    # Nobody with that experience free: any peer.
    picked = peers.pick_peers(db, "en", "medication-based-recovery", 2)
    assert [p.display_name for p in picked] == ["idle"]


def test_whisper_accept_bridges_caller_and_cancels_other_legs(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550131")
    make_peer(db, svc.vault, display_name="b", phone="+15555550132", last_call_ended_at=idle(10))
    caller = ask_for_peer(client, net, "+15555550196")
    first, second = creates(net)
    peer_a = pick_up(client, net, first)
    whisper = "Peer support call in English. Press 1 to accept."
    assert [" ".join(say.itertext()) for say in peer_a.twiml.findall("Gather/Say")] == [whisper, whisper]
    assert "5555550196" not in peer_a.said and "5 5 5" not in peer_a.said
    peer_a.press("1")
    req = db.scalar(select(PeerRequest))
    conf = peer_a.twiml.find("Dial/Conference")
    # The peer's leg keeps the room up when it leaves (the caller's ends it), and * opens the in-call menu.
    assert conf.text == f"call-{req.id}" and conf.get("endConferenceOnExit") == "false"
    assert peer_a.twiml.find("Dial").get("hangupOnStar") == "true"
    b_sid = leg_sid(net, second["Url"][0])
    assert updates(net) == [
        (b_sid, {"Status": ["canceled"]}),
        (caller.call_sid, {"Url": [f"{PUBLIC_BASE}/peer/caller/{req.id}/connect?lang=en"], "Method": ["POST"]}),
    ]
    caller.post(f"{PUBLIC_BASE}/peer/caller/{req.id}/connect?lang=en")
    assert caller.said == ("A peer is here. Connecting you now. A supervisor or a peer in training may listen to "
                           "support your peer. If you need more help, your peer can add the crisis line while "
                           "staying on the line with you.")
    assert caller.twiml.find("Dial/Conference").text == f"call-{req.id}"
    assert caller.twiml.find("Dial/Conference").get("endConferenceOnExit") == "true"
    db.expire_all()
    assert {p.display_name: p.status for p in db.scalars(select(Peer))} == {"a": "busy", "b": "available"}


def test_no_key_or_voicemail_counts_as_no_answer_and_next_peer_rings(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550141")
    make_peer(db, svc.vault, display_name="b", phone="+15555550142", last_call_ended_at=idle(10))
    make_peer(db, svc.vault, display_name="c", phone="+15555550143", last_call_ended_at=idle(5))
    ask_for_peer(client, net, "+15555550195")
    first, second = creates(net)
    # a's voicemail answers: it hears the whisper, presses nothing; the document hangs up.
    machine = pick_up(client, net, first)
    assert machine.twiml.find("Hangup") is not None
    assert machine.twiml.find("Gather").get("actionOnEmptyResult") == "false"
    machine.post(first["StatusCallback"][0], CallStatus="completed")
    # b never answers.
    TestCaller(client, number=LINE, call_sid=leg_sid(net, second["Url"][0])).post(
        second["StatusCallback"][0], CallStatus="no-answer")
    assert [f["To"][0] for f in creates(net)] == ["+15555550141", "+15555550142", "+15555550143"]
    db.expire_all()
    assert db.scalar(select(Peer).where(Peer.display_name == "a")).status == "available"


def test_two_peers_press_1_at_once_one_wins(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550151")
    make_peer(db, svc.vault, display_name="b", phone="+15555550152", last_call_ended_at=idle(10))
    ask_for_peer(client, net, "+15555550194")
    leg_ids = [leg.id for leg in db.scalars(select(RingLeg).order_by(RingLeg.id))]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def press_one(leg_id: int) -> None:
        with svc.sessions() as session:
            leg = session.get(RingLeg, leg_id)
            barrier.wait()
            outcomes.append(routing.accept(session, svc, leg, utcnow()))

    threads = [threading.Thread(target=press_one, args=(leg_id,)) for leg_id in leg_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["accepted", "taken"]
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "connected"
    assert sum(1 for _ in db.scalars(select(Peer).where(Peer.status == "busy"))) == 1


def test_second_peer_hears_the_call_was_taken(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550161")
    make_peer(db, svc.vault, display_name="b", phone="+15555550162", last_call_ended_at=idle(10))
    ask_for_peer(client, net, "+15555550193")
    first, second = creates(net)
    peer_a, peer_b = pick_up(client, net, first), pick_up(client, net, second)
    peer_a.press("1")
    peer_b.press("1")
    assert peer_b.said == "Another peer already took this call. Thank you."
    assert peer_b.twiml.find("Dial") is None
    # b was in the whisper, so the line moved b's leg to hear why (never a silent hang-up).
    leg_b = db.scalars(select(RingLeg).order_by(RingLeg.id)).all()[1]
    notice = f"{PUBLIC_BASE}/peer/leg/{leg_b.id}/notice?why=taken"
    assert (leg_b.call_sid, {"Url": [notice], "Method": ["POST"]}) in updates(net)
    peer_b.post(notice)
    assert peer_b.said == "Another peer already took this call. Thank you."
    assert peer_b.twiml.find("Hangup") is not None


def test_caller_hangs_up_while_peers_ring(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550171")
    make_peer(db, svc.vault, display_name="b", phone="+15555550172", last_call_ended_at=idle(10))
    caller = ask_for_peer(client, net, "+15555550192")
    first, second = creates(net)
    late = pick_up(client, net, first)  # a is hearing the whisper when the caller hangs up
    caller.post(enqueue_of(caller).get("action"), QueueResult="hangup", QueueTime="4")
    leg_a = db.scalars(select(RingLeg).order_by(RingLeg.id)).first()
    assert updates(net) == [(leg_a.call_sid,
                             {"Url": [f"{PUBLIC_BASE}/peer/leg/{leg_a.id}/notice?why=gone"], "Method": ["POST"]}),
                            (leg_sid(net, second["Url"][0]), {"Status": ["canceled"]})]
    late.press("1")
    assert late.said == "The caller has hung up. Thank you."
    assert len(updates(net)) == 2  # nobody is bridged to the dead call
    db.expire_all()
    assert {p.status for p in db.scalars(select(Peer))} == {"available"}
    assert db.scalar(select(PeerRequest)).status == "abandoned"


def test_caller_gone_before_the_hold_queue_stops_the_ringing_and_leaves_the_line(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    """Gone during "Finding a peer for you", before <Enqueue> starts: Twilio never posts the
    queue's action, only the call's status callback says so."""
    make_peer(db, svc.vault, display_name="a", phone="+15555550176")
    gone = ask_for_peer(client, net, "+15555550189")
    assert "Finding a peer for you." in gone.said and enqueue_of(gone) is not None
    waiting = ask_for_peer(client, net, "+15555550188")  # nobody else free: second in line
    (first,) = creates(net)
    gone.post("/voice/status", CallStatus="completed", CallDuration="5")
    # The peer's ringing leg is canceled through the REST API, the request closed as abandoned...
    assert updates(net) == [(leg_sid(net, first["Url"][0]), {"Status": ["canceled"]})]
    db.expire_all()
    dead, live = db.scalars(select(PeerRequest).order_by(PeerRequest.id)).all()
    assert (dead.call_sid, dead.status, dead.ended_at is not None) == (gone.call_sid, "abandoned", True)
    assert db.scalar(select(RingLeg).where(RingLeg.request_id == dead.id)).status == "caller_gone"
    # ...and the freed peer is offered to the next real caller at once.
    assert live.call_sid == waiting.call_sid and live.status == "ringing"
    leg = db.scalar(select(RingLeg).where(RingLeg.request_id == live.id))
    assert creates(net)[1:] == [
        {"To": ["+15555550176"], "From": [LINE], "Url": [f"{PUBLIC_BASE}/peer/leg/{leg.id}/whisper"],
         "StatusCallback": [f"{PUBLIC_BASE}/peer/leg/{leg.id}/status"],
         "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"], "Timeout": ["20"]}]
    # Twilio repeats a status callback now and then: nothing more happens.
    gone.post("/voice/status", CallStatus="completed", CallDuration="5")
    assert len(updates(net)) == 1 and len(creates(net)) == 2


def test_a_status_callback_that_is_not_final_leaves_the_request_alone(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550177")
    caller = ask_for_peer(client, net, "+15555550187")
    caller.post("/voice/status", CallStatus="in-progress")
    assert updates(net) == []
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "ringing"


def test_caller_hangs_up_on_hold_frees_the_queue(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550173", status="busy")
    caller = ask_for_peer(client, net, "+15555550191")
    assert creates(net) == []
    caller.post(enqueue_of(caller).get("action"), QueueResult="hangup")
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "abandoned"
    assert line.waiting_count(db) == 0


def test_peer_hangs_up_during_whisper_next_peer_rings(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    svc.settings = svc.settings.replace(peers_ring_at_once=1)
    make_peer(db, svc.vault, display_name="a", phone="+15555550174")
    make_peer(db, svc.vault, display_name="b", phone="+15555550175", last_call_ended_at=idle(10))
    ask_for_peer(client, net, "+15555550190")
    (first,) = creates(net)
    peer_a = pick_up(client, net, first)
    peer_a.post(first["StatusCallback"][0], CallStatus="completed", CallDuration="3")
    assert [f["To"] for f in creates(net)] == [["+15555550174"], ["+15555550175"]]
    db.expire_all()
    leg = db.scalar(select(RingLeg).order_by(RingLeg.id))
    assert leg.status == "no_answer"


def test_no_peers_signed_on_says_so_and_offers_callback_or_message(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="off", phone="+15555550176", status="signed_off")
    caller = ask_for_peer(client, net, "+15555550189")
    assert caller.said.startswith("We are sorry. No peers are on shift right now, so nobody can answer live.")
    assert "To get a call back, press 1." in caller.said and "To leave a message, press 2." in caller.said
    assert caller.twiml.find("Enqueue") is None
    assert creates(net) == []


def test_hold_positions_expected_wait_and_stories(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550177", status="busy")
    db.add(PeerStory(title="The first call I made", topic="loneliness", language="en",
                     transcript="I almost hung up.", status="approved", consent_given=True))
    now = utcnow()
    # Recent history: one caller waited four minutes for a peer.
    db.add(PeerRequest(call_sid="CAold", language="en", status="ended", arrived_at=now - timedelta(minutes=30),
                       connected_at=now - timedelta(minutes=26)))
    db.commit()
    callers = [ask_for_peer(client, net, f"+1555555018{i}") for i in range(3)]
    for position, caller in enumerate(callers, start=1):
        wait_doc(caller, position)
        said = caller.said
        assert said.startswith(f"You are number {position} in line. The expected wait is about {4 * position} minutes.")
        assert "Here is a story from a peer: The first call I made. I almost hung up." in said
        assert "To get a call back and keep your place, press 2." in said
    gather = callers[1].twiml.find("Gather")
    assert gather.get("action") == f"{PUBLIC_BASE}/peer/hold/{callers[1].call_sid and db.scalars(select(PeerRequest).where(PeerRequest.call_sid == callers[1].call_sid)).one().id}/choice?lang=en&told=1"
    # 1 keeps the place: the document ends and Twilio plays the waitUrl again.
    callers[1].press("1")
    assert callers[1].said == "All right. You keep your place in line."
    assert callers[1].twiml.find("Leave") is None


HOLD_CHOICES_EN = ("While you wait, you can choose. To keep waiting, press 1. "
                   "To get a call back and keep your place, press 2. To leave a message, press 3. "
                   "To hear this again, press star. For a person, press 0. "
                   "If you are in danger or thinking of suicide, press 9 for the crisis line.")
HOLD_CHOICES_ES = ("Mientras espera, puede elegir. Para seguir esperando, oprima 1. "
                   "Para que le devolvamos la llamada sin perder su lugar, oprima 2. Para dejar un mensaje, oprima 3. "
                   "Para oír esto otra vez, oprima asterisco. Para hablar con una persona, oprima 0. "
                   "Si está en peligro o piensa en el suicidio, oprima 9 para la línea de crisis.")


def gathered(caller: TestCaller) -> str:
    """What the caller hears inside the wait document's gather (the story and the choices)."""
    return " ".join(" ".join(say.itertext()).strip() for say in caller.gather().iter("Say"))


@pytest.mark.parametrize(("lang_key", "choices"), [("1", HOLD_CHOICES_EN), ("2", HOLD_CHOICES_ES)])
def test_hold_choices_name_each_choice_before_its_key(svc, db, client, net, lang_key: str,  # type: ignore[no-untyped-def]
                                                      choices: str) -> None:
    make_peer(db, svc.vault, display_name="a", phone="+15555550182", status="busy", languages=("en", "es"))
    caller = ask_for_peer(client, net, "+15555550186", lang_key=lang_key)
    wait_doc(caller, 1)
    assert gathered(caller) == choices  # no story in this test: the choices are all the gather says


def test_hold_zero_keeps_the_caller_in_line_and_the_peers_ringing(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550183")
    make_peer(db, svc.vault, display_name="b", phone="+15555550184", last_call_ended_at=idle(10))
    caller = ask_for_peer(client, net, "+15555550185")
    first, second = creates(net)
    wait_doc(caller, 1)
    caller.press("0")
    assert caller.said == ("You are still in line for the next peer. "
                           "A person will be with you as soon as one is free.")
    # Nothing after the words: the wait document ends and Twilio plays the waitUrl again, in the queue.
    assert [verb.tag for verb in caller.twiml] == ["Say"]
    assert updates(net) == []  # no ringing leg was canceled, the caller was not moved
    db.expire_all()
    req = db.scalar(select(PeerRequest))
    assert req.status == "ringing"
    assert [leg.status for leg in db.scalars(select(RingLeg).order_by(RingLeg.id))] == ["ringing", "ringing"]
    assert db.scalar(select(CallbackRequest)) is None
    # Still in line: the next peer to accept is connected to this caller.
    peer_a = pick_up(client, net, first)
    peer_a.press("1")
    assert peer_a.twiml.find("Dial/Conference").text == f"call-{req.id}"
    assert updates(net)[-1] == (caller.call_sid, {"Url": [f"{PUBLIC_BASE}/peer/caller/{req.id}/connect?lang=en"],
                                                  "Method": ["POST"]})
    assert (leg_sid(net, second["Url"][0]), {"Status": ["canceled"]}) in updates(net)


def test_hold_zero_in_spanish(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550187", status="busy", languages=("es",))
    caller = ask_for_peer(client, net, "+15555550184", lang_key="2")
    wait_doc(caller, 1)
    caller.press("0")
    assert caller.said == "Sigue en la fila para el próximo par. Una persona le atenderá en cuanto haya una libre."
    assert caller.twiml.find("Leave") is None


def test_hold_star_repeats_only_the_choices_at_once(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550188", status="busy")
    db.add(PeerStory(title="The first call I made", topic="loneliness", language="en",
                     transcript="I almost hung up.", status="approved", consent_given=True))
    db.commit()
    caller = ask_for_peer(client, net, "+15555550183")
    wait_doc(caller, 1)
    action = caller.gather().get("action")
    assert "I almost hung up." in caller.said
    caller.press("*")
    # Not the position, the wait and the story again: the choices, in the same one-key gather.
    assert caller.said == HOLD_CHOICES_EN
    gather = caller.gather()
    assert gather.get("action") == action and gather.get("numDigits") == "1"
    assert gather.get("actionOnEmptyResult") == "false"  # silence: the document ends, the wait goes on
    assert [verb.tag for verb in caller.twiml] == ["Gather"]
    # The choices work from there: 2 is a callback that keeps the place.
    caller.press("2")
    assert caller.twiml.find("Leave") is not None
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "callback"


def test_hold_nine_leaves_the_queue_for_the_crisis_line_when_the_rest_call_fails(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    make_peer(db, svc.vault, display_name="a", phone="+15555550189", status="busy")
    caller = ask_for_peer(client, net, "+15555550182")
    action = enqueue_of(caller).get("action")
    wait_doc(caller, 1)
    del net.state.calls[caller.call_sid]  # Twilio answers 404: the call cannot be moved from outside
    caller.press("9")
    assert [verb.tag for verb in caller.twiml] == ["Leave"]  # the hold handler leaves the queue itself
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "crisis"
    caller.post(action, QueueResult="leave")
    caller.follow()
    assert caller.twiml.find("Dial/Number").text == "988"
    assert caller.said == "Connecting you to the crisis line now. You can also dial 9 8 8 any time."


def test_hold_nine_moves_the_call_to_the_crisis_line_through_the_rest_api(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550190", status="busy")
    caller = ask_for_peer(client, net, "+15555550181")
    wait_doc(caller, 1)
    caller.press("9")
    assert list(caller.twiml) == []
    assert updates(net) == [(caller.call_sid, {"Url": [f"{PUBLIC_BASE}/voice/action/crisis?lang=en&told=1"],
                                               "Method": ["POST"]})]


def test_hold_callback_keeps_the_callers_arrival_time(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550178", status="busy")
    caller = ask_for_peer(client, net, "+15555550188")
    action = enqueue_of(caller).get("action")
    wait_doc(caller, 1)
    caller.press("2")
    assert caller.twiml.find("Leave") is not None  # out of the queue; the callback flow takes over
    req = db.scalar(select(PeerRequest))
    assert req.status == "callback"
    caller.post(action, QueueResult="leave")
    assert caller.said  # never a silent dead end after leaving the queue
    db.expire_all()
    callback = db.scalar(select(CallbackRequest))
    # The callback keeps the caller's place: it carries the time they first asked for a peer.
    assert aware(callback.arrived_at) == aware(req.arrived_at)
    # 3 leaves a message instead: after <Leave>, the Enqueue action goes to voicemail.
    other = ask_for_peer(client, net, "+15555550187")
    other_action = enqueue_of(other).get("action")
    wait_doc(other, 1)
    other.press("3")
    other.post(other_action, QueueResult="leave")
    assert urlsplit(other.twiml.find("Redirect").text).path == "/voice/voicemail"


def test_wrap_up_reconciled_by_clock_and_break_after_n_calls(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    svc.settings = svc.settings.replace(peer_break_after_calls=2)
    peer = make_peer(db, svc.vault, display_name="a", phone="+15555550179", status="wrap_up")
    peer.calls_in_a_row = 1
    peer.status_changed_at = utcnow()
    db.commit()
    line.reconcile(db, svc, utcnow() + timedelta(seconds=60))
    assert peer.status == "wrap_up"  # two minutes by default: not yet
    line.reconcile(db, svc, utcnow() + timedelta(seconds=121))
    assert peer.status == "available"
    peer.status, peer.calls_in_a_row, peer.status_changed_at = "wrap_up", 2, utcnow()
    db.commit()
    line.reconcile(db, svc, utcnow() + timedelta(seconds=121))
    assert peer.status == "break" and peer.calls_in_a_row == 0


def test_two_callers_one_peer_first_connected_second_waits_then_connected(svc, db, client, net, work_jobs) -> None:  # type: ignore[no-untyped-def]
    """The issue's "done when": all through the public webhooks, the wrap-up by a real RQ job."""
    db.add(PeerStory(title="I stopped hiding my recovery", topic="stigma", language="en",
                     transcript="Now I look the pharmacist in the eye.", status="approved", consent_given=True))
    db.commit()
    make_peer(db, svc.vault, display_name="sam", phone="+15555550101", tags=("medication-based-recovery",))
    first = ask_for_peer(client, net, "+15555550160")
    second = ask_for_peer(client, net, "+15555550161")
    assert len(creates(net)) == 1  # one peer: only the first caller's leg rings
    req1, req2 = db.scalars(select(PeerRequest).order_by(PeerRequest.id)).all()
    sam = pick_up(client, net, creates(net)[0])
    sam.press("1")
    assert sam.twiml.find("Dial/Conference").text == f"call-{req1.id}"
    first.post(f"{PUBLIC_BASE}/peer/caller/{req1.id}/connect?lang=en")
    assert first.twiml.find("Dial/Conference").text == f"call-{req1.id}"
    # The second caller is now first in line, and hears a peer story while waiting.
    wait_doc(second, 1)
    assert second.said.startswith("You are number 1 in line.")
    assert "Now I look the pharmacist in the eye." in second.said
    # The first call ends (the room closes for both): peer's leg completes, wrap-up starts.
    first.post(first.twiml.find("Dial").get("action"), DialCallStatus="completed")
    assert first.said == ("Your call with the peer has ended. Thank you for calling Peer Line. Take care. "
                          "If you ever feel unsafe, call or text 9 8 8, any time.")
    assert first.twiml.find("Hangup") is not None
    sam.post(sam.twiml.find("Dial").get("action"), DialCallStatus="completed")
    sam.post(creates(net)[0]["StatusCallback"][0], CallStatus="completed", CallDuration="600")
    db.expire_all()
    peer = db.scalar(select(Peer))
    assert peer.status == "wrap_up" and peer.calls_in_a_row == 1
    assert len(creates(net)) == 1  # not rung during wrap-up
    # The wrap-up end is a scheduled RQ job, two minutes after the call ended.
    queue = Queue("default", connection=svc.redis)
    registry = ScheduledJobRegistry(queue=queue)
    (job_id,) = registry.get_job_ids()
    scheduled = registry.get_scheduled_time(job_id)
    ended = aware(peer.last_call_ended_at)
    assert abs((scheduled - ended).total_seconds() - 120) < 5
    # The wrap-up passes: run the job now, in a real worker.
    job = queue.fetch_job(job_id)
    registry.remove(job)
    queue.enqueue_job(job)
    work_jobs("default")
    assert len(creates(net)) == 2 and creates(net)[1]["To"] == ["+15555550101"]
    sam2 = pick_up(client, net, creates(net)[1])
    sam2.press("1")
    assert sam2.twiml.find("Dial/Conference").text == f"call-{req2.id}"
    assert updates(net)[-1] == (second.call_sid, {"Url": [f"{PUBLIC_BASE}/peer/caller/{req2.id}/connect?lang=en"],
                                                  "Method": ["POST"]})
    second.post(f"{PUBLIC_BASE}/peer/caller/{req2.id}/connect?lang=en")
    assert second.said.startswith("A peer is here. Connecting you now. A supervisor or a peer in training may listen")
    db.expire_all()
    assert [r.status for r in db.scalars(select(PeerRequest).order_by(PeerRequest.id))] == ["ended", "connected"]


def test_dropped_peer_call_is_repaired_from_the_status_callback(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550181")
    caller = ask_for_peer(client, net, "+15555550159")
    (leg_form, ) = creates(net)[:1]
    peer_phone = pick_up(client, net, leg_form)
    peer_phone.press("1")
    # The peer's phone drops mid-call, after the room: their <Dial> action, then the status callback.
    peer_phone.post(peer_phone.twiml.find("Dial").get("action"), DialCallStatus="completed")
    peer_phone.post(leg_form["StatusCallback"][0], CallStatus="failed")
    db.expire_all()
    assert db.scalar(select(Peer).where(Peer.display_name == "a")).status == "wrap_up"
    assert db.scalar(select(PeerRequest)).status == "ended"
    assert updates(net)[-1][0] == caller.call_sid  # only the caller's move into the room


def test_peer_dropped_before_the_room_puts_the_caller_back_in_line(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550181")
    caller = ask_for_peer(client, net, "+15555550159")
    first_queue_done = enqueue_of(caller).get("action")
    (leg_form, ) = creates(net)[:1]
    peer_phone = pick_up(client, net, leg_form)
    peer_phone.press("1")
    req = db.scalar(select(PeerRequest))
    arrived = aware(req.arrived_at)
    # The peer's line drops before their <Dial> into the room: only the status callback tells us.
    peer_phone.post(leg_form["StatusCallback"][0], CallStatus="completed")
    back = f"{PUBLIC_BASE}/peer/caller/{req.id}/back?lang=en"
    assert updates(net)[-1] == (caller.call_sid, {"Url": [back], "Method": ["POST"]})
    caller.post(back)
    assert caller.said == "The peer's line dropped before you were connected. You keep your place in line."
    assert caller.twiml.find("Enqueue").get("waitUrl") == f"{PUBLIC_BASE}/peer/hold/{req.id}/wait?lang=en"
    assert caller.twiml.find("Enqueue").get("action") == f"{PUBLIC_BASE}/peer/hold/{req.id}/done?back=1&lang=en"
    db.expire_all()
    req = db.scalar(select(PeerRequest))
    assert (req.status, req.peer_id, aware(req.arrived_at)) == ("waiting", None, arrived)
    assert db.scalar(select(Peer)).status == "available"  # not wrap-up: there was no call
    assert db.scalar(select(RingLeg)).status == "dropped"
    # The first queue's action hears late that the call was moved out of it: the caller still waits.
    caller.post(first_queue_done, QueueResult="redirected", QueueTime="3")
    db.expire_all()
    assert db.scalar(select(PeerRequest)).status == "waiting"


def test_a_one_minute_wait_is_said_in_the_singular(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, display_name="a", phone="+15555550179", status="busy")
    now = utcnow()
    # Recent history: one caller waited half a minute for a peer.
    db.add(PeerRequest(call_sid="CAquick", language="en", status="ended", arrived_at=now - timedelta(seconds=90),
                       connected_at=now - timedelta(seconds=60)))
    db.commit()
    caller = ask_for_peer(client, net, "+15555550187")
    wait_doc(caller, 1)
    assert caller.said.startswith("You are number 1 in line. The expected wait is about 1 minute.")
