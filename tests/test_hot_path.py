"""The webhooks' hot path stays flat: what a step of a call costs in SQL does not grow with the call.

Counted with SQLAlchemy's own engine events (the statements the app sends, and its commits),
never timed: timings live in bench/.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import NullPool, event, func, select

from callflows import callbacks, line
from callflows.services import Services
from models import Call, CallbackRequest, CallEvent, Peer, PeerStatusChange, PeerStory, utcnow
from models.tables import PeerRequest
from models.session import PING_AFTER_IDLE_S, make_engine
from tests.factories import make_peer
from tests.helpers import TestCaller, require


class Statements:
    """Every SQL statement and every commit the app's engine sends, from the moment it is attached."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.commits = 0
        self.autocommitted: list[str] = []  # statements that committed themselves (no BEGIN, no COMMIT sent)

    def take(self) -> tuple[list[str], int]:
        """What was sent since the last take."""
        sent, commits = self.sql, self.commits
        self.sql, self.commits, self.autocommitted = [], 0, []
        return sent, commits


@pytest.fixture
def statements(svc: Services) -> Iterator[Statements]:
    """The statements and commits of the app's engine while the test runs."""
    seen = Statements()

    def on_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("SET LOCAL"):  # PostgreSQL's commit without a wait for the disk
            seen.sql.append(" ".join(statement.split()))
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                seen.autocommitted.append(seen.sql[-1])

    def on_commit(_conn: Any) -> None:
        seen.commits += 1

    event.listen(svc.engine, "before_cursor_execute", on_execute)
    event.listen(svc.engine, "commit", on_commit)
    yield seen
    event.remove(svc.engine, "before_cursor_execute", on_execute)
    event.remove(svc.engine, "commit", on_commit)


def _what(statement: str) -> str:
    """A statement's verb and table: ``SELECT``, ``INSERT INTO calls``, ``UPDATE callers``."""
    words = statement.split()
    if words[0] == "INSERT":
        return " ".join(words[:3])
    return " ".join(words[:2]) if words[0] == "UPDATE" else words[0]


def _events_of(db: Any, call_sid: str) -> list[tuple[str, str | None]]:
    call = db.scalar(select(Call).where(Call.call_sid == call_sid))
    return [(e.node, e.input) for e in db.scalars(select(CallEvent).where(CallEvent.call_id == call.id)
                                                  .order_by(CallEvent.id))]


def test_a_long_call_costs_the_same_per_step_and_never_reads_its_earlier_events(
        caller: TestCaller, statements: Statements, db: Any) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    statements.take()
    per_step: list[tuple[int, int]] = []
    for _ in range(60):  # stories and back, over and over: 120 more steps of one call
        for key in ("2", "5"):
            caller.press(key)
            sent, commits = statements.take()
            assert not [s for s in sent if s.startswith("SELECT") and "FROM call_events" in s], sent
            per_step.append((len(sent), commits))
    assert "What would you like to do?" in caller.said
    # The 120th step sends what the first did: one INSERT of the event, one commit.
    assert set(per_step) == {(1, 1)}
    steps = _events_of(db, caller.call_sid)
    assert len(steps) == 2 + 120
    assert steps[:4] == [("incoming", None), ("language", "1"), ("main", "2"), ("stories", "5")]
    assert steps[-2:] == [("main", "2"), ("stories", "5")]


def test_a_menu_answer_is_one_insert_found_by_the_call_sid(caller: TestCaller, statements: Statements,
                                                           db: Any) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    statements.take()
    caller.press("*")
    autocommitted = statements.autocommitted
    sent, commits = statements.take()
    assert commits == 1  # SQLAlchemy's end of the statement's transaction; the driver sends nothing for it
    assert len(sent) == 1
    assert sent[0].startswith("INSERT INTO call_events") and "WHERE calls.call_sid =" in sent[0]
    # It commits itself: one round trip, no BEGIN or COMMIT of its own (nor SET LOCAL), and durable.
    assert autocommitted == sent
    assert _events_of(db, caller.call_sid)[-1] == ("main", "*")


