"""How the line is doing: service metrics computed from the events the line stores.

Nothing here is counted as it happens: every figure is read back from the rows the calls
leave (calls and their events, peer requests and their ringing legs, callback requests and
attempts, voicemails, each peer status change, survey answers), so a figure can be
recomputed for any period, and a test can build a history with known answers.

Definitions (the README repeats them in one line each):

- *offered*: inbound calls that started in the period, less the peers' own calls (a peer
  signing on by phone is not a caller).
- *answered by a peer*: offered calls with a peer request a peer accepted.
- *abandoned while ringing / on hold*: the caller hung up while waiting for a peer, with
  peers' phones ringing for them (a leg closed as ``caller_gone``) or with none ringing.
- *abandoned in menus*: the caller hung up before reaching any service (a peer, a story,
  a callback, a message or the crisis line).
- *speed of answer*: from asking for a peer to a peer accepting; *service level*: answered
  within ``SERVICE_LEVEL_SECONDS`` out of answered plus abandoned while waiting.
- *post-call records*: the peers' records (``callflows.records``) of the offered calls, counted
  by outcome and by reason code (``not_given`` when the peer left that field empty).
- *handle time*: connected to the end of the conversation; *after-call work*: the peer's
  wrap-up, from the status history; *occupancy*: time on a call or wrapping up out of time
  signed on.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows import records, survey
from callflows.times import as_utc, aware
from models import Call, CallbackRequest, CallRecord, CallEvent, Caller, Peer, PeerStatusChange, SurveyAnswer, Voicemail
from models.escalation import Handoff
from models.tables import CallbackAttempt, PeerRequest, RingLeg

WAIT_BUCKETS = ((10, "under 10 s"), (30, "10-30 s"), (60, "30-60 s"), (120, "1-2 min"), (300, "2-5 min"),
                (600, "5-10 min"))
WAIT_OVER = "10 min or more"
# The triage's levels (transcription.triage, queues.transcribe): "mentioned" is a message with only
# negated risk words, "unknown" one the demo speech model could not judge; "untriaged" is a message
# not (yet) triaged at all. Each is counted apart, so a judged message is never reported as untriaged.
RISK_LEVELS = ("high", "medium", "low", "mentioned", "none", "unknown", "untriaged")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Statuses in which a peer is signed on; busy (ringing or talking) and wrap_up are the work.
ON_SHIFT = ("available", "busy", "wrap_up", "break")
WORKING = ("busy", "wrap_up")
# Events that show a caller reached a service (not left in the menus).
SERVICE_NODES = ("story", "crisis", "voicemail", "callback_pending")
SURVEY_QUESTIONS = survey.QUESTIONS
NOT_GIVEN = "not_given"  # a post-call record without that field
# What an inbound call was for, as the cost note of docs/operations.md counts its minutes.
CALL_TYPES = {"peer": "talked with a peer", "crisis": "pressed 9", "callback": "asked for a callback",
              "message": "left a message", "other": "stories, menus or hung up"}


@dataclass(frozen=True)
class Period:
    """Calls that started on or after ``since`` and before ``until`` (aware UTC)."""

    since: datetime
    until: datetime

    def holds(self, moment: datetime | None) -> bool:
        """True when ``moment`` falls in the period."""
        at = aware(moment)
        return at is not None and self.since <= at < self.until


@dataclass
class Breakdown:
    """Counts for one hour, day or language."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0


