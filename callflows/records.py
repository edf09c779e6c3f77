"""Post-call records: what a peer notes about each call, as codes that count.

The fields are data (``callflows/config/call_record.yaml``): a reason for the call, an
outcome (keyed 1-5 on the peer's phone during wrap-up, in the file's order), whether a
referral was given, a risk level and the minutes. A record holds codes and numbers only,
never free text, so it goes into the metrics and the research export as it is. One record
per call and peer (:class:`models.CallRecord`); the phone and the page complete the same row.

A callback has no call of its own in ``calls``: its record is kept against the call on which
the caller asked for it (``CallbackRequest.call_id``), so the metrics and the research export
count it with that call, and its minutes come from the callback's connection to its end.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.errors import FlowValidationError
from callflows.times import aware
from models import Call, CallbackRequest, CallRecord, utcnow
from models.tables import CallbackAttempt, PeerRequest

CONFIG = Path(__file__).parent / "config" / "call_record.yaml"
MAX_MINUTES = 600
KEYPAD_OUTCOMES = 5  # keys 1-5 on the phone


@dataclass(frozen=True)
class Choice:
    """One configured value: the stored code and the label staff see."""

    code: str
    label: str


@dataclass(frozen=True)
class RecordFields:
    """The configured lists of a post-call record."""

    reasons: tuple[Choice, ...]
    outcomes: tuple[Choice, ...]
    risks: tuple[Choice, ...]

    def outcome_for_key(self, key: str) -> str | None:
        """The outcome code keyed on the phone (1 = the first outcome...)."""
        if len(key) == 1 and key.isdigit() and 1 <= int(key) <= min(KEYPAD_OUTCOMES, len(self.outcomes)):
            return self.outcomes[int(key) - 1].code
        return None

    def label(self, field_name: str, code: str | None) -> str:
        """The label of a stored code (the code itself when the list no longer has it)."""
        for choice in getattr(self, field_name):
            if choice.code == code:
                return str(choice.label)
        return code or "—"


def _choices(raw: Mapping[str, Any], name: str, problems: list[str]) -> tuple[Choice, ...]:
    items = raw.get(name) or []
    out = []
    for item in items:
        if not isinstance(item, Mapping) or not item.get("code") or not item.get("label"):
            problems.append(f"{name}: every entry needs a code and a label ({item!r})")
            continue
        out.append(Choice(str(item["code"])[:40], str(item["label"])))
    if not out:
        problems.append(f"{name}: the list is empty")
    if len({c.code for c in out}) != len(out):
        problems.append(f"{name}: duplicate codes")
    return tuple(out)


def load_fields(path: Path = CONFIG) -> RecordFields:
    """Read and check the configured record fields (FlowValidationError lists every problem)."""
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    problems: list[str] = []
    fields = RecordFields(_choices(raw, "reasons", problems), _choices(raw, "outcomes", problems),
                          _choices(raw, "risks", problems))
    if problems:
        raise FlowValidationError(str(path), problems)
    return fields


@lru_cache(maxsize=1)
def fields() -> RecordFields:
    """The configured record fields of this checkout (read once; the file is part of the code)."""
    return load_fields()


def record_of(session: Session, call_id: int, peer_id: int) -> CallRecord | None:
    """This peer's record of this call, if any."""
    return session.scalar(select(CallRecord).where(CallRecord.call_id == call_id, CallRecord.peer_id == peer_id))


def save(session: Session, call_id: int, peer_id: int, source: str, *, reason: str | None = None,
         outcome: str | None = None, referral: bool | None = None, risk: str | None = None,
         minutes: int | None = None) -> CallRecord:
    """Create or complete a peer's record of a call; values outside the configured lists are refused (ValueError)."""
    config = fields()
    for name, code, choices in (("reason", reason, config.reasons), ("outcome", outcome, config.outcomes),
                                ("risk", risk, config.risks)):
        if code is not None and code not in {c.code for c in choices}:
            raise ValueError(f"{code!r} is not a configured {name}")
    if minutes is not None and not 0 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be between 0 and {MAX_MINUTES}")
    row = record_of(session, call_id, peer_id)
    if row is None:
        row = CallRecord(call_id=call_id, peer_id=peer_id, source=source)
        session.add(row)
    # Only what was given changes: the phone keys outcome and referral, the page the rest.
    for name, value in (("reason", reason), ("outcome", outcome), ("referral", referral), ("risk", risk),
                        ("minutes", minutes)):
        if value is not None:
            setattr(row, name, value)
    row.updated_at = utcnow()
    if row.minutes is None:
        row.minutes = talk_minutes(session, call_id, peer_id)
    session.commit()
    return row