def test_a_call_comes_in_with_one_query_and_one_commit_and_the_language_is_saved_the_same_way(
        client: Any, statements: Statements, db: Any) -> None:
    first = TestCaller(client, number="+15555550166")
    first.call()
    sent, commits = statements.take()
    assert "For English, press 1." in first.said
    # Who is calling (a peer's phone, the caller, a waiting callback): one SELECT; then the caller,
    # the call and its first step, written once each; one commit.
    assert [_what(s) for s in sent] == ["SELECT", "INSERT INTO callers", "INSERT INTO calls", "INSERT INTO call_events"]
    assert "FROM peers" in sent[0] and "JOIN callers" in sent[0] and "FROM callback_requests" in sent[0]
    assert commits == 1
    first.press("1")
    sent, commits = statements.take()
    assert "What would you like to do?" in first.said
    # Whether the line is open (one query), the call's and the caller's language, the step; one commit.
    assert [_what(s) for s in sent] == ["SELECT", "UPDATE calls", "UPDATE callers", "INSERT INTO call_events"]
    assert "FROM open_hours" in sent[0] and "FROM holidays" in sent[0] and "FROM closures" in sent[0]
    assert commits == 1
    # The caller calls again: greeted in English at once; the call gets the language they chose.
    again = TestCaller(client, number="+15555550166")
    again.call()
    sent, commits = statements.take()
    assert "For English, press 1." not in again.said and "What would you like to do?" not in again.said
    assert [_what(s) for s in sent] == ["SELECT", "UPDATE callers", "INSERT INTO calls", "INSERT INTO call_events", "SELECT"]
    assert commits == 1
    calls = {c.call_sid: c for c in db.scalars(select(Call).where(Call.call_sid.in_([first.call_sid,
                                                                                      again.call_sid])))}
    assert calls[first.call_sid].caller_id == calls[again.call_sid].caller_id is not None
    assert calls[again.call_sid].language == "en"
    assert _events_of(db, again.call_sid) == [("incoming", None)]


def test_twilio_posting_a_call_s_first_webhook_twice_keeps_one_call(client: Any, db: Any) -> None:
    caller = TestCaller(client, number="+15555550167")
    caller.call()
    caller.call()  # Twilio retried /voice/incoming (a timeout on its side)
    assert "For English, press 1." in caller.said
    assert db.scalar(select(func.count()).select_from(Call).where(Call.call_sid == caller.call_sid)) == 1
    assert db.scalar(select(Call.caller_id).where(Call.call_sid == caller.call_sid)) is not None
    assert _events_of(db, caller.call_sid) == [("incoming", None), ("incoming", None)]


def test_an_event_for_a_call_the_line_never_saw_creates_the_call(client: Any, db: Any) -> None:
    # A menu URL reached with a CallSid the line has no row for (a lost first webhook).
    stranger = TestCaller(client, number="+15555550177")
    stranger.post("/voice/menu/main/answer?lang=en", Digits="*")
    assert "What would you like to do?" in stranger.said
    assert _events_of(db, stranger.call_sid) == [("main", "*")]
    assert db.scalar(select(func.count()).select_from(Call).where(Call.call_sid == stranger.call_sid)) == 1


# The line of callbacks is read a page at a time ------------------------------------------------


