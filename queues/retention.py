"""Retention: purge voicemail content, call records and callers older than the configured days.

Plain SQLAlchemy and RQ, no Flask: the ``peerline purge`` command and the scheduled job
(:func:`ivr.research.scheduled_purge`) both call :func:`purge`.

What is removed, and what stays:

- Voicemails older than ``voicemail_days`` (by ``created_at``): the encrypted audio file is
  deleted, and the transcript, word timings and matched risk terms are cleared. The row is
  kept as a *tombstone* with ``status = "purged"`` (language, duration, risk level and dates
  only), so that staff pages, audit entries and notes that point at it do not dangle, and so
  that the risk level of old calls still counts in research exports until the call goes too.
- Calls older than ``call_days`` (by ``started_at``): their call events and the call rows are
  deleted; callback requests older than ``call_days`` are deleted (they hold the number).
- Callers not seen within ``call_days`` (``last_call_at``, else ``created_at``) are deleted,
  which forgets their encrypted number, keyed hash and preferences.

Rows elsewhere that point at a deleted call, callback or caller through a nullable foreign
key (voicemail tombstones, tables other parts of the line add) are detached (set to NULL)
first, found from the models' metadata, so new tables need no change here.

Exceptions: :class:`RetentionError` (a :class:`queues.QueueError`) for a bad policy or a
purge the database refused.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redis import Redis
from rq.registry import ScheduledJobRegistry
from sqlalchemy import ColumnElement, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models import Base, Call, CallbackRequest, CallEvent, Caller, Voicemail, utcnow
from queues import QueueError
from queues.connection import DEFAULT_QUEUE, queue

log = logging.getLogger(__name__)

PURGED = "purged"
BATCH = 200
PURGE_JOB = "ivr.research.scheduled_purge"
PURGE_JOB_PREFIX = "retention-purge"
PURGE_INTERVAL = timedelta(days=1)


class RetentionError(QueueError):
    """The retention policy is unusable, or the database refused the purge."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days voicemail content and call records are kept."""

    voicemail_days: int = 90
    call_days: int = 365

    def __post_init__(self) -> None:
        # Zero or negative days would purge everything at once: never what anyone meant.
        for name in ("voicemail_days", "call_days"):
            if getattr(self, name) < 1:
                raise RetentionError(f"{name} must be at least 1 (got {getattr(self, name)})")


@dataclass
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove)."""

    dry_run: bool
    voicemail_cutoff: datetime
    call_cutoff: datetime
    voicemails_purged: int = 0
    audio_files_deleted: int = 0
    call_events_deleted: int = 0
    calls_deleted: int = 0
    callback_requests_deleted: int = 0
    callers_deleted: int = 0

    def counts(self) -> dict[str, int]:
        """The counts alone, by name."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, int) and not isinstance(v, bool)}

    def lines(self) -> list[str]:
        """Human-readable summary, one count per line."""
        verb = "would remove" if self.dry_run else "removed"
        head = [
            f"voicemail content before {self.voicemail_cutoff:%Y-%m-%d %H:%M} UTC, "
            f"calls and callers before {self.call_cutoff:%Y-%m-%d %H:%M} UTC ({verb}):"
        ]
        return head + [f"  {name.replace('_', ' ')}: {count}" for name, count in self.counts().items()]


def resolve_audio_path(stored: str, instance_path: Path) -> Path:
    """The file a voicemail's ``audio_path`` names (relative paths are in the instance folder)."""
    path = Path(stored)
    return path if path.is_absolute() else Path(instance_path) / path


def purge(sessions: sessionmaker[Session], instance_path: Path, policy: RetentionPolicy,
          now: datetime | None = None, dry_run: bool = False) -> PurgeReport:
    """Apply the retention policy (or only count, with ``dry_run``); idempotent."""
    now = now or utcnow()
    report = PurgeReport(dry_run=dry_run, voicemail_cutoff=now - timedelta(days=policy.voicemail_days),
                         call_cutoff=now - timedelta(days=policy.call_days))
    _purge_voicemails(sessions, Path(instance_path), report)
    _purge_calls(sessions, report)
    if not dry_run:
        log.info("retention purge: %s", report.counts())
    return report


