"""The optional caller survey after a peer call, through signed webhooks and the phone network."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from callflows import metrics
from models import Call, SurveyAnswer, utcnow
from models.tables import PeerRequest, RingLeg
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TestCaller
from tests.test_routing import ask_for_peer, creates, pick_up

INTRO = ("Before you go, we have two short questions about this call. They are optional: you can hang up at any "
         "time, and your answers are kept without your name or number. For the crisis line, press 9.")
HELPED = "Did this call help? Press a number from 1 to 5. 1 is not at all, 5 is very much."
AGAIN = "Would you call Peer Line again? Press a number from 1 to 5. 1 is surely not, 5 is surely yes."
GOODBYE = "Thank you for calling Peer Line. Take care. If you ever feel unsafe, call or text 9 8 8, any time."


@pytest.fixture(autouse=True)
def net(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built (autouse: it must come first)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


@pytest.fixture
def survey_on(app_config):  # type: ignore[no-untyped-def]
    """CALLER_SURVEY=1 for the app the test builds."""
    app_config["caller_survey"] = True


def talk_then_peer_hangs_up(svc, db, client, net, number: str = "+15555550190", lang_key: str = "1",  # type: ignore[no-untyped-def]
                            caller_status: str = "in-progress") -> tuple[TestCaller, PeerRequest]:
    """A caller talks with a peer; the peer hangs up first; Twilio posts the caller's Dial action."""
    make_peer(db, svc.vault, display_name="a", phone="+15555550181", languages=("en", "es"))
    caller = ask_for_peer(client, net, number, lang_key)
    peer = pick_up(client, net, creates(net)[0])
    peer.press("1")
    req = db.scalar(select(PeerRequest))
    caller.post(f"{PUBLIC_BASE}/peer/caller/{req.id}/connect?lang={'es' if lang_key == '2' else 'en'}")
    action = caller.twiml.find("Dial").get("action")
    leg = db.scalar(select(RingLeg).where(RingLeg.status == "accepted"))
    peer.post(peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    peer.post(f"/peer/leg/{leg.id}/status", CallStatus="completed")
    caller.post(action, DialCallStatus="completed", CallStatus=caller_status)
    return caller, req


def answers(db) -> list[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return [(a.question, a.answer, a.language) for a in db.scalars(select(SurveyAnswer).order_by(SurveyAnswer.id))]


def test_the_caller_answers_both_questions_and_the_answers_are_kept_by_pseudonym(survey_on, svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller, req = talk_then_peer_hangs_up(svc, db, client, net)
    assert caller.said == "Your call with the peer has ended."
    assert caller.twiml.find("Redirect").text == f"{PUBLIC_BASE}/peer/survey/{req.id}/helped?lang=en"
    caller.follow()
    assert caller.said == f"{INTRO} {HELPED} {GOODBYE}"  # the goodbye is what silence hears, after the question
    gather = caller.gather()
    assert (gather.get("numDigits"), gather.get("input")) == ("1", "dtmf")
    assert " ".join(" ".join(s.itertext()) for s in gather.findall("Say")) == f"{INTRO} {HELPED}"
    caller.press("4")
    assert " ".join(" ".join(s.itertext()) for s in caller.gather().findall("Say")) == AGAIN
    caller.press("5")
    assert caller.said == f"Thank you for your answers. {GOODBYE}"
    assert caller.twiml.find("Hangup") is not None
    assert answers(db) == [("helped", 4, "en"), ("again", 5, "en")]
    rows = db.scalars(select(SurveyAnswer)).all()
    # Keyed pseudonyms only: one for the caller (the same for both answers), one for this peer call.
    caller_id = db.get(Call, req.call_id).caller_id
    assert {r.respondent for r in rows} == {svc.vault.pseudonym("respondent", f"caller:{caller_id}")}
    assert {r.response for r in rows} == {svc.vault.pseudonym("response", req.id)}
    assert not hasattr(SurveyAnswer, "caller_id") and not hasattr(SurveyAnswer, "call_id")
    # And the reports count them.
    figures = metrics.compute(db, metrics.period_for_days(None, None, svc.settings.zone, utcnow()), svc.settings.zone)
    assert (figures.survey["helped"]["average"], figures.survey["again"]["count"]) == (4, 1)


def test_a_wrong_key_asks_once_more_and_star_repeats(survey_on, svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller, _req = talk_then_peer_hangs_up(svc, db, client, net)
    caller.follow()
    caller.press("7")
    assert caller.said.startswith(f"Please press a number from 1 to 5. {HELPED}")
    caller.press("*")
    assert caller.said.startswith(HELPED)
    caller.press("3")
    caller.press("#")
    assert caller.said.startswith(f"Please press a number from 1 to 5. {AGAIN}")
    caller.press("0")
    assert caller.said == GOODBYE and caller.twiml.find("Hangup") is not None
    assert answers(db) == [("helped", 3, "en")]


def test_nine_at_the_survey_reaches_the_crisis_line(survey_on, svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller, _req = talk_then_peer_hangs_up(svc, db, client, net)
    caller.follow()
    caller.press("9")
    assert caller.twiml.find("Dial/Number").text == "988"
    assert answers(db) == []


def test_the_survey_is_in_the_callers_language(survey_on, svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller, _req = talk_then_peer_hangs_up(svc, db, client, net, number="+15555550191", lang_key="2")
    assert caller.said == "Su llamada con el par terminó."
    caller.follow()
    assert caller.said.startswith("Antes de colgar, tenemos dos preguntas cortas sobre esta llamada. Son opcionales")
    caller.press("5")
    assert answers(db) == [("helped", 5, "es")]


def test_off_by_default_the_caller_hears_goodbye(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller, _req = talk_then_peer_hangs_up(svc, db, client, net)
    assert caller.said == f"Your call with the peer has ended. {GOODBYE}"
    assert caller.twiml.find("Hangup") is not None and caller.twiml.find("Redirect") is None


def test_a_caller_who_hung_up_is_not_asked(survey_on, svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller, _req = talk_then_peer_hangs_up(svc, db, client, net, caller_status="completed")
    assert caller.twiml.find("Redirect") is None


def test_another_call_cannot_answer_for_this_one(survey_on, svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    _caller, req = talk_then_peer_hangs_up(svc, db, client, net)
    stranger = TestCaller(client, number="+15555550192")
    stranger.post(f"/peer/survey/{req.id}/helped/answer?lang=en", Digits="1")
    assert stranger.said == GOODBYE
    stranger.post(f"/peer/survey/{req.id}/nonsense?lang=en")
    assert stranger.said == GOODBYE
    assert answers(db) == []


def test_peerline_call_with_a_peer_who_hangs_up_first_reaches_the_survey(survey_on, live_app: str, svc, db, net) -> None:  # type: ignore[no-untyped-def]
    """`peerline call --peer-keys hangup`: the peer ends the conversation, and the caller, still on the line, is asked."""
    from click.testing import CliRunner

    from simulator.cli import call_command
    from tests.helpers import TEST_AUTH_TOKEN

    make_peer(db, svc.vault, display_name="sam", phone="+15555550131")
    net.state.rewrite = {PUBLIC_BASE: live_app}  # the network's legs reach the app where it listens
    net.state.ring_s = 0.1
    # The caller would talk 30 s; their script ("1,1") is used up, so they hang up at the first question.
    result = CliRunner().invoke(call_command, [
        "--script", "1,1", "--talk-seconds", "30", "--peer-answers", "accept", "--peer-keys", "hangup",
        "--url", live_app, "--public-url", PUBLIC_BASE, "--token", TEST_AUTH_TOKEN, "--network", net.base_url,
        "--from", "+15555550179"])
    net.state.wait_for_legs()
    assert result.exit_code == 0, result.output
    out = result.output
    steps = ["[connected: you are in the conversation]", '"Your call with the peer has ended."', f'"{INTRO}"',
             f'"{HELPED}"', "[you hang up]"]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), "\n".join(
        f"{p:6d} {s}" for p, s in zip(positions, steps)) + "\n" + out
    # The network's line comes from another leg, so its place among the caller's own lines varies.
    assert out.find("[network] +15555550131 hangs up") > positions[0], out
    assert answers(db) == []  # hanging up at a question answers nothing
