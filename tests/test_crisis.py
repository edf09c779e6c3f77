"""Crisis first: 9, or danger said aloud, at any caller's prompt reaches the crisis line without
waiting on the database or Redis, even when both are unreachable or the database is locked."""
from __future__ import annotations

import logging
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from ivr import create_app
from ivr.services import services
from models import CallEvent
from simulator.engine import FlaskTransport, HubClient, Leg, ScriptActor, new_call_sid
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller, parse_twiml, sign, statements_run
from tests.test_faults import locked_database

DEAD_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
DEAD_REDIS = "redis://127.0.0.1:1/0"
CRISIS = "988"

# Every kind of prompt a caller (or a peer on their own shift call) can be at, with what they press.
PROMPTS = {
    "language question": "/voice/language?attempt=0",
    "main menu": "/voice/menu/main/answer?attempt=0&lang=en",
    "Spanish menu": "/voice/menu/main/answer?attempt=1&lang=es",
    "story playing": "/voice/stories/medication/key?i=0&t0=0&start=0&lead=3&lang=en",
    "story paused": "/voice/stories/medication/resume?i=0&start=12.5&lang=en",
    "story menu": "/voice/menu/story_after/answer?attempt=0&topic=medication&i=0&lang=en",
    "number entry": "/callbacks/request/7/keyed?tries=1&lang=en",
    "callback window": "/callbacks/request/7/callback_window/answer?attempt=0&lang=en",
    "pending callback": "/callbacks/pending/7/answer?attempt=0&lang=en",
    "peer PIN": "/peer/phone/pin?peer=3",
    "peer shift menu": "/peer/phone/choice?t=garbled",
}


def dialled(root: Any) -> tuple[str | None, str | None]:
    """The number a TwiML document dials and where Twilio goes after."""
    dial = root.find("Dial")
    if dial is None:
        return None, None
    return dial.findtext("Number"), dial.get("action")


@dataclass
class DeadEnd:
    """A local TCP port where nothing is served: every connection made to it is counted, then dropped."""

    port: int
    accepted: list[int] = field(default_factory=list)