@pytest.fixture
def network(app_config: dict[str, object], phone_network: Any) -> Any:
    """The phone network, wired in before the app is built (list it before ``svc``)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def test_a_free_peer_reaches_the_first_callback_they_can_take_past_many_they_cannot(
        network: Any, svc: Services, db: Any) -> None:
    now = utcnow()
    make_peer(db, svc.vault, display_name="Ana", phone="+15555550321", languages=["en"], status="available")
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)

    def callback(language: str, minutes_ago: int) -> CallbackRequest:
        cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text("+15555550500"), language=language,
                             status="pending", arrived_at=now - timedelta(minutes=minutes_ago),
                             not_before=not_before, not_after=not_after, due_at=not_before)
        db.add(cb)
        return cb

    # Three pages of callbacks in Spanish, which the one free peer does not speak, and one whose
    # window has closed; then the English one, last in line.
    spanish = [callback("es", 100 - i) for i in range(3 * callbacks.DUE_PAGE)]
    closed = callback("en", 200)
    closed.not_after = now - timedelta(minutes=1)
    english = callback("en", 1)
    db.commit()
    assert line.dispatch(db, svc, now) == 1
    rung = [r.form for r in network.state.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    assert [form["To"] for form in rung] == [["+15555550321"]]
    db.expire_all()
    assert db.get(CallbackRequest, english.id).status == "dialing"
    assert db.get(CallbackRequest, closed.id).status == "pending"
    assert {db.get(CallbackRequest, cb.id).status for cb in spanish} == {"pending"}


def test_callbacks_that_arrived_at_the_same_instant_keep_their_turns_from_page_to_page(
        network: Any, svc: Services, db: Any) -> None:
    now = utcnow()
    make_peer(db, svc.vault, display_name="Ana", phone="+15555550321", languages=["en"], status="available")
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    arrived = now - timedelta(minutes=30)

    def callback(language: str) -> CallbackRequest:
        cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text("+15555550500"), language=language,
                             status="pending", arrived_at=arrived, not_before=not_before, not_after=not_after,
                             due_at=not_before)
        db.add(cb)
        db.flush()  # one at a time: the line orders callbacks of one instant by id
        return cb

    # Two and a half pages that all arrived at one instant, in Spanish (the peer does not speak it),
    # and then, at the same instant, the English one: each page must start right after the last.
    spanish = [callback("es") for _ in range(2 * callbacks.DUE_PAGE + callbacks.DUE_PAGE // 2)]
    english = callback("en")
    db.commit()
    assert line.dispatch(db, svc, now) == 1
    db.expire_all()
    assert db.get(CallbackRequest, english.id).status == "dialing"
    assert {db.get(CallbackRequest, cb.id).status for cb in spanish} == {"pending"}


def test_a_peer_whose_wrap_up_ends_rings_for_the_first_due_callback_in_one_transaction(
        network: Any, svc: Services, db: Any, statements: Statements) -> None:
    now = utcnow()
    began = now - timedelta(seconds=svc.settings.peer_wrapup_seconds)
    ana = make_peer(db, svc.vault, display_name="Ana", phone="+15555550321", status="wrap_up",
                    status_changed_at=began)
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    line_of = [CallbackRequest(number_encrypted=svc.vault.encrypt_text(f"+155555505{i:02d}"), language="en",
                               status="pending", arrived_at=now - timedelta(minutes=60 - i), not_before=not_before,
                               not_after=not_after, due_at=not_before) for i in range(3 * callbacks.DUE_PAGE)]
    db.add_all(line_of)
    db.commit()
    statements.take()
    with svc.sessions() as session:
        assert line.wrap_up_passed(session, svc, ana.id, began.timestamp(), utcnow()) == "available"
    sent, commits = statements.take()
    # Up to the peer's phone, in one transaction: the release and its status change; who is free,
    # whether anyone waits, the first page of the line and the hours (one UNION ALL); both claims,
    # the peer's status change and the attempt; one commit. Then the call's SID, committed, and
    # the free peers read again.
    if svc.engine.dialect.name == "postgresql":  # the writes as data-modifying WITHs: one statement each
        # The claim of the peer this transaction released needs no savepoint (callbacks._claim).
        assert [_what(statement) for statement in sent] == ["WITH", "SELECT", "WITH", "UPDATE callback_attempts", "SELECT"]
        assert "UPDATE peers" in sent[0] and "INSERT INTO peer_status_changes" in sent[0]
        assert "FOR UPDATE" in sent[2] and "INSERT INTO callback_attempts" in sent[2]
    else:  # in a savepoint, so that a failed claim never undoes the release
        assert [_what(statement) for statement in sent] == [
            "UPDATE peers", "INSERT INTO peer_status_changes", "SELECT",
            "SAVEPOINT", "UPDATE callback_requests", "UPDATE peers", "INSERT INTO peer_status_changes",
            "INSERT INTO callback_attempts", "RELEASE",
            "UPDATE callback_attempts", "SELECT"]
    read = next(statement for statement in sent if statement.startswith("SELECT"))
    assert "FROM peers" in read and "EXISTS" in read and "FROM callback_requests" in read and "UNION ALL" in read
    assert all(f"FROM {table}" in read for table in ("open_hours", "holidays", "closures"))
    assert commits == 2
    rung = [r.form for r in network.state.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    assert [form["To"] for form in rung] == [["+15555550321"]]
    db.expire_all()
    assert db.get(Peer, ana.id).status == "busy"
    assert [cb.status for cb in line_of[:2]] == ["dialing", "pending"]  # the first in line, and only one
    assert db.scalars(select(PeerStatusChange.status).where(PeerStatusChange.peer_id == ana.id)
                      .order_by(PeerStatusChange.id)).all() == ["available", "busy"]


# A hold round is one statement -------------------------------------------------------------------


def _on_hold(caller: TestCaller) -> str:
    """The caller asks for a peer and waits in the hold queue; the queue's waitUrl."""
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("1")
    enqueue = caller.twiml.find("Enqueue") if caller.twiml is not None else None
    assert enqueue is not None
    return str(enqueue.get("waitUrl"))


def _hold_round(caller: TestCaller, wait_url: str) -> None:
    caller.post(wait_url, QueuePosition="1", QueueTime="60", CurrentQueueSize="1")


