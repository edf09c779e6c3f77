"""Every Twilio-facing route answers TwiML that keeps the caller safe, whatever it is sent and whatever fails.

The routes are walked from the URL map (every rule of the Twilio-signed blueprints): unsigned
requests get 403; bogus ids and junk parameters get valid TwiML; a route that raises gets the
one error path's answer for whoever listens to it (``ivr.webhooks.failures``). The media route
(a GET with a signed token, fetched by <Play>) answers bare 404/410/500 statuses, never HTML.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import itsdangerous.timed
import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import select

from callflows import hold as hold_rules
from callflows import line, routing
from ivr.twiml import Speaker
from ivr.webhooks import (blueprints, callback_legs, callback_request, hold, in_call, media, menus, peer_legs,
                          peer_phone, status, stories, survey, voicemail)
from ivr.webhooks.failures import AUDIENCES, Audience
from ivr.webhooks.story_audio import story_audio_url
from models import utcnow
from models.tables import RingLeg
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TestCaller, parse_twiml, sign, spoken

HANDLER_MODULES = (menus, stories, voicemail, hold, peer_legs, callback_request, callback_legs, peer_phone, status,
                   survey, in_call)
WEBHOOK_BLUEPRINTS = {bp.name for bp in blueprints.TWILIO}


def webhook_rules() -> list[tuple[str, str]]:
    """(endpoint, rule) of every route on the Twilio-signed blueprints, read from a URL map at collection time."""
    assert HANDLER_MODULES  # imported above, so their routes are on the blueprints
    probe = Flask(__name__)
    for blueprint in blueprints.TWILIO:
        probe.register_blueprint(blueprint)
    return sorted((rule.endpoint, rule.rule) for rule in probe.url_map.iter_rules()
                  if rule.endpoint.partition(".")[0] in WEBHOOK_BLUEPRINTS)


RULES = webhook_rules()
ENDPOINTS = [endpoint for endpoint, _rule in RULES]

# Who listens to each route, which decides its error answer. Every route not listed is a caller's.
NOBODY = {"voice.status", "voice.voicemail_recording", "routing.leg_status", "callbacks.peer_status",
          "callbacks.caller_status",
          # in-call help: announcements (heard inside a conference) and the hand-off and listener callbacks
          "routing.in_call_peer_notice", "routing.in_call_caller_notice", "routing.handoff_status",
          "routing.monitor_status", "callbacks.in_call_peer_notice", "callbacks.in_call_caller_notice"}
ON_HOLD = {"routing.hold_wait", "routing.hold_choice"}
LEG = {"routing.leg_whisper", "routing.leg_answer", "routing.leg_after", "routing.leg_notice", "callbacks.peer_whisper",
       "callbacks.peer_answer", "callbacks.peer_after", "callbacks.peer_notice", "callbacks.caller_answer",
       "callbacks.caller_confirm", "callbacks.caller_join",
       "callbacks.caller_after", "peer_phone.peer_id", "peer_phone.pin", "peer_phone.choice",
       "routing.in_call_after", "routing.in_call_choice", "routing.in_call_rejoin", "routing.supervisor_whisper", "routing.supervisor_answer",
       "routing.supervisor_after", "routing.supervisor_choice"}
LEG |= {"routing.leg_record", "routing.leg_referral"}  # the post-call record keyed in wrap-up
LEG |= {"callbacks.peer_record", "callbacks.peer_referral"}  # the same after a callback
LEG |= {"callbacks.in_call_choice", "callbacks.in_call_rejoin"}  # the peer's in-call menu on a callback

BOGUS_IDS = {"zero": 0, "unknown": 999_999, "huge": 2**64}  # the huge one no database column holds
JUNK_QUERY = {"attempt": "abc", "i": "-5", "lang": "xx", "slow": "maybe", "err": "zz", "tries": "9" * 30,
              "t0": "abc", "lead": "-1", "start": "nan", "peer": "abc", "t": "garbage", "topic": "nope",
              "node": "nope"}
JUNK_FORM = {"Digits": "12ab", "SpeechResult": "qwerty", "CallStatus": "bogus", "QueuePosition": "x",
             "QueueResult": "bogus", "RecordingStatus": "completed", "RecordingSid": "RE0", "RecordingUrl": "",
             "RecordingDuration": "y", "CallDuration": "-3", "AnsweredBy": "unknown"}
ERROR_LINE = "Sorry, something went wrong on our side. You are still connected."


@pytest.fixture(autouse=True)
def net(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The local phone network stands in for Twilio's REST API, so no request here can reach Twilio."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def url_for_rule(app: Any, endpoint: str, row_id: int, **query: str) -> str:
    """A path (with query) of ``endpoint`` whose every argument is ``row_id`` (a bogus id, node, topic...)."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    path = app.url_map.bind("peerline.test").build(endpoint, {arg: row_id for arg in rule.arguments})
    return path + ("?" + urlencode(query) if query else "")


