"""The webhooks' hot path stays flat: what a step of a call costs in SQL does not grow with the call.

Counted with SQLAlchemy's own engine events (the statements the app sends, and its commits),
never timed: timings live in bench/.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from sqlalchemy import event, func, select

from callflows.services import Services
from models import Call, CallEvent
from tests.helpers import TestCaller


class Statements:
    """Every SQL statement and every commit the app's engine sends, from the moment it is attached."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.commits = 0

    def take(self) -> tuple[list[str], int]:
        """What was sent since the last take."""
        sent, commits = self.sql, self.commits
        self.sql, self.commits = [], 0
        return sent, commits


@pytest.fixture
def statements(svc: Services) -> Iterator[Statements]:
    """The statements and commits of the app's engine while the test runs."""
    seen = Statements()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("SET LOCAL"):  # PostgreSQL's commit without a wait for the disk
            seen.sql.append(" ".join(statement.split()))

    def on_commit(_conn: Any) -> None:
        seen.commits += 1

    event.listen(svc.engine, "before_cursor_execute", on_execute)
    event.listen(svc.engine, "commit", on_commit)
    yield seen
    event.remove(svc.engine, "before_cursor_execute", on_execute)
    event.remove(svc.engine, "commit", on_commit)


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
    sent, commits = statements.take()
    assert commits == 1
    assert len(sent) == 1
    assert sent[0].startswith("INSERT INTO call_events") and "WHERE calls.call_sid =" in sent[0]
    assert _events_of(db, caller.call_sid)[-1] == ("main", "*")


def test_an_event_for_a_call_the_line_never_saw_creates_the_call(client: Any, db: Any) -> None:
    # A menu URL reached with a CallSid the line has no row for (a lost first webhook).
    stranger = TestCaller(client, number="+15555550177")
    stranger.post("/voice/menu/main/answer?lang=en", Digits="*")
    assert "What would you like to do?" in stranger.said
    assert _events_of(db, stranger.call_sid) == [("main", "*")]
    assert db.scalar(select(func.count()).select_from(Call).where(Call.call_sid == stranger.call_sid)) == 1
