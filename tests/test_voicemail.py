"""Leaving a voicemail: consent, <Record>, confirmation; stored as pending with a job on real Redis."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from callflows import voicemails
from callflows.twilio_client import RecordingInfo
from ivr.services import services
from models import Call, CallEvent, Voicemail, utcnow
from queues.connection import TRANSCRIPTION_QUEUE
from queues.reconcile import requeue_pending_voicemails
from tests.helpers import TestCaller


def leave_message(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("4")


def post_recording(caller: TestCaller, sid: str = "RE" + "a" * 32, url: str | None = None,
                   duration: str = "42") -> None:
    url = url or caller.twiml.find("Record").get("recordingStatusCallback")
    caller.post(url, RecordingSid=sid, RecordingStatus="completed",
                RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/{sid}",
                RecordingDuration=duration, RecordingChannels="1")


def test_consent_notice_then_record_with_pound_to_finish(caller: TestCaller) -> None:
    leave_message(caller)
    assert "Your message is private." in caller.said
    assert "Press pound when you are done." in caller.said
    record = caller.twiml.find("Record")
    assert record.get("maxLength") == "180"
    assert record.get("finishOnKey") == "#"
    assert record.get("playBeep") == "true"
    assert record.get("recordingStatusCallbackEvent") == "completed"
    # the consent notice comes before the recording starts
    children = [el.tag for el in caller.twiml]
    assert children.index("Say") < children.index("Record")


def test_recording_is_stored_pending_and_its_job_enqueued(caller: TestCaller, db, redis) -> None:  # type: ignore[no-untyped-def]
    leave_message(caller)
    action = caller.twiml.find("Record").get("action")
    post_recording(caller)
    vm = db.scalar(select(Voicemail))
    assert vm.status == "pending"
    assert vm.duration_s == 42
    assert vm.language == "en"
    assert vm.job_id == f"transcribe-voicemail-{vm.id}"
    queue = Queue(TRANSCRIPTION_QUEUE, connection=redis)
    assert queue.job_ids == [vm.job_id]
    job = queue.fetch_job(vm.job_id)
    assert job.func_name == "queues.jobs.transcribe_voicemail"
    assert job.args == (vm.id,)
    caller.post(action, RecordingSid="RE" + "a" * 32, RecordingDuration="42", Digits="#")
    assert caller.said == ("Thank you. Your message is saved. Our team will check it soon. "
                           "Thank you for calling Peer Line. Take care. If you ever feel unsafe, call or text 9 8 8, "
                           "any time.")
    assert caller.twiml.find("Hangup") is not None


@pytest.mark.parametrize("duration", ["-1", "-5", "86401", "9" * 30, str(2**63), "9" * 5000, "nan", "1e9", "12.5",
                                      "", "\x00"])
def test_an_impossible_duration_keeps_the_voicemail_with_its_length_unknown(  # type: ignore[no-untyped-def]
        caller: TestCaller, db, redis, duration: str) -> None:
    leave_message(caller)
    action = caller.twiml.find("Record").get("action")
    post_recording(caller, duration=duration)
    vm = db.scalar(select(Voicemail))
    assert (vm.status, vm.duration_s, vm.job_id) == ("pending", None, f"transcribe-voicemail-{vm.id}")
    caller.post(action, RecordingSid="RE" + "a" * 32, RecordingDuration=duration, Digits="#")
    assert caller.said.startswith("Thank you. Your message is saved.")  # not the error line
    call = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    event = db.scalar(select(CallEvent).where(CallEvent.call_id == call.id, CallEvent.node == "voicemail"))
    assert (call.outcome, event.detail) == ("voicemail", None)


def test_a_lost_recording_with_an_impossible_duration_is_imported(svc, db, redis) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    listed = [RecordingInfo(sid="RE" + "b" * 32, call_sid="CA" + "b" * 32, duration_s=10**12,
                            created_at=now - timedelta(hours=1), status="completed")]
    [vm_id] = voicemails.import_missing(db, svc, listed, now)  # a duration past year 9999 no longer overflows
    vm = db.get(Voicemail, vm_id)
    assert (vm.status, vm.duration_s) == ("pending", None)


def test_repeated_callback_keeps_one_voicemail(caller: TestCaller, db, redis) -> None:  # type: ignore[no-untyped-def]
    leave_message(caller)
    url = caller.twiml.find("Record").get("recordingStatusCallback")
    post_recording(caller, url=url)
    post_recording(caller, url=url)
    assert len(db.scalars(select(Voicemail)).all()) == 1
    assert len(Queue(TRANSCRIPTION_QUEUE, connection=redis).job_ids) == 1


def test_voicemail_survives_redis_down_and_is_enqueued_later(app_config, db, redis) -> None:  # type: ignore[no-untyped-def]
    from ivr import create_app

    down = dict(app_config, redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    caller = TestCaller(create_app(down).test_client())
    leave_message(caller)
    post_recording(caller)
    assert caller.twiml.tag == "Response"  # Twilio still gets valid TwiML
    vm = db.scalar(select(Voicemail))
    assert vm.status == "pending" and vm.job_id is None
    # The reconciler (run on worker start) finds it once Redis is back.
    up_app = create_app(app_config)
    svc = services(up_app)
    assert requeue_pending_voicemails(svc) == [vm.id]
    assert Queue(TRANSCRIPTION_QUEUE, connection=redis).job_ids == [f"transcribe-voicemail-{vm.id}"]
    # and a second pass does not enqueue it twice
    assert requeue_pending_voicemails(svc) == []


def test_no_recording_offers_the_menu_again(caller: TestCaller) -> None:
    leave_message(caller)
    caller.follow()  # Twilio falls through to the Redirect when nothing was recorded
    assert caller.said.startswith("I did not hear a message.")
    caller.follow()
    assert "To talk with a peer, press 1." in caller.said


def test_spanish_caller_gets_spanish_consent(caller: TestCaller) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("4")
    assert "Su mensaje es privado." in caller.said
    assert caller.twiml.find("Say").get("language") == "es-US"


def test_the_goodbye_after_a_message_names_the_crisis_line_in_spanish(caller: TestCaller) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("4")
    caller.post(caller.twiml.find("Record").get("action"), RecordingSid="RE" + "b" * 32, RecordingDuration="12",
                Digits="#")
    assert caller.said == ("Gracias. Su mensaje está guardado. Nuestro equipo lo revisará pronto. "
                           "Gracias por llamar a Peer Line. Cuídese. "
                           "Si alguna vez se siente en peligro, llame o escriba al 9 8 8, a cualquier hora.")
    assert [verb.tag for verb in caller.twiml] == ["Say", "Say", "Hangup"]
