"""The periodic tick re-enqueues lost work and keeps exactly one next tick scheduled; running workers
put back the tick and the purge when Redis lost them, and a replacement worker runs the scheduler."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from models import Peer, Voicemail, utcnow
from queues.connection import ALL_QUEUES, DEFAULT_QUEUE, TRANSCRIPTION_QUEUE
from queues.jobs import dispatch_line
from queues.periodic import PURGE_JOB_PREFIX, TICK_PREFIX, schedule_tick, tick
from tests.factories import make_peer
from tests.helpers import TEST_ACCOUNT_SID
from tests.workers import SpawnedWorker, wait_for, worker_env


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


def test_tick_frees_a_peer_whose_wrap_up_job_was_lost(svc, db, redis, work_jobs) -> None:  # type: ignore[no-untyped-def]
    ended = utcnow() - timedelta(seconds=svc.settings.peer_wrapup_seconds + 5)
    peer = make_peer(db, svc.vault, phone="+15555550602", status="wrap_up", status_changed_at=ended)
    assert ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=redis)).get_job_ids() == []  # flushed
    Queue(DEFAULT_QUEUE, connection=redis).enqueue(tick, 60, job_id=TICK_PREFIX + "now")
    work_jobs(DEFAULT_QUEUE)
    db.expire_all()
    assert db.get(Peer, peer.id).status == "available"


# Jobs whose worker died ----------------------------------------------------------------------


def start_then_die(redis, q: Queue) -> str:  # type: ignore[no-untyped-def]
    """A worker takes the next job of ``q`` and starts it (RQ's own bookkeeping), then dies
    without a word; its heartbeats stop and its hash expires. Returns the job's id."""
    worker = SimpleWorker([q], connection=redis)
    worker.register_birth()
    found = Queue.dequeue_any([q], None, connection=redis)
    assert found is not None
    job = found[0]
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    redis.delete(worker.key)
    assert job.get_status(refresh=True) == "started"
    return job.id


def test_the_rules_jobs_whose_worker_died_run_again_at_the_next_tick(svc, db, redis, work_jobs) -> None:  # type: ignore[no-untyped-def]
    started = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    peer = make_peer(db, svc.vault, phone="+15555550601", status="wrap_up", status_changed_at=started)
    svc.jobs.wrap_up_ends(peer.id, started.timestamp(), timedelta(seconds=1))
    svc.jobs.dispatch_soon(timedelta(seconds=1))
    default = Queue(DEFAULT_QUEUE, connection=redis)
    scheduled = ScheduledJobRegistry(queue=default)
    for job_id in scheduled.get_job_ids():
        scheduled.requeue(job_id)  # their time came
    dead = [start_then_die(redis, default), start_then_die(redis, default)]
    default.enqueue(tick, 60, job_id=TICK_PREFIX + "now")
    work_jobs(DEFAULT_QUEUE)
    db.expire_all()
    assert db.get(Peer, peer.id).status == "available"  # the wrap-up end ran again
    for job_id in dead:  # once more each, through the job's own Retry
        job = Job.fetch(job_id, connection=redis)
        assert (job.get_status(), job.retries_left) == ("finished", 2)


# The worker keeps the upkeep going -----------------------------------------------------------


def waiting(redis, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Ids of the jobs with this prefix waiting in the default queue's schedule."""
    registry = ScheduledJobRegistry(queue=Queue(DEFAULT_QUEUE, connection=redis))
    return [job_id for job_id in registry.get_job_ids() if job_id.startswith(prefix)]


def scheduler_pids(redis) -> set[int]:  # type: ignore[no-untyped-def]
    """The processes of the RQ schedulers holding the locks of the line's queues (0: a queue nobody holds)."""
    return {Queue(name, connection=redis).scheduler_pid or 0 for name in ALL_QUEUES}


def test_a_running_worker_puts_back_the_tick_and_the_purge_after_a_flush(redis, engine, app_config, phone_network,  # type: ignore[no-untyped-def]
                                                                         tmp_path) -> None:
    worker = SpawnedWorker(worker_env(app_config, phone_network.base_url), tmp_path / "worker.log")
    try:
        # Started: the tick and the purge scheduled, the first maintenance round over (it waits for work).
        wait_for(lambda: waiting(redis, TICK_PREFIX) and waiting(redis, PURGE_JOB_PREFIX), 60,
                 "the worker to schedule the tick and the purge", worker)
        wait_for(lambda: [w.get_state() for w in Worker.all(connection=redis)] == ["idle"], 60,
                 "the worker to wait for work", worker)
        redis.flushdb()  # with the worker running: every job and every registration is gone
        wait_for(lambda: waiting(redis, TICK_PREFIX) and waiting(redis, PURGE_JOB_PREFIX), 90,
                 "the tick and the purge to be scheduled again", worker)
        # Put back by the worker's maintenance round (the flushed tick could not put itself back).
        wait_for(lambda: "missing (Redis flushed or restarted?), scheduled again:" in worker.output(), 30,
                 "the worker to say it scheduled them again", worker)
        assert worker.process.poll() is None  # the same worker: nothing was restarted
        assert len(waiting(redis, TICK_PREFIX)) == len(waiting(redis, PURGE_JOB_PREFIX)) == 1
        wait_for(lambda: Worker.count(connection=redis) == 1, 30, "the worker to be listed again", worker)
    finally:
        worker.stop()


def test_a_worker_that_replaces_a_killed_one_runs_the_scheduler_at_once(redis, engine, app_config, phone_network,  # type: ignore[no-untyped-def]
                                                                         tmp_path) -> None:
    """`peerline worker` runs RQ's scheduler (``with_scheduler=True``); one that replaces a worker
    killed with its scheduler takes the scheduler over, without waiting a minute for the dead
    scheduler's lock to expire or ten for RQ's maintenance."""
    env = worker_env(app_config, phone_network.base_url)
    first = SpawnedWorker(env, tmp_path / "first-worker.log")
    try:
        wait_for(lambda: 0 not in scheduler_pids(redis), 60, "the first worker's scheduler", first)
        (dead,) = scheduler_pids(redis)
        assert dead in first.session()
    finally:
        first.kill()  # the worker and its scheduler, at once
    assert scheduler_pids(redis) == {dead}  # its locks outlive it
    second = SpawnedWorker(env, tmp_path / "second-worker.log")
    try:
        wait_for(lambda: scheduler_pids(redis) <= set(second.session()), 30, "the new worker's scheduler", second)
        # It schedules: a job due in a second runs.
        job = Queue(DEFAULT_QUEUE, connection=redis).enqueue_in(timedelta(seconds=1), dispatch_line)
        wait_for(lambda: job.get_status(refresh=True) == "finished", 30, "the scheduled job to run", second)
    finally:
        second.stop()