@contextmanager
def dead_end() -> Iterator[DeadEnd]:
    """A DeadEnd listening while the block runs (stands in for a database or Redis that is down)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    end = DeadEnd(sock.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # the listener was closed
            end.accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield end
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(timeout=5)


@dataclass
class Unreachable:
    """The app with a database and a Redis that drop every connection, and those two dead ends."""

    app: Flask
    database: DeadEnd
    redis: DeadEnd

    def connections(self) -> int:
        """Connections the app has tried to make to either, so far."""
        return len(self.database.accepted) + len(self.redis.accepted)


@pytest.fixture
def unreachable(app_config: dict[str, Any]) -> Iterator[Unreachable]:
    """The app with its database and Redis both down (they drop every connection, and count it)."""
    with dead_end() as database, dead_end() as redis:
        app = create_app(dict(app_config, database_url=f"postgresql+psycopg://nobody@127.0.0.1:{database.port}/none",
                              redis_url=f"redis://127.0.0.1:{redis.port}/0"))
        yield Unreachable(app, database, redis)
        services(app).engine.dispose()


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("digits", ["9", "9#"])
def test_nine_dials_the_crisis_line_with_the_database_and_redis_down(unreachable: Unreachable, prompt: str,
                                                                      digits: str) -> None:
    client = unreachable.app.test_client()
    url = PUBLIC_BASE + PROMPTS[prompt]
    params = {"CallSid": "CA" + "9" * 32, "From": "+15555550199", "To": "+15005550006",
              "AccountSid": TEST_ACCOUNT_SID, "Digits": digits}
    before = unreachable.connections()
    response = client.post(PROMPTS[prompt], data=params, headers={"X-Twilio-Signature": sign(url, params)})
    # The answer was made without even trying to reach either: nothing could wait on a timeout.
    assert unreachable.connections() == before
    root = parse_twiml(response.data)
    response.close()  # then the best-effort record tries the database, and gives up
    number, after = dialled(root)
    assert number == CRISIS
    language = "es" if "lang=es" in PROMPTS[prompt] else "en"
    assert after == f"https://peerline.test/voice/crisis/done?lang={language}"


@pytest.mark.parametrize(("language", "words"), [("en", "I want to die"), ("en", "call 911"),
                                                 ("es", "me quiero morir"), ("es", "es una emergencia")])
def test_danger_said_aloud_dials_the_crisis_line_with_everything_down(unreachable: Unreachable, language: str,
                                                                      words: str) -> None:
    caller = TestCaller(unreachable.app.test_client())
    root = caller.post(f"/voice/menu/main/answer?attempt=0&lang={language}", SpeechResult=words, Confidence="0.6")
    assert dialled(root)[0] == CRISIS
    assert caller.said == {
        "en": "Connecting you to the crisis line now. You can also dial 9 8 8 any time.",
        "es": "Le comunico con la línea de crisis. También puede marcar 9 8 8 en cualquier momento.",
    }[language]


def test_nine_with_the_database_locked_is_answered_without_waiting_for_the_lock(
        caller: TestCaller, client: Any, db: Any, database_url: str) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    menu_answer = caller.gather().get("action")
    params = {"CallSid": caller.call_sid, "From": caller.number, "To": "+15005550006", "AccountSid": TEST_ACCOUNT_SID,
              "Digits": "9"}
    path = menu_answer.removeprefix(PUBLIC_BASE)
    with locked_database(database_url), statements_run(services(client.application).engine) as ran:
        response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(menu_answer, params)})
        root = parse_twiml(response.data)
        assert ran == []  # the lock holds any statement for a while; this answer ran none
    response.close()  # the answer has gone: now the event is recorded, the lock released
    assert dialled(root)[0] == CRISIS
    assert db.scalars(select(CallEvent.node).where(CallEvent.node == "crisis")).all() == ["crisis"]


def test_a_locked_database_holds_the_web_worker_only_a_moment_after_the_answer(
        caller: TestCaller, client: Any, db: Any, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    params = {"CallSid": caller.call_sid, "From": caller.number, "To": "+15005550006", "AccountSid": TEST_ACCOUNT_SID,
              "Digits": "9"}
    url = f"{PUBLIC_BASE}/voice/menu/main/answer?attempt=0&lang=en"
    with locked_database(database_url), caplog.at_level(logging.WARNING, logger="ivr.webhooks.crisis"):
        response = client.post(url.removeprefix(PUBLIC_BASE), data=params, headers={"X-Twilio-Signature": sign(url, params)})
        with statements_run(services(client.application).engine) as ran:
            response.close()  # the deferred record gives up after a short wait instead of waiting out the lock
    assert dialled(parse_twiml(response.data))[0] == CRISIS
    # The wait is shortened before the record is tried (so a locked database holds the worker a moment only)...
    short_wait = "PRAGMA busy_timeout = 250" if database_url.startswith("sqlite") else "SET LOCAL lock_timeout = 250"
    first_use = next(i for i, statement in enumerate(ran) if statement.startswith(("SELECT", "INSERT", "UPDATE")))
    assert short_wait in ran[:first_use]
    # ...and the record gave up.
    assert [r.getMessage() for r in caplog.records] == [
        f"could not record crisis for call {caller.call_sid} (the database is unavailable)"]
    assert db.scalars(select(CallEvent.node).where(CallEvent.node == "crisis")).all() == []  # best effort: lost
    caller.call()  # and the next request is served as usual
    assert "For English, press 1." in caller.said


def test_the_crisis_call_is_recorded_after_the_answer(caller: TestCaller, db: Any) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("9")
    events = db.scalars(select(CallEvent.node).join(CallEvent.call).where(CallEvent.node == "crisis")).all()
    assert events == ["crisis"]


def lock_wait(conn: Any) -> str:
    """The connection's own wait for a lock: SQLite's busy timeout, PostgreSQL's lock_timeout."""
    if conn.dialect.name == "sqlite":
        return str(conn.exec_driver_sql("PRAGMA busy_timeout").scalar())
    return str(conn.exec_driver_sql("SHOW lock_timeout").scalar())


def test_after_the_crisis_record_the_pool_keeps_its_usual_lock_wait(caller: TestCaller, app: Flask) -> None:
    engine = services(app).engine
    with engine.connect() as usual:
        expected = lock_wait(usual)
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("9")  # recorded afterwards with a 250 ms wait on its connection
    pooled = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]  # type: ignore[attr-defined]
    try:
        # The next caller served by any pooled connection waits out a busy database as usual.
        assert [lock_wait(c) for c in pooled] == [expected] * len(pooled)
    finally:
        for c in pooled:
            c.close()
    assert expected not in ("250", "250ms")