def talk_minutes(session: Session, call_id: int, peer_id: int) -> int | None:
    """Minutes the peer and the caller talked on this call (from the bridge to its end), when known."""
    req = session.scalar(select(PeerRequest).where(PeerRequest.call_id == call_id, PeerRequest.peer_id == peer_id,
                                                   PeerRequest.connected_at.is_not(None))
                         .order_by(PeerRequest.id.desc()).limit(1))
    start = aware(req.connected_at) if req is not None else None
    end = aware(req.ended_at) if req is not None else None
    if req is None:
        # A callback: connected when the caller answered (the request's update then), ended with the attempt.
        found = session.execute(
            select(CallbackRequest.updated_at, CallbackAttempt.ended_at)
            .join(CallbackAttempt, CallbackAttempt.callback_id == CallbackRequest.id)
            .where(CallbackRequest.call_id == call_id, CallbackAttempt.peer_id == peer_id,
                   CallbackAttempt.outcome == "connected")
            .order_by(CallbackAttempt.id.desc()).limit(1)).first()
        if found is not None:
            start, end = aware(found[0]), aware(found[1])
    if start is None or end is None:
        return None
    return max(1, round((end - start).total_seconds() / 60))


def call_of_request(session: Session, request_id: int) -> int | None:
    """The caller's call that a peer request belongs to (the record is kept against it)."""
    req = session.get(PeerRequest, request_id)
    return req.call_id if req is not None else None


def call_of_callback(session: Session, attempt: CallbackAttempt) -> int | None:
    """The call a connected callback's record is kept against (the one it was asked on); None before it connected."""
    if attempt.peer_id is None or (attempt.stage != "connected" and attempt.outcome != "connected"):
        return None
    return session.scalar(select(CallbackRequest.call_id).where(CallbackRequest.id == attempt.callback_id))


def callbacks_of_peer(session: Session, peer_id: int, since: datetime | None = None) -> list[tuple[int, datetime]]:
    """The calls whose callback this peer connected (since a moment), with when the callback started, newest first."""
    query = (select(CallbackRequest.call_id, CallbackAttempt.started_at)
             .join(CallbackAttempt, CallbackAttempt.callback_id == CallbackRequest.id)
             .join(Call, Call.id == CallbackRequest.call_id)
             .where(CallbackAttempt.peer_id == peer_id,
                    (CallbackAttempt.stage == "connected") | (CallbackAttempt.outcome == "connected")))
    if since is not None:
        query = query.where(CallbackAttempt.started_at > since)
    return [(call_id, started) for call_id, started in
            session.execute(query.order_by(CallbackAttempt.started_at.desc())) if call_id is not None]


def calls_of_peer(session: Session, peer_id: int) -> set[int]:
    """Every call this peer took, live or by calling back, whose record is theirs to complete."""
    live = {cid for cid in session.scalars(select(PeerRequest.call_id).where(
        PeerRequest.peer_id == peer_id, PeerRequest.call_id.is_not(None))) if cid is not None}
    return live | {cid for cid, _started in callbacks_of_peer(session, peer_id)}


def unrecorded_calls(session: Session, peer_id: int, since: datetime, limit: int = 10) -> list[tuple[int, datetime, str]]:
    """This peer's calls since ``since`` whose record is incomplete: (call id, when, "call" or "callback"), newest first."""
    # The keypad in wrap-up gives only the outcome and the referral: a record is complete once the
    # page has added the reason and the risk level, so until then the call stays on the peer's list.
    recorded = select(CallRecord.call_id).where(CallRecord.peer_id == peer_id, CallRecord.reason.is_not(None),
                                                CallRecord.risk.is_not(None))
    live = session.execute(select(Call.id, Call.started_at).join(PeerRequest, PeerRequest.call_id == Call.id)
                           .where(PeerRequest.peer_id == peer_id, PeerRequest.connected_at > since,
                                  Call.id.not_in(recorded))
                           .order_by(Call.started_at.desc()).limit(limit)).all()
    # The callbacks it connected, recorded against the call on which they were asked for.
    done = set(session.scalars(recorded)) | {cid for cid, _at in live}
    callbacks = [(cid, started) for cid, started in callbacks_of_peer(session, peer_id, since) if cid not in done]
    return [(cid, started, "call") for cid, started in live] + \
        [(cid, started, "callback") for cid, started in callbacks[:limit]]
