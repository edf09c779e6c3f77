"""A hold round: everything the queue's wait document says, read in one statement.

Twilio fetches the waitUrl of every caller on hold round after round, so this is the line's most
frequent read. One query, built and compiled once per database, brings the caller's request
(only when it belongs to the call), their place in the one line (callers of their language who
came first, and callbacks due or being dialled that came first), the expected wait from recent
history, whether any peer who speaks their language is on shift, the next story in turn, and
whether the reconciler has anything to do. On PostgreSQL the same statement moves the story's
turn on (a data-modifying WITH) and commits itself without waiting for the disk: one round trip.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (ColumnElement, Executable, Subquery, Table, and_, bindparam, exists, func, or_, select,
                        update)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB

from callflows.calls import MAX_ROW_ID
from callflows.peers import FREE_PEERS, ON_SHIFT, PEERS, WRAP_UP_OVER, wrap_up_due
from callflows.routing import OPEN_REQUESTS
from callflows.services import Services
from callflows.stories import PLAYABLE
from models import CallbackRequest, PeerStory
from models.tables import PeerRequest

HISTORY_WINDOW = timedelta(hours=24)
HISTORY_CALLS = 20
# Never promise less than half a minute a caller.
SHORTEST_WAIT_S = 30.0

REQUESTS = cast(Table, PeerRequest.__table__)
CALLBACKS = cast(Table, CallbackRequest.__table__)
STORIES = cast(Table, PeerStory.__table__)
_WHEN = REQUESTS.c.arrived_at.type  # binds typed as the column (SQLite keeps a time as text, written one way)
# No bind is named after a column of peer_requests: an UPDATE would take it for a value to SET.


@dataclass(frozen=True)
class Story:
    """The story a caller on hold hears next."""

    id: int
    title: str
    transcript: str
    audio_path: str | None


@dataclass(frozen=True)
class HoldRound:
    """What one wait document says, and whether the reconciler should run after it."""

    req_id: int
    language: str
    position: int
    minutes: int | None  # None: no recent history, the wait is not guessed
    nobody_on: bool  # everyone who speaks the caller's language signed off meanwhile
    story: Story | None  # None when nobody is on, or no story in the language is playable
    reconcile: bool  # a wrap-up is over by the clock, or a peer is free: the line has something to offer


def hold_round(svc: Services, req_id: int, call_sid: str, now: datetime) -> HoldRound | None:
    """The caller's next wait document (None when the request is not this call's); its story's turn moves on.

    One statement on PostgreSQL, committed by itself without a wait for the disk (which story
    plays next is not worth one); elsewhere the read, then the turn's UPDATE.
    """
    if not 0 < req_id <= MAX_ROW_ID:  # an id no database can hold finds nothing, never an error
        return None
    dialect = svc.engine.dialect.name
    params = {"req_id": req_id, "caller_call": call_sid, "now": now, "since": now - HISTORY_WINDOW,
              "due": wrap_up_due(svc, now)}
    with svc.engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        row = auto.execute(_round_statement(dialect), params).one_or_none()
        if row is not None and dialect != "postgresql" and row.on_shift and row.story_id is not None:
            auto.execute(_NEXT_TURN, {"req_id": req_id})
        auto.commit()  # nothing left to send: each statement committed itself
    if row is None:
        return None
    story = None
    if row.on_shift and row.story_id is not None:
        story = Story(int(row.story_id), str(row.title), str(row.transcript), row.audio_path)
    position = 1 + int(row.callers_ahead or 0) + int(row.callbacks_ahead or 0)
    return HoldRound(req_id=int(row.id), language=str(row.language), position=position,
                     minutes=expected_wait_minutes(row.average_wait, position), nobody_on=not row.on_shift,
                     story=story, reconcile=bool(row.reconcile))


def expected_wait_minutes(average_wait_s: Any, position: int) -> int | None:
    """Expected wait: the average wait of recent connected callers (at least half a minute) times the position."""
    if average_wait_s is None:
        return None
    average = max(SHORTEST_WAIT_S, float(average_wait_s))
    return max(1, math.ceil(average * max(1, position) / 60))


# The statement -----------------------------------------------------------------------------


def _speaks(dialect: str, language: ColumnElement[str]) -> ColumnElement[bool]:
    """A peer speaks ``language``: their languages are a JSON list, tested in each database's own JSON."""
    if dialect == "postgresql":
        return sql_cast(PEERS.c.languages, JSONB).has_key(language)
    each = func.json_each(PEERS.c.languages).table_valued("value")
    return exists().select_from(each).where(each.c.value == language)