@dataclass
class Metrics:
    """Every figure for one period; times in seconds (None when there is nothing to average)."""

    since: str
    until: str
    timezone: str
    service_level_seconds: int
    calls_offered: int = 0
    answered_by_peer: int = 0
    abandoned_in_menus: int = 0
    abandoned_while_ringing: int = 0
    abandoned_on_hold: int = 0
    peer_requests: int = 0
    speed_of_answer_avg: float | None = None
    speed_of_answer_p90: float | None = None
    service_level: float | None = None
    longest_wait: float | None = None
    handle_time_avg: float | None = None
    after_call_work_avg: float | None = None
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    callbacks_missed: int = 0
    time_to_callback_avg: float | None = None
    voicemails: dict[str, int] = field(default_factory=dict)
    time_to_review_avg: dict[str, float | None] = field(default_factory=dict)
    crisis_key_presses: int = 0
    crisis_key_calls: int = 0
    handoffs: int = 0
    handoffs_answered: int = 0
    occupancy: float | None = None
    survey: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Post-call records of the offered calls, by outcome and by reason code (every configured code, then NOT_GIVEN).
    call_records: int = 0
    records_by_outcome: dict[str, int] = field(default_factory=dict)
    records_by_reason: dict[str, int] = field(default_factory=dict)
    by_hour: dict[int, Breakdown] = field(default_factory=dict)
    by_day: dict[str, Breakdown] = field(default_factory=dict)
    by_language: dict[str, Breakdown] = field(default_factory=dict)
    # Offered calls by local weekday (0 = Monday) and hour: the heat map.
    hour_of_week: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    # Peer requests, and the talk time and count of answered ones, by weekday and hour of arrival: staffing.
    requests_by_hour_of_week: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    talk_by_hour_of_week: list[list[float]] = field(default_factory=lambda: [[0.0] * 24 for _ in range(7)])
    talks_by_hour_of_week: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    wait_distribution: dict[str, dict[str, int]] = field(default_factory=dict)
    # Minutes as a provider bills them, each leg rounded up to the minute (the cost note of
    # docs/operations.md): the inbound legs by call type, how much of them callers spent waiting
    # for a peer, the peers' legs of answered calls and the two outbound legs of callbacks.
    minutes_inbound: dict[str, dict[str, int]] = field(
        default_factory=lambda: {kind: {"calls": 0, "minutes": 0} for kind in CALL_TYPES})
    minutes_waiting: int = 0
    minutes_peer_legs: int = 0
    minutes_callback_peer_legs: int = 0
    minutes_callback_caller_legs: int = 0

    @property
    def abandoned(self) -> int:
        """Every abandoned call, wherever the caller hung up."""
        return self.abandoned_in_menus + self.abandoned_while_ringing + self.abandoned_on_hold

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (``peerline metrics --json``)."""
        data = asdict(self)
        data["abandoned"] = self.abandoned
        data["by_hour"] = {str(h): asdict(b) for h, b in sorted(self.by_hour.items())}
        return data


def period_for_days(since: date | None, until: date | None, zone: ZoneInfo, now: datetime,
                    default_days: int = 7) -> Period:
    """Whole local days from ``since`` to ``until`` inclusive (the last ``default_days`` days by default)."""
    today = now.astimezone(zone).date()
    last = until or today
    first = since or (last - timedelta(days=default_days - 1))
    if first > last:
        first, last = last, first
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone).astimezone(timezone.utc)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone).astimezone(timezone.utc)
    return Period(start, end)


def percentile(values: list[float], pct: float) -> float | None:
    """The ``pct`` percentile by the nearest-rank method (90 -> the value 90 % of values are at or below)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _average(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    a, b = aware(later), aware(earlier)
    return None if a is None or b is None else (a - b).total_seconds()


def wait_bucket(seconds: float) -> str:
    """The label of the wait-time bucket ``seconds`` falls in."""
    for upper, label in WAIT_BUCKETS:
        if seconds < upper:
            return label
    return WAIT_OVER


def count_handoffs(session: Session, period: Period) -> tuple[int, int]:
    """Hand-offs a peer asked for in the period (the crisis line or a supervisor brought into the room), and how many were answered."""
    rows = session.execute(select(Handoff.answered_at).where(
        Handoff.created_at >= period.since, Handoff.created_at < period.until)).all()
    return len(rows), sum(1 for (answered,) in rows if answered is not None)


def compute(session: Session, period: Period, zone: ZoneInfo, service_level_seconds: int = 30,
            now: datetime | None = None) -> Metrics:
    """Every metric for ``period`` from the stored rows; hours and days are local to ``zone``."""
    now = now or datetime.now(timezone.utc)
    m = Metrics(since=period.since.isoformat(), until=period.until.isoformat(), timezone=str(zone.key),
                service_level_seconds=service_level_seconds)
    peer_hashes = set(session.scalars(select(Peer.phone_hash)))
    rows = session.execute(
        select(Call, Caller.number_hash).outerjoin(Caller, Call.caller_id == Caller.id)
        .where(Call.direction == "inbound", Call.started_at >= period.since, Call.started_at < period.until)
        .order_by(Call.started_at, Call.id)
    ).all()
    calls = [call for call, number_hash in rows if number_hash is None or number_hash not in peer_hashes]
    sids = [c.call_sid for c in calls]
    requests: dict[str, list[PeerRequest]] = defaultdict(list)
    gone_legs: set[int] = set()
    events: dict[int, list[CallEvent]] = defaultdict(list)
    reached_callback: set[str] = set()
    reached_voicemail: set[int] = set()
    if sids:
        for req in session.scalars(select(PeerRequest).where(PeerRequest.call_sid.in_(sids)).order_by(PeerRequest.id)):
            requests[req.call_sid].append(req)
        req_ids = [r.id for rs in requests.values() for r in rs]
        if req_ids:
            gone_legs = set(session.scalars(select(RingLeg.request_id).where(
                RingLeg.request_id.in_(req_ids), RingLeg.status == "caller_gone")))
        for event in session.scalars(select(CallEvent).where(CallEvent.call_id.in_([c.id for c in calls]))
                                     .order_by(CallEvent.id)):
            events[event.call_id].append(event)
        reached_callback = {sid for sid in session.scalars(select(CallbackRequest.call_sid).where(
            CallbackRequest.call_sid.in_(sids), CallbackRequest.status != "draft")) if sid is not None}
        reached_voicemail = {cid for cid in session.scalars(select(Voicemail.call_id).where(
            Voicemail.call_id.in_([c.id for c in calls]))) if cid is not None}

    waits_answered: list[float] = []
    waits_all: list[tuple[float, bool]] = []
    handle: list[float] = []
    within = 0
    for call in calls:
        local = aware(call.started_at).astimezone(zone)  # type: ignore[union-attr]
        hour = m.by_hour.setdefault(local.hour, Breakdown())
        day = m.by_day.setdefault(local.date().isoformat(), Breakdown())
        lang = m.by_language.setdefault(call.language or "unknown", Breakdown())
        m.hour_of_week[local.weekday()][local.hour] += 1
        cells = (hour, day, lang)
        for cell in cells:
            cell.offered += 1
        m.calls_offered += 1
        reqs = requests.get(call.call_sid, [])
        outcome = _classify(call, reqs, gone_legs, events.get(call.id, []), reached_callback, reached_voicemail)
        if call.ended_at is not None:
            kind = m.minutes_inbound[_call_type(call, outcome, events.get(call.id, []), reached_callback,
                                                reached_voicemail)]
            kind["calls"] += 1
            kind["minutes"] += billed_minutes(call.duration_s if call.duration_s is not None
                                              else _seconds(call.ended_at, call.started_at))
        if outcome == "answered":
            m.answered_by_peer += 1
        elif outcome == "ringing":
            m.abandoned_while_ringing += 1
        elif outcome == "hold":
            m.abandoned_on_hold += 1
        elif outcome == "menus":
            m.abandoned_in_menus += 1
        for cell in cells:
            if outcome == "answered":
                cell.answered += 1
            elif outcome in ("ringing", "hold", "menus"):
                cell.abandoned += 1
        for req in reqs:
            m.peer_requests += 1
            arrived = aware(req.arrived_at).astimezone(zone)  # type: ignore[union-attr]
            m.requests_by_hour_of_week[arrived.weekday()][arrived.hour] += 1
            if req.connected_at is not None:
                wait = _seconds(req.connected_at, req.arrived_at) or 0.0
                waits_answered.append(wait)
                waits_all.append((wait, True))
                within += wait <= service_level_seconds
                talk = _seconds(req.ended_at, req.connected_at)
                m.minutes_peer_legs += billed_minutes(talk)
                if talk is not None:
                    handle.append(talk)
                    m.talk_by_hour_of_week[arrived.weekday()][arrived.hour] += talk
                    m.talks_by_hour_of_week[arrived.weekday()][arrived.hour] += 1
            elif req.ended_at is not None:  # left for a callback, a message or the crisis line
                waits_all.append((_seconds(req.ended_at, req.arrived_at) or 0.0, False))
    gave_up = sum(1 for rs in requests.values() for r in rs if r.status == "abandoned" and r.connected_at is None)
    m.speed_of_answer_avg = _average(waits_answered)
    m.speed_of_answer_p90 = percentile(waits_answered, 90)
    m.service_level = within / (len(waits_answered) + gave_up) if (waits_answered or gave_up) else None
    m.longest_wait = max((w for w, _ in waits_all), default=None)
    m.minutes_waiting = billed_minutes(sum(w for w, _ in waits_all))
    m.handle_time_avg = _average(handle)
    m.wait_distribution = {label: {"answered": 0, "not_answered": 0}
                           for label in [b for _, b in WAIT_BUCKETS] + [WAIT_OVER]}
    for wait, answered in waits_all:
        m.wait_distribution[wait_bucket(wait)]["answered" if answered else "not_answered"] += 1

    _callbacks(session, period, m)
    _callback_minutes(session, period, m)
    _voicemails(session, period, m)
    presses = session.scalars(select(CallEvent.call_id).where(
        CallEvent.node == "crisis", CallEvent.at >= period.since, CallEvent.at < period.until)).all()
    m.crisis_key_presses = len(presses)
    m.crisis_key_calls = len(set(presses))
    m.handoffs, m.handoffs_answered = count_handoffs(session, period)
    m.after_call_work_avg, m.occupancy = _peer_time(session, period, min(period.until, now))
    _survey(session, period, m)
    _records(session, [c.id for c in calls], m)
    return m


def _records(session: Session, call_ids: list[int], m: Metrics) -> None:
    config = records.fields()
    rows = session.scalars(select(CallRecord).where(CallRecord.call_id.in_(call_ids))).all() if call_ids else []
    m.call_records = len(rows)
    for name, choices, counts in (("outcome", config.outcomes, m.records_by_outcome),
                                  ("reason", config.reasons, m.records_by_reason)):
        found = Counter(getattr(r, name) or NOT_GIVEN for r in rows)
        counts.update({c.code: found.pop(c.code, 0) for c in choices})
        # A code no longer in the list still counts, under its own name.
        counts.update(sorted(found.items()))
        counts.setdefault(NOT_GIVEN, 0)


def _classify(call: Call, reqs: list[PeerRequest], gone_legs: set[int], events: list[CallEvent],
              reached_callback: set[str], reached_voicemail: set[int]) -> str:
    """What became of one offered call: answered, ringing / hold / menus (abandoned there), or served."""
    if any(r.connected_at is not None for r in reqs):
        return "answered"
    if reqs:
        last = reqs[-1]
        # A caller who pressed 9 while waiting went to the crisis line (older rows say abandoned): served.
        went_to_crisis = any(e.node == "crisis" and as_utc(e.at) >= as_utc(last.arrived_at) for e in events)
        if last.status == "abandoned" and not went_to_crisis:
            return "ringing" if last.id in gone_legs else "hold"
        return "served"  # left the wait for a callback, a message or the crisis line
    if call.call_sid in reached_callback or call.id in reached_voicemail:
        return "served"
    if any(e.node in SERVICE_NODES for e in events) or call.outcome not in (None, "hung_up"):
        return "served"
    return "menus" if call.ended_at is not None else "in_progress"


def billed_minutes(seconds: float | None) -> int:
    """A leg's minutes as providers bill them: each started minute counts; none for a leg that never connected."""
    return math.ceil(seconds / 60) if seconds and seconds > 0 else 0


def _call_type(call: Call, outcome: str, events: list[CallEvent], reached_callback: set[str],
               reached_voicemail: set[int]) -> str:
    """What an inbound call was for, one of CALL_TYPES: the first that applies in that order."""
    if outcome == "answered":
        return "peer"
    if any(e.node == "crisis" for e in events):
        return "crisis"
    if call.call_sid in reached_callback:
        return "callback"
    if call.id in reached_voicemail:
        return "message"
    return "other"


def _callback_minutes(session: Session, period: Period, m: Metrics) -> None:
    """The callbacks' outbound legs: the peer's from dialling until the attempt ended (once the peer
    answered, which is when the caller is dialled), the caller's from joining the room; a caller leg
    a machine or fax answered costs its first minute."""
    for attempt in session.scalars(select(CallbackAttempt).where(
            CallbackAttempt.started_at >= period.since, CallbackAttempt.started_at < period.until,
            CallbackAttempt.ended_at.is_not(None))):
        if attempt.caller_call_sid is not None:
            m.minutes_callback_peer_legs += billed_minutes(_seconds(attempt.ended_at, attempt.started_at))
        if attempt.caller_joined_at is not None:
            m.minutes_callback_caller_legs += billed_minutes(_seconds(attempt.ended_at, attempt.caller_joined_at))
        elif attempt.answered_by not in (None, "human"):
            m.minutes_callback_caller_legs += 1


def _callbacks(session: Session, period: Period, m: Metrics) -> None:
    rows = session.scalars(select(CallbackRequest).where(
        CallbackRequest.created_at >= period.since, CallbackRequest.created_at < period.until,
        CallbackRequest.status.in_(("pending", "dialing", "completed", "missed")))).all()
    m.callbacks_requested = len(rows)
    m.callbacks_completed = sum(1 for r in rows if r.status == "completed")
    m.callbacks_missed = sum(1 for r in rows if r.status == "missed")
    done = [r for r in rows if r.status == "completed"]
    # The callback reached the caller when they joined the peer's room on the attempt that completed
    # it; the request's own last change is the end of that call (used only for rows without a join).
    joined: dict[int, datetime] = {}
    if done:
        for callback_id, at in session.execute(
                select(CallbackAttempt.callback_id, CallbackAttempt.caller_joined_at)
                .where(CallbackAttempt.callback_id.in_([r.id for r in done]),
                       CallbackAttempt.caller_joined_at.is_not(None))
                .order_by(CallbackAttempt.caller_joined_at)):
            if at is not None:
                joined.setdefault(callback_id, at)
    m.time_to_callback_avg = _average(
        s for r in done if (s := _seconds(joined.get(r.id, r.updated_at), r.created_at)) is not None)


def _voicemails(session: Session, period: Period, m: Metrics) -> None:
    counts: Counter[str] = Counter()
    review: dict[str, list[float]] = defaultdict(list)
    for vm in session.scalars(select(Voicemail).where(Voicemail.created_at >= period.since,
                                                      Voicemail.created_at < period.until)):
        level = vm.risk_level if vm.risk_level in RISK_LEVELS else "untriaged"
        counts[level] += 1
        seconds = _seconds(vm.reviewed_at, vm.created_at)
        if seconds is not None:
            review[level].append(seconds)
    m.voicemails = {level: counts[level] for level in RISK_LEVELS}
    m.time_to_review_avg = {level: _average(review[level]) for level in RISK_LEVELS}


def status_intervals(changes: list[PeerStatusChange], since: datetime, end: datetime,
                     created_at: datetime | None = None) -> list[tuple[str, float]]:
    """One peer's time in each status inside [since, end), from their change history (seconds per stretch).

    The status before the period is the last change before it. With no earlier change, a
    first change to busy means the peer was available until then (only available peers are
    claimed) from when the peer was added; any other start is unknown and not counted.
    """
    state: str | None = None
    start = since
    before = [c for c in changes if (aware(c.at) or since) < since]
    inside = [c for c in changes if since <= (aware(c.at) or since) < end]
    if before:
        state = before[-1].status
    elif inside and inside[0].status == "busy":
        state = "available"
        start = max(since, aware(created_at) or since)
    out: list[tuple[str, float]] = []
    for change in inside:
        at = aware(change.at) or since
        if state is not None and at > start:
            out.append((state, (at - start).total_seconds()))
        state, start = change.status, max(start, at)
    if state is not None and end > start:
        out.append((state, (end - start).total_seconds()))
    return out


def _peer_time(session: Session, period: Period, end: datetime) -> tuple[float | None, float | None]:
    """Average wrap-up (after-call work) begun in the period, and occupancy over the period."""
    changes: dict[int, list[PeerStatusChange]] = defaultdict(list)
    for change in session.scalars(select(PeerStatusChange).where(PeerStatusChange.at < period.until)
                                  .order_by(PeerStatusChange.at, PeerStatusChange.id)):
        changes[change.peer_id].append(change)
    created: dict[int, datetime] = {}
    ever = set(session.scalars(select(PeerStatusChange.peer_id).distinct()))
    for peer_id, added, status, changed in session.execute(
            select(Peer.id, Peer.created_at, Peer.status, Peer.status_changed_at)):
        created[peer_id] = added
        # Every change is kept from the first migration on: a peer with none has been in their
        # status since it last changed (a peer seeded available and never called, say).
        if peer_id not in ever and (aware(changed) or period.until) < period.until:
            changes[peer_id] = [PeerStatusChange(peer_id=peer_id, status=status, at=changed)]
    wrap: list[float] = []
    working = on_shift = 0.0
    for peer_id, history in changes.items():
        for i, change in enumerate(history):
            if change.status == "wrap_up" and period.holds(change.at) and i + 1 < len(history):
                wrap.append(_seconds(history[i + 1].at, change.at) or 0.0)
        for status, seconds in status_intervals(history, period.since, end, created.get(peer_id)):
            if status in ON_SHIFT:
                on_shift += seconds
            if status in WORKING:
                working += seconds
    return _average(wrap), (working / on_shift if on_shift else None)


def _survey(session: Session, period: Period, m: Metrics) -> None:
    answers = session.scalars(select(SurveyAnswer).where(SurveyAnswer.at >= period.since,
                                                         SurveyAnswer.at < period.until)).all()
    for question in SURVEY_QUESTIONS:
        values = [a.answer for a in answers if a.question == question]
        m.survey[question] = {"count": len(values), "average": _average(values),
                              "distribution": {str(v): values.count(v) for v in range(1, 6)}}


def fmt_seconds(value: float | None) -> str:
    """Seconds as people read them: "45 s", "3.5 min" ("-" for nothing measured)."""
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"


def fmt_share(value: float | None) -> str:
    """A fraction as a whole percent ("-" for nothing measured)."""
    return "-" if value is None else f"{value * 100:.0f} %"


def summary_lines(m: Metrics) -> list[str]:
    """The headline figures as lines of text (``peerline metrics``)."""
    lines = [
        f"period: {m.since} to {m.until} ({m.timezone})",
        f"calls offered: {m.calls_offered}",
        f"answered by a peer: {m.answered_by_peer}",
        f"abandoned: in menus {m.abandoned_in_menus}, while ringing {m.abandoned_while_ringing}, "
        f"on hold {m.abandoned_on_hold}",
        f"speed of answer: average {fmt_seconds(m.speed_of_answer_avg)}, "
        f"90th percentile {fmt_seconds(m.speed_of_answer_p90)}",
        f"service level (answered within {m.service_level_seconds} s): {fmt_share(m.service_level)}",
        f"longest wait: {fmt_seconds(m.longest_wait)}",
        f"handle time: average {fmt_seconds(m.handle_time_avg)}; "
        f"after-call work: average {fmt_seconds(m.after_call_work_avg)}",
        f"callbacks: requested {m.callbacks_requested}, completed {m.callbacks_completed}, "
        f"missed {m.callbacks_missed}; time to callback {fmt_seconds(m.time_to_callback_avg)}",
        "voicemails: " + ", ".join(f"{level} {m.voicemails.get(level, 0)}" for level in RISK_LEVELS),
        "time to first review: " + ", ".join(f"{level} {fmt_seconds(m.time_to_review_avg.get(level))}"
                                             for level in RISK_LEVELS),
        f"crisis key: {m.crisis_key_presses} presses on {m.crisis_key_calls} calls; hand-offs: {m.handoffs} ({m.handoffs_answered} answered)",
        f"peer occupancy: {fmt_share(m.occupancy)}",
        "inbound minutes (billed per started minute): " + ", ".join(
            f"{label} {m.minutes_inbound[kind]['minutes']} on {m.minutes_inbound[kind]['calls']} calls"
            for kind, label in CALL_TYPES.items()) + f"; of them waiting for a peer: {m.minutes_waiting}",
        f"outbound minutes: peers' legs {m.minutes_peer_legs}; callbacks: peers' legs "
        f"{m.minutes_callback_peer_legs}, callers' legs {m.minutes_callback_caller_legs}",
    ]
    for question, data in m.survey.items():
        avg = "-" if data["average"] is None else f"{data['average']:.1f}"
        lines.append(f"survey {question}: {data['count']} answers, average {avg} of 5")
    lines.append(f"post-call records: {m.call_records}; by outcome: "
                 + ", ".join(f"{code} {n}" for code, n in m.records_by_outcome.items() if n)
                 + "; by reason: " + ", ".join(f"{code} {n}" for code, n in m.records_by_reason.items() if n))
    for name, items in (("by hour", [(f"{hour:02d}:00", b) for hour, b in sorted(m.by_hour.items())]),
                        ("by day", sorted(m.by_day.items())), ("by language", sorted(m.by_language.items()))):
        lines.append(f"{name}: " + ", ".join(f"{key} {b.offered} offered / {b.answered} answered / "
                                              f"{b.abandoned} abandoned" for key, b in items))
    return lines


# Exportable figures: small-cell suppression ---------------------------------------------

SMALL_CELL = 11  # no exported count under 11 (the usual public-health small-cell rule), and no average of fewer
SUPPRESSED = "<11"


def suppress(count: int) -> str:
    """A count as exported: "0" and 11 or more as they are, anything from 1 to 10 as "<11"."""
    return str(count) if count == 0 or count >= SMALL_CELL else SUPPRESSED


def suppress_group(counts: list[int]) -> list[str]:
    """Counts that add up to a published total: when one is hidden, hide the next smallest too (so no subtraction reveals it)."""
    shown = [suppress(c) for c in counts]
    hidden = [i for i, text in enumerate(shown) if text == SUPPRESSED]
    if len(hidden) == 1:
        others = sorted((c, i) for i, c in enumerate(counts) if i not in hidden and c > 0)
        if others:
            shown[others[0][1]] = SUPPRESSED
    return shown


def _avg_cell(value: float | None, n: int, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if n >= SMALL_CELL else SUPPRESSED


def export_cells(m: Metrics) -> list[tuple[str, str, str]]:
    """The report as (section, item, value) rows with small cells suppressed: what a CSV download may hold."""
    rows: list[tuple[str, str, str]] = [("period", "since", m.since), ("period", "until", m.until),
                                        ("period", "timezone", m.timezone)]
    answered = m.answered_by_peer
    parts = suppress_group([m.answered_by_peer, m.abandoned_in_menus, m.abandoned_while_ringing, m.abandoned_on_hold,
                            m.calls_offered - m.answered_by_peer - m.abandoned])
    rows += [("calls", "offered", suppress(m.calls_offered)), ("calls", "answered_by_peer", parts[0]),
             ("calls", "abandoned_in_menus", parts[1]), ("calls", "abandoned_while_ringing", parts[2]),
             ("calls", "abandoned_on_hold", parts[3]), ("calls", "other_services", parts[4]),
             ("answer", "speed_of_answer_avg_s", _avg_cell(m.speed_of_answer_avg, answered)),
             ("answer", "speed_of_answer_p90_s", _avg_cell(m.speed_of_answer_p90, answered)),
             ("answer", f"service_level_{m.service_level_seconds}s_pct",
              _avg_cell(None if m.service_level is None else m.service_level * 100, answered)),
             ("answer", "handle_time_avg_s", _avg_cell(m.handle_time_avg, answered)),
             ("answer", "occupancy_pct", "" if m.occupancy is None else f"{m.occupancy * 100:.0f}")]
    cb = suppress_group([m.callbacks_completed, m.callbacks_missed,
                         m.callbacks_requested - m.callbacks_completed - m.callbacks_missed])
    rows += [("callbacks", "requested", suppress(m.callbacks_requested)), ("callbacks", "completed", cb[0]),
             ("callbacks", "missed", cb[1]),
             ("callbacks", "time_to_callback_avg_s", _avg_cell(m.time_to_callback_avg, m.callbacks_completed))]
    for level, shown in zip(RISK_LEVELS, suppress_group([m.voicemails.get(r, 0) for r in RISK_LEVELS])):
        rows.append(("voicemails", level, shown))
    rows += [("safety", "crisis_key_calls", suppress(m.crisis_key_calls)), ("safety", "handoffs", suppress(m.handoffs)),
             ("safety", "handoffs_answered", suppress(m.handoffs_answered))]
    for question, data in m.survey.items():
        rows.append(("survey", f"{question}_answers", suppress(data["count"])))
        rows.append(("survey", f"{question}_average", _avg_cell(data["average"], data["count"], 1)))
    rows.append(("records", "call_records", suppress(m.call_records)))
    for section, counts in (("record_outcome", m.records_by_outcome), ("record_reason", m.records_by_reason)):
        # The codes add up to the records: a second cell is hidden with a small one, as for the calls.
        for code, shown in zip(counts, suppress_group(list(counts.values()))):
            rows.append((section, code, shown))
    breakdowns: tuple[tuple[str, list[tuple[str, Breakdown]]], ...] = (
        ("by_hour", [(f"{hour:02d}", b) for hour, b in sorted(m.by_hour.items())]),
        ("by_day", sorted(m.by_day.items())), ("by_language", sorted(m.by_language.items())))
    for section, items in breakdowns:
        # The hours (days, languages) add up to the offered and answered calls shown above: a second
        # cell is hidden with a lone small one, so no subtraction from the total reveals it.
        offered_cells = suppress_group([b.offered for _, b in items])
        answered_cells = suppress_group([b.answered for _, b in items])
        for (key, _), shown_offered, shown_answered in zip(items, offered_cells, answered_cells):
            rows += [(section, f"{key}_offered", shown_offered), (section, f"{key}_answered", shown_answered)]
    return rows
