"""The number's status callback moves a call forward only: a final status stays final."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from callflows.calls import call_status_changed
from models import Call, utcnow
from tests.factories import make_call
from tests.helpers import TestCaller


def test_a_call_goes_through_twilios_stages_in_order(db) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    for status in ("queued", "initiated", "ringing", "in-progress"):
        call = call_status_changed(db, "CA_new", status, None, now)
        assert (call.status, call.ended_at) == (status, None)
    call = call_status_changed(db, "CA_new", "completed", 95, now)
    assert (call.status, call.duration_s, call.outcome) == ("completed", 95, "hung_up")


@pytest.mark.parametrize("late", ["in-progress", "answered", "ringing", "queued", "busy", "no-answer", "completed"])
def test_a_late_status_never_reopens_an_ended_call(db, late: str) -> None:  # type: ignore[no-untyped-def]
    ended = utcnow()
    call_status_changed(db, "CA_done", "in-progress", None, ended - timedelta(minutes=2))
    call_status_changed(db, "CA_done", "completed", 95, ended)
    call = call_status_changed(db, "CA_done", late, 3, ended + timedelta(minutes=1))
    assert (call.status, call.duration_s, call.outcome) == ("completed", 95, "hung_up")
    assert call.ended_at.replace(tzinfo=None) == ended.replace(tzinfo=None)


def test_an_earlier_stage_or_an_unknown_status_changes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    make_call(db, "CA_live", status="in-progress")
    for status in ("ringing", "queued", "bogus", "In-Progress", "x" * 300, "", None):
        call = call_status_changed(db, "CA_live", status, None, utcnow())
        assert (call.status, call.ended_at) == ("in-progress", None)


def test_the_status_webhook_keeps_an_ended_call_ended(caller: TestCaller, db) -> None:  # type: ignore[no-untyped-def]
    caller.call()
    caller.post("/voice/status", CallStatus="completed", CallDuration="95")
    caller.post("/voice/status", CallStatus="in-progress")  # delivered late
    caller.post("/voice/status", CallStatus="ringing\x00" + "x" * 300)  # no status Twilio sends
    call = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    assert (call.status, call.duration_s, call.outcome) == ("completed", 95, "hung_up")
    assert len(caller.twiml) == 0