def _on_shift(dialect: str) -> ColumnElement[bool]:
    """Whether a peer who speaks the request's language is signed on (available, busy, wrap-up or break)."""
    return exists().where(PEERS.c.active.is_(True), PEERS.c.status.in_(ON_SHIFT),
                          _speaks(dialect, REQUESTS.c.language))


def _seconds(dialect: str, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[Any]:
    """Seconds from ``start`` to ``end`` (SQLite: to the millisecond, as it keeps times)."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


def _ranked_stories() -> Subquery:
    """Playable stories with their turn within their language (0, 1, ...) and how many the language has."""
    mine = (STORIES.c.language,)
    return (select(STORIES.c.id, STORIES.c.title, STORIES.c.transcript, STORIES.c.audio_path, STORIES.c.language,
                   (func.row_number().over(partition_by=mine, order_by=STORIES.c.id) - 1).label("turn"),
                   func.count().over(partition_by=mine).label("told"))
            .where(*PLAYABLE).subquery("story"))


@functools.cache
def _round_statement(dialect: str) -> Executable:
    """The hold round's query, built once per database (SQLAlchemy then compiles it once)."""
    other = REQUESTS.alias("other")
    callers_ahead = (select(func.count()).select_from(other)
                     .where(other.c.status.in_(OPEN_REQUESTS), other.c.language == REQUESTS.c.language,
                            other.c.id != REQUESTS.c.id,
                            or_(other.c.arrived_at < REQUESTS.c.arrived_at,
                                and_(other.c.arrived_at == REQUESTS.c.arrived_at, other.c.id < REQUESTS.c.id)))
                     .scalar_subquery())
    callbacks_ahead = (select(func.count()).select_from(CALLBACKS)
                       .where(CALLBACKS.c.language == REQUESTS.c.language, CALLBACKS.c.arrived_at < REQUESTS.c.arrived_at,
                              or_(CALLBACKS.c.status == "dialing",
                                  and_(CALLBACKS.c.status == "pending",
                                       CALLBACKS.c.due_at <= bindparam("now", type_=_WHEN))))
                       .scalar_subquery())
    past = REQUESTS.alias("past")
    recent = (select(_seconds(dialect, past.c.arrived_at, past.c.connected_at).label("wait"))
              .where(past.c.connected_at.is_not(None), past.c.connected_at > bindparam("since", type_=_WHEN))
              .order_by(past.c.connected_at.desc()).limit(HISTORY_CALLS).subquery("recent"))
    average_wait = select(func.avg(recent.c.wait)).scalar_subquery()
    # What the reconciler looks for (line.reconcile): a wrap-up over by the clock, or a free peer.
    # With neither it would send two statements to change nothing.
    wrap_up_over = exists().where(WRAP_UP_OVER)
    story = _ranked_stories()
    columns: list[Any] = [
        REQUESTS.c.id, REQUESTS.c.language, callers_ahead.label("callers_ahead"),
        callbacks_ahead.label("callbacks_ahead"), average_wait.label("average_wait"),
        _on_shift(dialect).label("on_shift"), story.c.id.label("story_id"), story.c.title, story.c.transcript,
        story.c.audio_path, or_(wrap_up_over, FREE_PEERS.exists()).label("reconcile"),
    ]
    if dialect == "postgresql":
        # The story's turn moves on in the same statement; the SELECT sees the turn before it.
        turned = (update(REQUESTS)
                  .where(REQUESTS.c.id == bindparam("req_id"), REQUESTS.c.call_sid == bindparam("caller_call"),
                         _on_shift(dialect), exists().where(STORIES.c.language == REQUESTS.c.language, *PLAYABLE))
                  .values(hold_plays=REQUESTS.c.hold_plays + 1).returning(REQUESTS.c.id).cte("turned"))
        columns += [select(func.count()).select_from(turned).scalar_subquery().label("turned"),
                    # This statement alone (its own transaction) commits without waiting for the disk.
                    func.set_config("synchronous_commit", "off", True).label("no_flush_wait")]
    return (select(*columns)
            .select_from(REQUESTS.outerjoin(story, and_(story.c.language == REQUESTS.c.language,
                                                        story.c.turn == REQUESTS.c.hold_plays % story.c.told)))
            .where(REQUESTS.c.id == bindparam("req_id"), REQUESTS.c.call_sid == bindparam("caller_call")))


# Elsewhere than PostgreSQL the turn moves on in a statement of its own.
_NEXT_TURN = (update(REQUESTS).where(REQUESTS.c.id == bindparam("req_id"))
              .values(hold_plays=REQUESTS.c.hold_plays + 1))