def _purge_voicemails(sessions: sessionmaker[Session], instance_path: Path, report: PurgeReport) -> None:
    due = (Voicemail.created_at < report.voicemail_cutoff, Voicemail.status != PURGED)
    with sessions() as session:
        if report.dry_run:
            for audio_path in session.scalars(select(Voicemail.audio_path).where(*due)):
                report.voicemails_purged += 1
                if audio_path and resolve_audio_path(audio_path, instance_path).is_file():
                    report.audio_files_deleted += 1
            return
        while True:
            batch = session.scalars(select(Voicemail).where(*due).order_by(Voicemail.id).limit(BATCH)).all()
            if not batch:
                return
            for vm in batch:
                # The file goes first: if the commit then fails, the next run finds the row
                # again and only clears it; the other order could leave an orphaned file.
                if vm.audio_path and _delete_file(resolve_audio_path(vm.audio_path, instance_path)):
                    report.audio_files_deleted += 1
                vm.audio_path = None
                vm.transcript_encrypted = None
                vm.words_encrypted = None
                vm.risk_terms_encrypted = None
                vm.failure_reason = None
                vm.recording_url = ""
                vm.status = PURGED
                report.voicemails_purged += 1
            session.commit()


def _delete_file(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _purge_calls(sessions: sessionmaker[Session], report: PurgeReport) -> None:
    cutoff = report.call_cutoff
    old_calls = select(Call.id).where(Call.started_at < cutoff)
    old_callbacks = select(CallbackRequest.id).where(CallbackRequest.created_at < cutoff)
    stale_callers = select(Caller.id).where(func.coalesce(Caller.last_call_at, Caller.created_at) < cutoff)
    with sessions() as session:
        if report.dry_run:
            report.call_events_deleted = _count(session, CallEvent.call_id.in_(old_calls), CallEvent)
            report.calls_deleted = _count(session, Call.started_at < cutoff, Call)
            report.callback_requests_deleted = _count(session, CallbackRequest.created_at < cutoff, CallbackRequest)
            report.callers_deleted = _count(session, Caller.id.in_(stale_callers), Caller)
            return
        try:
            report.call_events_deleted = session.execute(
                delete(CallEvent).where(CallEvent.call_id.in_(old_calls))).rowcount
            _detach(session, CallbackRequest.__table__, old_callbacks)  # type: ignore[arg-type]
            report.callback_requests_deleted = session.execute(
                delete(CallbackRequest).where(CallbackRequest.created_at < cutoff)).rowcount
            _detach(session, Call.__table__, old_calls)  # type: ignore[arg-type]
            report.calls_deleted = session.execute(delete(Call).where(Call.started_at < cutoff)).rowcount
            _detach(session, Caller.__table__, stale_callers)  # type: ignore[arg-type]
            report.callers_deleted = session.execute(
                delete(Caller).where(func.coalesce(Caller.last_call_at, Caller.created_at) < cutoff)).rowcount
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise RetentionError(f"the database refused the purge (a row still needs an old record): {exc.orig}"
                                 ) from exc


def _count(session: Session, condition: ColumnElement[bool], model: type[Base]) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(condition)) or 0)


def _detach(session: Session, target: Table, ids: object) -> None:
    """Set every nullable foreign key that points at the doomed rows of ``target`` to NULL."""
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            column = fk.parent
            if fk.column.table is not target or not column.nullable or table is target:
                continue
            session.execute(update(table).where(column.in_(ids)).values({column.name: None}))  # type: ignore[arg-type]


# Scheduling -----------------------------------------------------------------------------


def purge_is_scheduled(connection: Redis) -> bool:
    """True when a retention purge job is already waiting (scheduled or queued)."""
    q = queue(DEFAULT_QUEUE, connection)
    waiting = [*ScheduledJobRegistry(queue=q).get_job_ids(), *q.get_job_ids()]
    return any(job_id.startswith(PURGE_JOB_PREFIX) for job_id in waiting)


def schedule_purge(connection: Redis, delay: timedelta = PURGE_INTERVAL) -> str | None:
    """Schedule the next retention purge after ``delay``; None when one is already waiting."""
    if purge_is_scheduled(connection):
        return None
    # A fresh id per run: the running job schedules its successor, and reusing the running
    # job's own id would let the worker's bookkeeping for this run overwrite the next one.
    job_id = f"{PURGE_JOB_PREFIX}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    job = queue(DEFAULT_QUEUE, connection).enqueue_in(
        delay, PURGE_JOB, job_id=job_id, job_timeout=3600, result_ttl=7 * 86400, failure_ttl=30 * 86400)
    return job.id
