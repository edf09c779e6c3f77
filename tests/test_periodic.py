"""The periodic tick re-enqueues lost work and keeps exactly one next tick scheduled."""
from __future__ import annotations

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry

from models import Voicemail
from queues.connection import DEFAULT_QUEUE, TRANSCRIPTION_QUEUE
from queues.periodic import TICK_PREFIX, schedule_tick, tick
from tests.helpers import TEST_ACCOUNT_SID


@pytest.fixture
def app_config(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The tick lists Twilio's recordings: on the phone network, never on Twilio."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return app_config


def test_tick_requeues_a_voicemail_whose_job_was_lost(db, redis, phone_network, work_jobs) -> None:  # type: ignore[no-untyped-def]
    vm = Voicemail(recording_sid="RE" + "b" * 32, recording_url="https://api.twilio.com/x", status="pending",
                   job_id="transcribe-voicemail-999")  # a job id that Redis no longer knows (flushed)
    db.add(vm)
    db.commit()
    default = Queue(DEFAULT_QUEUE, connection=redis)
    default.enqueue(tick, 60, job_id=TICK_PREFIX + "now")
    work_jobs(DEFAULT_QUEUE)
    transcription = Queue(TRANSCRIPTION_QUEUE, connection=redis)
    assert transcription.job_ids == [f"transcribe-voicemail-{vm.id}"]
    scheduled = ScheduledJobRegistry(queue=default).get_job_ids()
    assert len(scheduled) == 1 and scheduled[0].startswith(TICK_PREFIX)
    # ...after looking for recordings whose status callback was lost (there are none).
    assert [(r.method, r.path) for r in phone_network.state.requests] == [
        ("GET", f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings.json")]


def test_only_one_tick_is_scheduled(redis) -> None:  # type: ignore[no-untyped-def]
    assert schedule_tick(redis, 60) is True
    assert schedule_tick(redis, 60) is False
    assert len(ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=redis)).get_job_ids()) == 1
