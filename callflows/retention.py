"""Retention: purge voicemail content, call records and callers older than the configured days.

Plain SQLAlchemy: the ``peerline purge`` command and the daily job
(:func:`queues.periodic.scheduled_purge`) both call :func:`purge`.

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

Exceptions: :class:`~callflows.errors.RetentionError` for a bad policy or a purge the
database refused.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callflows.errors import RetentionError
from callflows.settings import Settings
from callflows.sql import rowcount
from callflows.storage import stored_path
from models import Base, Call, CallbackRequest, CallEvent, Caller, Voicemail, utcnow

log = logging.getLogger(__name__)

PURGED = "purged"
BATCH = 200


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
                if audio_path and stored_path(instance_path, audio_path).is_file():
                    report.audio_files_deleted += 1
            return
        while True:
            batch = session.scalars(select(Voicemail).where(*due).order_by(Voicemail.id).limit(BATCH)).all()
            if not batch:
                return
            for vm in batch:
                # The file goes first: if the commit then fails, the next run finds the row
                # again and only clears it; the other order could leave an orphaned file.
                if vm.audio_path and _delete_file(stored_path(instance_path, vm.audio_path)):
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
            report.call_events_deleted = rowcount(session.execute(
                delete(CallEvent).where(CallEvent.call_id.in_(old_calls))))
            _detach(session, CallbackRequest.__table__, old_callbacks)  # type: ignore[arg-type]
            report.callback_requests_deleted = rowcount(session.execute(
                delete(CallbackRequest).where(CallbackRequest.created_at < cutoff)))
            _detach(session, Call.__table__, old_calls)  # type: ignore[arg-type]
            report.calls_deleted = rowcount(session.execute(delete(Call).where(Call.started_at < cutoff)))
            _detach(session, Caller.__table__, stale_callers)  # type: ignore[arg-type]
            report.callers_deleted = rowcount(session.execute(
                delete(Caller).where(func.coalesce(Caller.last_call_at, Caller.created_at) < cutoff)))
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


def policy_from(settings: Settings) -> RetentionPolicy:
    """The retention policy the settings configure (RETENTION_DAYS_VOICEMAIL, RETENTION_DAYS_CALLS)."""
    return RetentionPolicy(settings.retention_days_voicemail, settings.retention_days_calls)
