"""``peerline purge``: retention of voicemail content, call records and callers, with old rows
made through the webhooks and then moved into the past."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from ivr.services import services
from models import Call, CallbackRequest, CallEvent, Caller, Voicemail, utcnow
from queues.connection import DEFAULT_QUEUE
from callflows.retention import RetentionPolicy, purge
from queues.periodic import PURGE_JOB_PREFIX, scheduled_purge
from tests.helpers import TestCaller
from tests.test_research import browse_stories, leave_voicemail

AUDIO = b"RIFF....WAVEfmt fake audio of a caller's voice"
TRANSCRIPT = "please call me back, I am not safe tonight"


def _store_transcription(svc, db, sid: str, instance: Path) -> Voicemail:  # type: ignore[no-untyped-def]
    """What the transcription job leaves behind: encrypted audio file and transcript."""
    vault = svc.vault
    vm = db.scalar(select(Voicemail).where(Voicemail.recording_sid == sid))
    folder = instance / "voicemails"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{vm.id}.wav.enc").write_bytes(vault.encrypt(AUDIO))
    vm.audio_path = f"voicemails/{vm.id}.wav.enc"  # relative to the instance folder
    vm.transcript_encrypted = vault.encrypt_text(TRANSCRIPT)
    vm.words_encrypted = vault.encrypt_text('[{"word": "safe", "start": 1.0, "end": 1.4, "conf": 0.9}]')
    vm.risk_terms_encrypted = vault.encrypt_text('["not safe"]')
    vm.risk_level, vm.risk_score, vm.status = "high", 6, "transcribed"
    db.commit()
    return vm


def _age_call(db, call_sid: str, days: int) -> None:  # type: ignore[no-untyped-def]
    """Move a call, its caller, voicemails and callback requests ``days`` into the past."""
    when = utcnow() - timedelta(days=days)
    call = db.scalar(select(Call).where(Call.call_sid == call_sid))
    call.started_at = when
    call.ended_at = when + timedelta(minutes=2)
    for event in call.events:
        event.at = when
    if call.caller is not None:
        call.caller.created_at = call.caller.last_call_at = when
    for vm in db.scalars(select(Voicemail).where(Voicemail.call_id == call.id)):
        vm.created_at = when
    for cb in db.scalars(select(CallbackRequest).where(CallbackRequest.call_id == call.id)):
        cb.created_at = cb.arrived_at = when
    db.commit()


def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(model))


def test_old_voicemail_loses_audio_and_transcript_but_keeps_a_tombstone(svc, client, runner, db) -> None:  # type: ignore[no-untyped-def]
    instance = Path(svc.settings.instance_path)
    old, recent = TestCaller(client, number="+15555550111"), TestCaller(client, number="+15555550112")
    leave_voicemail(old, "RE" + "1" * 32)
    leave_voicemail(recent, "RE" + "2" * 32)
    old_vm = _store_transcription(svc, db, "RE" + "1" * 32, instance)
    recent_vm = _store_transcription(svc, db, "RE" + "2" * 32, instance)
    _age_call(db, old.call_sid, 91)
    _age_call(db, recent.call_sid, 89)
    old_file = instance / old_vm.audio_path
    recent_file = instance / recent_vm.audio_path

    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove" in dry.output
    assert "voicemails purged: 1" in dry.output
    assert "audio files deleted: 1" in dry.output
    assert "calls deleted: 0" in dry.output
    db.expire_all()
    assert old_file.exists() and db.get(Voicemail, old_vm.id).transcript_encrypted is not None

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "voicemails purged: 1" in result.output
    db.expire_all()
    tomb = db.get(Voicemail, old_vm.id)
    assert not old_file.exists()
    assert tomb.status == "purged"
    assert (tomb.audio_path, tomb.transcript_encrypted, tomb.words_encrypted, tomb.risk_terms_encrypted) == (
        None, None, None, None)
    assert tomb.recording_url == ""
    assert tomb.risk_level == "high" and tomb.language == "en"  # coded facts stay for research
    kept = db.get(Voicemail, recent_vm.id)
    assert recent_file.read_bytes() != AUDIO and recent_file.exists()
    assert svc.vault.decrypt_text(kept.transcript_encrypted) == TRANSCRIPT
    assert kept.status == "transcribed"
    # The call itself is within its own (longer) retention.
    assert db.scalar(select(Call).where(Call.call_sid == old.call_sid)) is not None

    again = runner.invoke(args=["purge"])
    assert "voicemails purged: 0" in again.output


def test_old_calls_events_callbacks_and_callers_are_deleted(svc, client, runner, db) -> None:  # type: ignore[no-untyped-def]
    instance = Path(svc.settings.instance_path)
    gone = TestCaller(client, number="+15555550121")
    browse_stories(gone)
    left_message = TestCaller(client, number="+15555550122")
    leave_voicemail(left_message, "RE" + "3" * 32)
    _store_transcription(svc, db, "RE" + "3" * 32, instance)
    wants_callback = TestCaller(client, number="+15555550123")
    browse_stories(wants_callback)
    # The request as the callback menu stores it (with the number, encrypted).
    cb_call = db.scalar(select(Call).where(Call.call_sid == wants_callback.call_sid))
    db.add(CallbackRequest(caller_id=cb_call.caller_id, call_id=cb_call.id,
                           number_encrypted=svc.vault.encrypt_text(wants_callback.number)))
    db.commit()
    stays = TestCaller(client, number="+15555550124")
    browse_stories(stays)
    for who in (gone, left_message, wants_callback):
        _age_call(db, who.call_sid, 400)
    _age_call(db, stays.call_sid, 300)
    # A caller who called long ago and again last week is still "seen within the retention".
    returning = TestCaller(client, number="+15555550125")
    browse_stories(returning)
    _age_call(db, returning.call_sid, 500)
    browse_stories(TestCaller(client, number=returning.number))
    assert _count(db, Caller) == 5 and _count(db, Call) == 6 and _count(db, CallbackRequest) == 1
    events_before = _count(db, CallEvent)

    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "calls deleted: 4" in dry.output
    assert "callers deleted: 3" in dry.output
    assert "callback requests deleted: 1" in dry.output
    db.expire_all()
    assert _count(db, Call) == 6 and _count(db, CallEvent) == events_before

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    db.expire_all()
    left = {c.call_sid for c in db.scalars(select(Call))}
    assert stays.call_sid in left and len(left) == 2
    assert {gone.call_sid, left_message.call_sid, wants_callback.call_sid, returning.call_sid}.isdisjoint(left)
    assert db.scalar(select(func.count()).select_from(CallEvent).where(
        CallEvent.call_id.not_in(select(Call.id)))) == 0
    assert _count(db, CallEvent) > 0
    vault = svc.vault
    hashes = set(db.scalars(select(Caller.number_hash)))
    assert hashes == {vault.lookup_hash(stays.number), vault.lookup_hash(returning.number)}
    assert _count(db, CallbackRequest) == 0
    # The voicemail is past both retentions: a tombstone with no link to the call or caller.
    tomb = db.scalar(select(Voicemail))
    assert (tomb.status, tomb.call_id, tomb.caller_id, tomb.transcript_encrypted) == ("purged", None, None, None)
    assert "calls deleted: 4" in result.output

    # The export no longer knows the purged calls.
    exported = runner.invoke(args=["export"])
    assert len(exported.stdout.strip().splitlines()) == 1 + 2


def test_retention_days_come_from_settings_and_options(app_config, client, db) -> None:  # type: ignore[no-untyped-def]
    from ivr import create_app

    app_config["retention_days_calls"] = 30
    app = create_app(app_config)
    caller = TestCaller(app.test_client())
    browse_stories(caller)
    _age_call(db, caller.call_sid, 31)
    runner = app.test_cli_runner()
    assert "calls deleted: 0" in runner.invoke(args=["purge", "--dry-run", "--call-days", "40"]).output
    assert "calls deleted: 1" in runner.invoke(args=["purge", "--dry-run"]).output
    refused = runner.invoke(args=["purge", "--voicemail-days", "0"])
    assert refused.exit_code != 0
    assert "voicemail_days must be at least 1" in refused.output
    services(app).engine.dispose()


def test_purge_runs_as_a_scheduled_rq_job(client, runner, db, redis, work_jobs) -> None:  # type: ignore[no-untyped-def]
    caller = TestCaller(client, number="+15555550131")
    browse_stories(caller)
    _age_call(db, caller.call_sid, 400)

    result = runner.invoke(args=["purge", "--dry-run", "--schedule"])
    assert "scheduled the daily purge" in result.output
    q = Queue(DEFAULT_QUEUE, connection=redis)
    scheduled = ScheduledJobRegistry(queue=q)
    first = [j for j in scheduled.get_job_ids() if j.startswith(PURGE_JOB_PREFIX)]
    assert len(first) == 1
    assert "already scheduled" in runner.invoke(args=["purge", "--dry-run", "--schedule"]).output

    # Run the job now in a real worker, as the scheduler would when it is due.
    scheduled.remove(first[0])
    job = q.enqueue(scheduled_purge, job_id=first[0])
    work_jobs(DEFAULT_QUEUE)
    job.refresh()
    assert job.get_status() == "finished", job.latest_result()
    assert job.return_value()["calls_deleted"] == 1
    db.expire_all()
    assert db.scalar(select(Call).where(Call.call_sid == caller.call_sid)) is None
    # It scheduled its successor (about a day later).
    nxt = [j for j in scheduled.get_job_ids() if j.startswith(PURGE_JOB_PREFIX)]
    assert len(nxt) == 1 and nxt != first
    due = scheduled.get_scheduled_time(nxt[0])
    assert timedelta(hours=23) < due - utcnow() <= timedelta(days=1)


def test_policy_is_applied_without_flask(svc, db, client) -> None:  # type: ignore[no-untyped-def]
    caller = TestCaller(client, number="+15555550141")
    browse_stories(caller)
    _age_call(db, caller.call_sid, 10)
    report = purge(svc.sessions, Path(svc.settings.instance_path), RetentionPolicy(voicemail_days=5, call_days=9))
    assert report.counts()["calls_deleted"] == 1 and report.counts()["callers_deleted"] == 1