def test_a_hold_round_is_one_statement_and_the_caller_hears_their_place_the_wait_and_the_stories_in_turn(
        network: Any, svc: Services, caller: TestCaller, statements: Statements, db: Any) -> None:
    now = utcnow()
    make_peer(db, svc.vault, display_name="Ana", phone="+15555550321", status="busy")
    db.add_all([PeerStory(title=title, topic="loneliness", language="en", transcript=words, status="approved",
                          consent_given=True)
                for title, words in (("The first call", "I almost hung up."), ("Mornings", "Coffee first."))])
    # Ahead in the one line: a caller who came first, and a callback due that came first. Recent
    # history: a caller waited three minutes.
    db.add_all([PeerRequest(call_sid="CAahead", language="en", status="waiting", arrived_at=now - timedelta(minutes=5)),
                PeerRequest(call_sid="CAold", language="en", status="ended", arrived_at=now - timedelta(minutes=40),
                            connected_at=now - timedelta(minutes=37))])
    not_before, not_after = callbacks.window_bounds("now", now, svc.settings)
    db.add(CallbackRequest(number_encrypted=svc.vault.encrypt_text("+15555550500"), language="en", status="pending",
                           arrived_at=now - timedelta(minutes=10), not_before=not_before, not_after=not_after,
                           due_at=not_before))
    db.commit()
    wait_url = _on_hold(caller)
    heard = []
    for _round in range(3):
        statements.take()
        _hold_round(caller, wait_url)
        autocommitted = statements.autocommitted
        sent, commits = statements.take()
        heard.append(caller.said)
        # The request, the place, the wait, who is on shift, the story in turn and whether the
        # reconciler has anything to do (nothing: no wrap-up is over, nobody is free), read at once.
        if svc.engine.dialect.name == "postgresql":
            # The story's turn moves on in the same statement, which commits itself: one round trip.
            assert [_what(statement) for statement in sent] == ["WITH"]
            assert sent[0].startswith("WITH turned AS (UPDATE peer_requests SET hold_plays")
            assert "set_config" in sent[0]
        else:
            assert [_what(statement) for statement in sent] == ["SELECT", "UPDATE peer_requests"]
        assert autocommitted == sent and commits == 1  # no BEGIN, no COMMIT sent
    assert all(said.startswith("You are number 3 in line. The expected wait is about 9 minutes.") for said in heard)
    stories = ["The first call. I almost hung up.", "Mornings. Coffee first.", "The first call. I almost hung up."]
    assert [f"Here is a story from a peer: {story}" in said for said, story in zip(heard, stories)] == [True] * 3
    assert "press 9 for the crisis line" in heard[-1]
    assert db.scalar(select(PeerRequest.hold_plays).where(PeerRequest.call_sid == caller.call_sid)) == 3


def test_a_hold_round_frees_a_peer_whose_wrap_up_is_over_and_rings_them_for_the_caller(
        network: Any, svc: Services, caller: TestCaller, statements: Statements, db: Any) -> None:
    ana = make_peer(db, svc.vault, display_name="Ana", phone="+15555550321", status="wrap_up",
                    status_changed_at=utcnow() - timedelta(seconds=svc.settings.peer_wrapup_seconds + 5))
    wait_url = _on_hold(caller)  # Ana is on shift but not free: nobody is rung yet
    assert [r for r in network.state.requests if r.path.endswith("/Calls.json")] == []
    statements.take()
    _hold_round(caller, wait_url)  # her wrap-up job was lost: the round's reconciler frees her
    sent, _commits = statements.take()
    assert caller.said.startswith("You are number 1 in line.")
    assert len(sent) > 1 and "UPDATE peers" in sent[1]  # the round, then the reconciler
    rung = [r.form for r in network.state.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    assert [form["To"] for form in rung] == [["+15555550321"]]
    db.expire_all()
    assert db.get(Peer, ana.id).status == "busy"
    statements.take()
    _hold_round(caller, wait_url)  # nothing left for the reconciler: the round alone (no story to turn)
    sent, _commits = statements.take()
    assert len(sent) == 1


# No ping on a busy line, a ping after a pause ----------------------------------------------------


def test_a_connection_the_database_dropped_while_idle_is_replaced_before_a_webhook_uses_it(
        svc: Services, caller: TestCaller, statements: Statements) -> None:
    require(svc.engine.dialect.name == "postgresql",
            "needs PostgreSQL: set TEST_DATABASE_URL (SQLite has no server to drop a connection)")
    caller.call()
    caller.press("1")
    caller.to_menu()
    statements.take()
    caller.press("*")  # a busy line: the pooled connection was used a moment ago, so no ping
    sent, _commits = statements.take()
    assert len(sent) == 1
    with svc.engine.connect() as conn:  # the one pooled connection the webhooks use
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    killer = make_engine(svc.settings.database_url, poolclass=NullPool)
    with killer.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})").scalar() is True
    killer.dispose()
    time.sleep(PING_AFTER_IDLE_S + 0.2)  # a pause on the line: the next checkout pings first
    caller.press("2")
    assert "Which stories would you like to hear?" in caller.said
    assert "something went wrong" not in caller.said
    assert _events_of_fresh(svc, caller.call_sid)[-1] == ("main", "2")


def _events_of_fresh(svc: Services, call_sid: str) -> list[tuple[str, str | None]]:
    with svc.sessions() as session:
        return _events_of(session, call_sid)