def test_on_hold_nine_moves_the_call_out_of_the_queue_to_the_crisis_line_with_everything_down(
        app_config: dict[str, Any], phone_network: Any) -> None:
    app = create_app(dict(app_config, database_url=DEAD_DATABASE, redis_url=DEAD_REDIS,
                          twilio_api_base_url=phone_network.base_url))
    try:
        caller = TestCaller(app.test_client())
        phone_network.state.calls[caller.call_sid] = {"sid": caller.call_sid, "status": "in-progress",
                                                      "account_sid": TEST_ACCOUNT_SID, "direction": "inbound",
                                                      "redirect_seq": 0}
        root = caller.post("/peer/hold/5/choice?lang=es", Digits="9")
    finally:
        services(app).engine.dispose()
    assert list(root) == []  # the queue's wait document ends; the redirect takes the call
    updates = [r for r in phone_network.state.requests if r.method == "POST" and r.path.endswith(f"{caller.call_sid}.json")]
    assert [(r.path, r.form) for r in updates] == [(
        f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{caller.call_sid}.json",
        {"Url": ["https://peerline.test/voice/action/crisis?lang=es"], "Method": ["POST"]},
    )]
    # What the redirected call then fetches dials at once, still with nothing up.
    app2 = create_app(dict(app_config, database_url=DEAD_DATABASE, redis_url=DEAD_REDIS))
    try:
        follow = TestCaller(app2.test_client(), call_sid=caller.call_sid)
        assert dialled(follow.post("/voice/action/crisis?lang=es"))[0] == CRISIS
    finally:
        services(app2).engine.dispose()


def test_peer_number_nine_is_a_peer_number_not_the_crisis_line(caller: TestCaller) -> None:
    root = caller.post("/peer/phone/id?lang=en", Digits="9")
    assert dialled(root)[0] is None
    assert "PIN" in caller.said


@pytest.mark.parametrize("ends", ["busy", "no-answer", "failed"])
def test_a_crisis_line_that_does_not_answer_leaves_the_caller_with_guidance(client, phone_network, ends: str) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.answers[CRISIS] = ends
    hub = HubClient(phone_network.base_url)
    sid = hub.register("+15555550181", "+15005550006", new_call_sid())
    leg = Leg(FlaskTransport(client), TEST_AUTH_TOKEN, sid, "+15555550181", "+15005550006", ScriptActor(["1", "9"]),
              account_sid=TEST_ACCOUNT_SID, hub=hub)
    leg.run(f"{PUBLIC_BASE}/voice/incoming")

    dial_done = [params for _, url, params in leg.requests if "/voice/crisis/done" in url]
    assert [params["DialCallStatus"] for params in dial_done] == [ends]
    assert f"the caller dials {CRISIS}: {ends}" in phone_network.state.events
    after = leg.heard[leg.heard.index("Connecting you to the crisis line now. You can also dial 9 8 8 any time.") + 1:]
    assert after[0] == ("The crisis line could not answer just now. If you are in danger, hang up and call 9 1 1. "
                        "You can also text 9 8 8. To try the crisis line again, press 9.")
    assert "What would you like to do?" in after[1]  # back at the main menu, where 9 tries again


def test_a_crisis_call_that_connected_returns_to_the_menu_without_the_warning(client, phone_network) -> None:  # type: ignore[no-untyped-def]
    hub = HubClient(phone_network.base_url)
    sid = hub.register("+15555550182", "+15005550006", new_call_sid())
    leg = Leg(FlaskTransport(client), TEST_AUTH_TOKEN, sid, "+15555550182", "+15005550006", ScriptActor(["1", "9"]),
              account_sid=TEST_ACCOUNT_SID, hub=hub)
    leg.run(f"{PUBLIC_BASE}/voice/incoming")

    assert [params["DialCallStatus"] for _, url, params in leg.requests if "/voice/crisis/done" in url] == ["completed"]
    after = leg.heard[leg.heard.index("Connecting you to the crisis line now. You can also dial 9 8 8 any time.") + 1:]
    assert "What would you like to do?" in after[0]
