"""A voicemail whose recording status callback was lost (the database was down, so the webhook
answered Twilio without storing it, and Twilio does not retry) is recovered by the reconciler
from Twilio's list of recordings: the phone network (the local stand-in for Twilio's REST
API), real SQL, real Redis, real RQ workers and real Vosk decoding."""
from __future__ import annotations

import logging
import uuid
import wave
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from callflows import voicemails
from callflows.retention import PURGED
from callflows.times import aware
from ivr.services import services
from models import Call, Voicemail, utcnow
from queues.connection import DEFAULT_QUEUE, TRANSCRIPTION_QUEUE, queue
from queues.context import JobContext, job_context
from queues.periodic import TICK_PREFIX, tick
from queues.reconcile import RECORDINGS_LOOKBACK, import_lost_recordings
from queues.scheduler import transcription_job_id
from tests.factories import make_call, make_caller
from simulator.phone_network import NetworkState, create_phone_network
from tests.helpers import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller, serving
from transcription import VoskTranscriber

AUDIO = Path(__file__).parent / "fixtures" / "audio"
SPEECH = AUDIO / "speech_8k.wav"
AUTH = (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
RECORDINGS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings"


@pytest.fixture(scope="module")
def shared_transcriber(vosk_model_dir: str) -> VoskTranscriber:
    """One loaded model for the module's workers."""
    return VoskTranscriber(vosk_model_dir)


@pytest.fixture
def line(app_config: dict[str, Any], phone_network: Any, vosk_model_dir: str) -> Any:
    """The app's REST client points at the phone network; the worker has the packaged model."""
    app_config.update(twilio_api_base_url=phone_network.base_url, vosk_model_path=vosk_model_dir)
    return phone_network


def run_tick(context: JobContext, redis: Any) -> dict[str, list[int]]:
    """The periodic tick, run by a real RQ worker with the worker's job context; returns what it did."""
    job = queue(DEFAULT_QUEUE, redis).enqueue(tick, 60, job_id=TICK_PREFIX + uuid.uuid4().hex[:12])
    with job_context(context):
        SimpleWorker([queue(DEFAULT_QUEUE, redis)], connection=redis).work(burst=True)
    assert job.get_status(refresh=True) == "finished"
    done = job.return_value()
    assert isinstance(done, dict)
    return done


def transcribe(context: JobContext, redis: Any) -> None:
    """Work the transcription queue with a real RQ worker until it is empty."""
    with job_context(context):
        SimpleWorker([queue(TRANSCRIPTION_QUEUE, redis)], connection=redis).work(burst=True)


def reach_voicemail(caller: TestCaller) -> str:
    """A caller chooses English and then the voicemail; returns the recording status callback URL."""
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("4")
    record = caller.twiml.find("Record")
    assert record is not None
    return str(record.get("recordingStatusCallback"))


def seconds_of(path: Path) -> int:
    with wave.open(str(path), "rb") as fh:
        return round(fh.getnframes() / fh.getframerate())


def minutes_ago(minutes: float) -> datetime:
    """A moment in the past, to the second (Twilio's times have no fractions)."""
    return (utcnow() - timedelta(minutes=minutes)).replace(microsecond=0)


def all_voicemails(app: Any) -> list[Voicemail]:
    with services(app).sessions() as session:
        found = session.scalars(select(Voicemail).order_by(Voicemail.id)).all()
        session.expunge_all()
        return list(found)


def sent(network: Any) -> list[tuple[str, str, dict[str, list[str]], Any]]:
    return [(r.method, r.path, r.query, r.auth) for r in network.state.requests]


def listing(now: datetime) -> tuple[str, str, dict[str, list[str]], Any]:
    """The one request the reconciler sends: Twilio's list of recordings since the look-back."""
    return ("GET", f"{RECORDINGS}.json", {"DateCreated>": [(now - RECORDINGS_LOOKBACK).date().isoformat()]}, AUTH)


def test_a_recording_whose_callback_never_arrived_is_imported_once(
        line: Any, app: Any, db: Session, redis: Any, caller: TestCaller) -> None:
    reach_voicemail(caller)
    left_at = minutes_ago(10)
    sid = line.state.add_recording(SPEECH.read_bytes(), call_sid=caller.call_sid, created_at=left_at)
    # ...and its status callback never reaches the app.
    svc = services(app)
    now = utcnow()

    imported = import_lost_recordings(svc, now=now)

    [vm] = all_voicemails(app)
    assert imported == [vm.id]
    call = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    assert call is not None
    assert (vm.recording_sid, vm.call_id, vm.caller_id, vm.language, vm.duration_s, vm.status) == (
        sid, call.id, call.caller_id, "en", seconds_of(SPEECH), "pending")
    assert vm.caller_id is not None
    assert vm.recording_url == f"{line.base_url}{RECORDINGS}/{sid}"  # the form Twilio posts as RecordingUrl
    assert aware(vm.created_at) == left_at  # when the caller left it, not when it was found
    assert vm.job_id == transcription_job_id(vm.id)
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == [vm.job_id]
    assert sent(line) == [listing(now)]

    again = utcnow()
    assert import_lost_recordings(svc, now=again) == []
    assert [v.id for v in all_voicemails(app)] == [vm.id]  # nothing doubled
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == [vm.job_id]
    assert sent(line) == [listing(now), listing(again)]


def test_database_down_during_the_callback_the_voicemail_is_recovered_transcribed_and_deleted_at_twilio(
        line: Any, app: Any, app_config: dict[str, Any], redis: Any, caller: TestCaller,
        shared_transcriber: VoskTranscriber, worker_context: JobContext) -> None:
    from ivr import create_app

    worker_context.transcriber = shared_transcriber
    callback_url = reach_voicemail(caller)
    audio = SPEECH.read_bytes()
    sid = line.state.add_recording(audio, call_sid=caller.call_sid, created_at=minutes_ago(5))
    # The database goes down; Twilio posts the recording status callback. The webhook still
    # answers with TwiML (so Twilio counts it delivered and never retries), but stores nothing.
    down = create_app(dict(app_config, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    try:
        late = TestCaller(down.test_client(), number=caller.number, call_sid=caller.call_sid)
        answer = late.post(callback_url, RecordingSid=sid, RecordingStatus="completed", RecordingDuration="3",
                           RecordingUrl=f"{line.base_url}{RECORDINGS}/{sid}")
        assert answer.tag == "Response"
    finally:
        down.extensions["peerline"].engine.dispose()
    assert all_voicemails(app) == []  # acknowledged, and lost

    # The database is back: the next tick finds the recording at Twilio and stores it.
    first = utcnow()
    done = run_tick(worker_context, redis)
    [vm] = all_voicemails(app)
    assert done == {"abandoned": [], "recordings": [vm.id], "voicemails": [], "callbacks": [], "peers": [], "shift_alerts": []}
    assert (vm.recording_sid, vm.status, vm.language, vm.job_id) == (sid, "pending", "en", transcription_job_id(vm.id))

    # The worker fetches it, stores it encrypted, transcribes it, and only then deletes Twilio's copy.
    transcribe(worker_context, redis)
    [vm] = all_voicemails(app)
    assert vm.status == "transcribed" and vm.provider_deleted and vm.audio_path
    assert services(app).vault.decrypt_text(vm.transcript_encrypted)
    stored = Path(services(app).settings.instance_path) / vm.audio_path
    assert services(app).vault.decrypt(stored.read_bytes()) == audio
    assert sid not in line.state.recordings

    # Gone from Twilio's list, and stored anyway: the next tick imports nothing.
    assert run_tick(worker_context, redis)["recordings"] == []
    last = utcnow()
    assert [v.id for v in all_voicemails(app)] == [vm.id]
    days = [{"DateCreated>": [(moment - RECORDINGS_LOOKBACK).date().isoformat()]} for moment in (first, last)]
    assert [(m, p, a) for m, p, _, a in sent(line)] == [
        ("GET", f"{RECORDINGS}.json", AUTH),
        ("GET", f"{RECORDINGS}/{sid}.wav", AUTH),
        ("DELETE", f"{RECORDINGS}/{sid}.json", AUTH),
        ("GET", f"{RECORDINGS}.json", AUTH),
    ]
    for request in (line.state.requests[0], line.state.requests[3]):
        assert request.query in days  # the same date unless the test straddles midnight UTC


def test_a_recording_that_ended_less_than_the_grace_period_ago_is_left_to_its_callback(
        line: Any, app: Any, redis: Any, caller: TestCaller) -> None:
    reach_voicemail(caller)
    short = line.state.add_recording(SPEECH.read_bytes(), call_sid=caller.call_sid, duration_s=3,
                                     created_at=minutes_ago(1))
    # Created 2.5 minutes ago, but it lasted a minute: it ended 1.5 minutes ago.
    long = line.state.add_recording(SPEECH.read_bytes(), call_sid=caller.call_sid, duration_s=60,
                                    created_at=minutes_ago(2.5))
    svc = services(app)
    now = utcnow()
    assert import_lost_recordings(svc, now=now) == []
    assert all_voicemails(app) == []
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == []

    later = now + voicemails.CALLBACK_GRACE  # their callbacks never came
    imported = import_lost_recordings(svc, now=later)
    assert sorted(v.recording_sid for v in all_voicemails(app)) == sorted([short, long])
    assert sorted(imported) == [v.id for v in all_voicemails(app)]
    assert sent(line) == [listing(now), listing(later)]


def test_a_voicemail_stored_by_its_callback_is_not_imported_again(
        line: Any, app: Any, redis: Any, caller: TestCaller) -> None:
    callback_url = reach_voicemail(caller)
    sid = line.state.add_recording(SPEECH.read_bytes(), call_sid=caller.call_sid, created_at=minutes_ago(10))
    caller.post(callback_url, RecordingSid=sid, RecordingStatus="completed", RecordingDuration="3",
                RecordingUrl=f"{line.base_url}{RECORDINGS}/{sid}")
    [stored] = all_voicemails(app)

    now = utcnow()
    assert import_lost_recordings(services(app), now=now) == []
    assert [v.id for v in all_voicemails(app)] == [stored.id]
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == [transcription_job_id(stored.id)]
    assert sent(line) == [listing(now)]


def test_a_voicemail_purged_on_our_side_is_never_brought_back(
        line: Any, app: Any, db: Session, redis: Any) -> None:
    # DELETE_PROVIDER_RECORDINGS=0 keeps Twilio's copy; our retention purge tombstoned the row.
    sid = line.state.add_recording(SPEECH.read_bytes(), call_sid="CA" + "5" * 32, created_at=minutes_ago(60))
    db.add(Voicemail(recording_sid=sid, recording_url="", status=PURGED))
    db.commit()
    assert import_lost_recordings(services(app)) == []
    assert [(v.recording_sid, v.status) for v in all_voicemails(app)] == [(sid, PURGED)]
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == []


def test_a_call_the_database_never_saw_gets_an_ended_call_row(line: Any, app: Any, db: Session, redis: Any) -> None:
    call_sid = "CA" + "6" * 32
    left_at = minutes_ago(30)
    sid = line.state.add_recording(SPEECH.read_bytes(), call_sid=call_sid, duration_s=3, created_at=left_at)
    [vm_id] = import_lost_recordings(services(app))
    call = db.scalar(select(Call).where(Call.call_sid == call_sid))
    assert call is not None
    # Over, and reached voicemail: it never shows as a live call on the board.
    assert (call.status, call.outcome, call.direction, call.caller_id, call.language) == (
        "completed", "voicemail", "inbound", None, None)
    assert (aware(call.started_at), aware(call.ended_at)) == (left_at, left_at + timedelta(seconds=3))
    vm = db.get(Voicemail, vm_id)
    assert vm is not None
    assert (vm.recording_sid, vm.call_id, vm.caller_id, vm.language) == (sid, call.id, None, None)
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == [transcription_job_id(vm_id)]


def test_the_language_is_the_callers_remembered_one_when_the_call_has_none(
        line: Any, app: Any, db: Session) -> None:
    returning = make_caller(db, services(app).vault, "+15555550123", language="es")
    call = make_call(db, "CA" + "7" * 32, caller=returning)  # hung up before choosing
    line.state.add_recording(SPEECH.read_bytes(), call_sid=call.call_sid, created_at=minutes_ago(10))
    import_lost_recordings(services(app))
    [vm] = all_voicemails(app)
    assert (vm.call_id, vm.caller_id, vm.language) == (call.id, returning.id, "es")


def test_a_callback_storing_it_at_the_same_moment_leaves_one_voicemail(
        line: Any, app: Any, redis: Any, caller: TestCaller) -> None:
    callback_url = reach_voicemail(caller)
    sid = line.state.add_recording(SPEECH.read_bytes(), call_sid=caller.call_sid, created_at=minutes_ago(3))
    svc = services(app)
    recordings = svc.twilio.list_recordings(utcnow() - RECORDINGS_LOOKBACK)
    raced: list[str] = []

    with svc.sessions() as session:
        @event.listens_for(session, "before_flush")
        def callback_lands_first(flushing: Session, *_: Any) -> None:
            # Right before the import inserts its row, Twilio's (late) callback stores the same
            # recording through the webhook, on its own connection.
            if not raced and any(isinstance(obj, Voicemail) for obj in flushing.new):
                raced.append(sid)
                caller.post(callback_url, RecordingSid=sid, RecordingStatus="completed", RecordingDuration="3",
                            RecordingUrl=f"{line.base_url}{RECORDINGS}/{sid}")

        assert voicemails.import_missing(session, svc, recordings, utcnow()) == []
    assert raced == [sid]
    [vm] = all_voicemails(app)
    assert vm.recording_sid == sid
    assert queue(TRANSCRIPTION_QUEUE, redis).job_ids == [transcription_job_id(vm.id)]
    assert import_lost_recordings(svc) == []


class FailingRecordingsList:
    """WSGI middleware in front of the phone network: Twilio's recordings list answers 500."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.refused: list[str] = []  # the query strings of the requests it answered with 500

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"].endswith("/Recordings.json"):
            self.refused.append(environ["PATH_INFO"])
            start_response("500 Internal Server Error", [("Content-Type", "application/json")])
            return [b'{"code": 20500, "message": "Internal Server Error", "status": 500}']
        return self.app(environ, start_response)


@pytest.fixture
def failing_network() -> Iterator[Any]:
    """The phone network behind :class:`FailingRecordingsList`, on a real port."""
    state = NetworkState()
    gate = FailingRecordingsList(create_phone_network(state))
    with serving(gate) as base_url:
        gate.state = state  # type: ignore[attr-defined]
        gate.base_url = base_url  # type: ignore[attr-defined]
        yield gate


@pytest.mark.parametrize("rest_api", ["closed port", "answers 500"])
def test_a_failing_rest_api_imports_nothing_and_the_tick_goes_on(
        app_config: dict[str, Any], failing_network: Any, engine: Any, redis: Any, rest_api: str,
        caplog: pytest.LogCaptureFixture) -> None:
    from ivr import create_app

    base_url = "http://127.0.0.1:1" if rest_api == "closed port" else failing_network.base_url  # port 1: closed
    app = create_app(dict(app_config, twilio_api_base_url=base_url))
    failing_network.state.add_recording(SPEECH.read_bytes(), call_sid="CA" + "8" * 32, created_at=minutes_ago(10))
    svc = services(app)
    with svc.sessions() as session:  # a voicemail whose job Redis lost: the same tick must still requeue it
        lost = Voicemail(recording_sid="RE" + "9" * 32, recording_url="", status="pending", job_id="gone")
        session.add(lost)
        session.commit()

    with caplog.at_level(logging.WARNING, logger="queues.reconcile"):
        done = run_tick(JobContext(svc), redis)

    assert done == {"abandoned": [], "recordings": [], "voicemails": [lost.id], "callbacks": [], "peers": [], "shift_alerts": []}
    assert [v.recording_sid for v in all_voicemails(app)] == [lost.recording_sid]
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "queues.reconcile"] == [
        "could not list Twilio's recordings (tried again at the next tick)"]
    scheduled = ScheduledJobRegistry(queue=queue(DEFAULT_QUEUE, redis)).get_job_ids()
    assert len(scheduled) == 1 and scheduled[0].startswith(TICK_PREFIX)  # the next tick
    assert failing_network.refused == ([] if rest_api == "closed port" else [f"{RECORDINGS}.json"])
    services(app).engine.dispose()