def post(client: Any, path: str, form: dict[str, str] | None = None, signed: bool = True,
         method: str = "POST") -> Any:
    """Send ``path`` like Twilio (signed for PUBLIC_BASE + path), with a fresh CallSid unless the form has one."""
    params = {"CallSid": "CA" + "f" * 32, "From": "+15555550123", "To": "+15005550006",
              "AccountSid": TEST_ACCOUNT_SID, **(form or {})}
    if method == "GET":
        params = {}
    headers = {"X-Twilio-Signature": sign(PUBLIC_BASE + path, params)} if signed else {}
    return client.open(path, method=method, data=params or None, headers=headers)


def twiml_of(response: Any) -> etree._Element:
    """The TwiML of a 200 text/xml answer, checked against Twilio's schema."""
    assert response.status_code == 200, (response.status_code, response.data[:300])
    assert response.mimetype == "text/xml"
    return parse_twiml(response.data)


def test_the_walk_covers_every_webhook_of_the_app(app) -> None:  # type: ignore[no-untyped-def]
    assert len(RULES) >= 37
    assert set(app.extensions[AUDIENCES]) == set(ENDPOINTS)  # the app serves every route, and knows who listens
    assert {"voice.incoming", "voice.fallback", "routing.leg_whisper", "callbacks.peer_whisper",
            "peer_phone.pin"} <= set(ENDPOINTS)
    assert not (NOBODY | ON_HOLD | LEG) - set(ENDPOINTS)  # the lists above name real routes


def test_each_route_knows_who_listens(app) -> None:  # type: ignore[no-untyped-def]
    expected = {endpoint: Audience.NOBODY if endpoint in NOBODY else Audience.ON_HOLD if endpoint in ON_HOLD
                else Audience.LEG if endpoint in LEG else Audience.CALLER for endpoint in ENDPOINTS}
    assert app.extensions[AUDIENCES] == expected


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unsigned_request_is_refused(app, client, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    response = post(client, url_for_rule(app, endpoint, 1), signed=False)
    assert response.status_code == 403


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bogus_ids_and_junk_parameters_answer_valid_twiml(app, client, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    for bogus in BOGUS_IDS.values():
        twiml_of(post(client, url_for_rule(app, endpoint, bogus, **JUNK_QUERY), JUNK_FORM))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_route_that_raises_answers_for_whoever_listens(app, client, monkeypatch,  # type: ignore[no-untyped-def]
                                                         endpoint: str) -> None:
    def broken(**_view_args: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setitem(app.view_functions, endpoint, broken)
    first = twiml_of(post(client, url_for_rule(app, endpoint, 7, lang="es")))
    again = twiml_of(post(client, url_for_rule(app, endpoint, 7, lang="es", err="1")))
    if endpoint in NOBODY:
        assert len(first) == 0 and len(again) == 0  # an empty <Response/>: nobody listens
    elif endpoint in LEG:
        assert spoken(first) == "Perdón, algo falló de nuestro lado. Adiós."
        assert [verb.tag for verb in first] == ["Say", "Hangup"]
    elif endpoint in ON_HOLD:
        # Back to the wait document (same place in line); a second failure leaves the queue.
        assert spoken(first) == "Perdón, algo falló de nuestro lado. Sigue en la llamada."
        assert first.find("Redirect").text == f"{PUBLIC_BASE}/peer/hold/7/wait?err=1&lang=es"
        assert [verb.tag for verb in again] == ["Say", "Leave"]
    elif endpoint == "voice.fallback":
        # The last resort failed: no menu to go back to, straight to the crisis line.
        assert first.find("Dial/Number").text == "988" and again.find("Dial/Number").text == "988"
    else:
        assert spoken(first) == "Perdón, algo falló de nuestro lado. Sigue en la llamada."
        assert first.find("Redirect").text == f"{PUBLIC_BASE}/voice/menu/main?err=1&lang=es"
        # A second failure in a row: the crisis line, never a loop.
        assert again.find("Dial/Number").text == "988"
        assert spoken(again).startswith("Sorry, Peer Line is down right now, so stay on the line for the crisis line.")
    assert first.find("Hangup") is None or endpoint in LEG  # never a silent hang-up for a caller


# A rule that fails inside a real call ----------------------------------------------------------


def explode(*_args: object, **_kwargs: object) -> None:
    """Stands in for a rule or a renderer that fails."""
    raise RuntimeError("database on fire")


def test_menu_renderer_failing_twice_hands_the_caller_to_the_crisis_line(caller: TestCaller, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    caller.call()
    caller.press("1")
    caller.to_menu()
    monkeypatch.setattr(Speaker, "menu", explode)
    caller.press("2")  # the stories menu: Speaker.menu fails
    assert caller.said == ERROR_LINE
    assert caller.twiml.find("Redirect").text == f"{PUBLIC_BASE}/voice/menu/main?err=1&lang=en&told=1"
    caller.follow()  # the main menu fails too
    assert caller.twiml.find("Dial/Number").text == "988"
    assert caller.twiml.find("Hangup") is None


def add_peer(app, db, phone: str):  # type: ignore[no-untyped-def]
    """An available English-speaking peer."""
    from models import Peer

    vault = app.extensions["peerline"].vault
    peer = Peer(display_name="Sam", phone_encrypted=vault.encrypt_text(phone), phone_hash=vault.lookup_hash(phone),
                languages=["en"], tags=[], status="available")
    db.add(peer)
    db.commit()
    return peer


def on_hold(client, net) -> TestCaller:  # type: ignore[no-untyped-def]
    """A caller who asked for a peer and waits in the queue while the peer's phone rings."""
    caller = TestCaller(client, number="+15555550177")
    net.state.calls[caller.call_sid] = {"sid": caller.call_sid, "account_sid": TEST_ACCOUNT_SID,
                                        "status": "in-progress", "direction": "inbound", "From": caller.number,
                                        "To": "+15005550006", "redirect_seq": 0}
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("1")
    assert caller.twiml.find("Enqueue") is not None
    return caller


@pytest.mark.parametrize("failing", ["the round's read", "the reconciler"])
def test_hold_poll_failing_keeps_the_place_then_leaves_the_queue(app, db, client, net,  # type: ignore[no-untyped-def]
                                                                 monkeypatch, failing: str) -> None:
    add_peer(app, db, "+15555550111")
    caller = on_hold(client, net)
    enqueue = caller.twiml.find("Enqueue")
    if failing == "the reconciler":
        # It runs only when it has something to do: a second peer's wrap-up is over.
        ended = add_peer(app, db, "+15555550112")
        ended.status, ended.status_changed_at = "wrap_up", utcnow() - timedelta(hours=1)
        db.commit()
        monkeypatch.setattr(line, "reconcile", explode)
    else:
        monkeypatch.setattr(hold_rules, "hold_round", explode)
    caller.post(enqueue.get("waitUrl"), QueuePosition="1")
    assert caller.said == ERROR_LINE
    redirect = caller.twiml.find("Redirect").text
    assert urlsplit(redirect).path == urlsplit(enqueue.get("waitUrl")).path and "err=1" in redirect
    caller.post(redirect, QueuePosition="1")  # fails again: leave the queue...
    assert [verb.tag for verb in caller.twiml] == ["Say", "Leave"]
    caller.post(enqueue.get("action"), QueueResult="leave")  # ...and the Enqueue action offers what is left
    assert "No peer can answer right now." in caller.said
    assert caller.twiml.find("Hangup") is None


def test_peer_leg_rules_failing_answer_the_peer_and_twilio(app, db, client, net, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    add_peer(app, db, "+15555550111")
    on_hold(client, net)
    leg = db.scalar(select(RingLeg))
    sid = next(sid for sid, call in net.state.calls.items() if call.get("Url", "").endswith(f"/leg/{leg.id}/whisper"))
    peer = TestCaller(client, number="+15005550006", call_sid=sid)
    monkeypatch.setattr(routing, "leg_answered", explode)
    peer.post(f"/peer/leg/{leg.id}/whisper", CallStatus="in-progress")
    assert peer.said == "Sorry, something went wrong on our side. Goodbye."
    assert peer.twiml.find("Hangup") is not None
    monkeypatch.setattr(line, "dispatch", explode)  # the leg's end offers the line to free peers: it fails
    peer.post(f"/peer/leg/{leg.id}/status", CallStatus="no-answer")
    assert len(peer.twiml) == 0


# Paths no route matches, and the wrong method -------------------------------------------------


@pytest.mark.parametrize("path", ["/voice/nothing", "/peer/leg/abc/status", "/callbacks/attempt/1/nobody",
                                  "/peer/phone/nothing", "/voice"])
def test_unknown_webhook_path_answers_twiml_when_signed(client, path: str) -> None:  # type: ignore[no-untyped-def]
    assert post(client, path, signed=False).status_code == 403
    root = twiml_of(post(client, path))
    assert spoken(root) == ERROR_LINE
    assert root.find("Redirect").text == f"{PUBLIC_BASE}/voice/menu/main?err=1&lang=en"


def test_get_on_a_webhook_answers_twiml_that_posts_on(client) -> None:  # type: ignore[no-untyped-def]
    # Twilio always POSTs here: a GET is a misconfigured number, and its caller still hears the menu.
    assert post(client, "/voice/incoming", signed=False, method="GET").status_code == 403
    root = twiml_of(post(client, "/voice/incoming", method="GET"))
    redirect = root.find("Redirect")
    assert redirect.get("method") == "POST" and redirect.text == f"{PUBLIC_BASE}/voice/menu/main?err=1&lang=en"


def test_other_paths_keep_flasks_own_answers(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/nothing").status_code == 404
    assert client.get("/staff/nothing").status_code == 404
    assert client.post("/healthz").status_code == 405


# The media route -------------------------------------------------------------------------------


def test_story_audio_with_a_bad_or_expired_token_is_a_bare_404_or_410(app, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    forged = client.get("/media/story/not-a-token.wav")
    assert forged.status_code == 404 and forged.data == b"" and forged.mimetype == "text/plain"
    with app.test_request_context():
        unknown_story = urlsplit(story_audio_url(999_999)).path
        now = time.time()
        monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: now - 2 * 86400)
        expired = urlsplit(story_audio_url(1)).path
        monkeypatch.undo()
    assert client.get(unknown_story).status_code == 404
    gone = client.get(expired)
    assert gone.status_code == 410 and gone.data == b""


def test_story_audio_failure_is_a_bare_500(app, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        path = urlsplit(story_audio_url(1)).path
    monkeypatch.setattr(media, "read_story_token", explode)
    response = client.get(path)
    assert response.status_code == 500 and response.data == b"" and response.mimetype == "text/plain"


def test_no_two_routes_answer_the_same_url(app) -> None:  # type: ignore[no-untyped-def]
    """Two handlers on one URL: Flask serves the first only, and the other's callers hear nothing (a merge hazard)."""
    seen: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            key = (rule.rule, method)
            assert key not in seen, f"{rule.endpoint} and {seen[key]} both answer {method} {rule.rule}"
            seen[key] = rule.endpoint
