"""Running the line day to day: open hours and closures, caller plans, limits and blocks, shifts
(supervisors), a peer's shifts and call records, and the call records list.

Callers appear only by pseudonym (the research export's), never by number. Every change, and
every view of a caller's plan, is in the audit log.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from callflows import callers, hours, records, shifts
from callflows.times import aware
from ivr.dashboard.core import audit, bp, peer_required, supervisor_required
from ivr.dashboard.labels import LANGUAGES
from ivr.db import get_session
from ivr.services import services
from models import Call, Caller, CallerBlock, CallRecord, Holiday, Peer, Shift, ShiftTemplate, utcnow
from models.errors import DecryptError

# How long after a call the accepting peer still sees the caller's plan (their wrap-up).
WEEKDAY_CHOICES = list(enumerate(hours.WEEKDAYS))


def _local(moment: datetime | None) -> str:
    """A stored time in the line's zone, as staff read it."""
    value = aware(moment)
    if value is None:
        return "—"
    return value.astimezone(services().settings.zone).strftime("%a %b %d, %H:%M")


def _from_local_input(text: str) -> datetime | None:
    """An ``<input type=datetime-local>`` value in the line's zone, as UTC (None when empty or unreadable)."""
    try:
        naive = datetime.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None
    return naive.replace(tzinfo=services().settings.zone).astimezone(timezone.utc) if naive else None


@bp.app_context_processor
def _operations_globals() -> dict[str, Any]:
    return {"local_time": _local, "my_operations": _my_operations}


# Hours ---------------------------------------------------------------------------------------


@bp.get("/hours")
@supervisor_required
def line_hours() -> str:
    """Whether the line is open, when it opens, the weekly hours, holidays and the manual closure."""
    db = get_session()
    settings = services().settings
    now = utcnow()
    schedule = hours.load_schedule(db, settings.zone, now)
    periods = "\n".join(f"{p.label().split()[0][:3].lower()}={hours.hhmm(p.opens)}-{hours.hhmm(p.closes)}"
                        for p in schedule.periods)
    holidays = db.scalars(select(Holiday).order_by(Holiday.day)).all()
    return render_template("staff/hours.html", summary=hours.describe(db, settings, now),
                           closure=hours.open_closure(db, now), periods=periods, holidays=holidays,
                           is_open=schedule.is_open(now), zone=settings.line_timezone)


@bp.post("/hours/close")
@supervisor_required
def close_line() -> ResponseReturnValue:
    """Close the line now, with a reason (and an optional time it reopens by itself)."""
    reason = request.form.get("reason", "").strip()
    until_text = request.form.get("until", "").strip()
    until = _from_local_input(until_text)
    now = utcnow()
    if not reason:
        flash("Give a reason for closing the line.", "error")
    elif until_text and until is None:  # never close until further notice when a time was meant
        flash("Cannot read the reopening time: give a date and time, like 2026-12-26 09:00.", "error")
    elif until is not None and until <= now:
        flash("The reopening time must be in the future.", "error")
    else:
        hours.close_now(get_session(), reason, current_user.id, now, until)
        flash("The line is closed. Callers hear when it opens and can still leave a message, ask for a callback, "
              "hear stories or reach the crisis line.", "success")
    return redirect(url_for("staff.line_hours"))


@bp.post("/hours/open")
@supervisor_required
def open_line() -> ResponseReturnValue:
    """End the manual closure now."""
    if hours.reopen(get_session(), current_user.id, utcnow()):
        flash("The manual closure is over.", "success")
    else:
        flash("The line was not closed by hand.", "error")
    return redirect(url_for("staff.line_hours"))


@bp.post("/hours/weekly")
@supervisor_required
def set_weekly_hours() -> ResponseReturnValue:
    """Replace the weekly hours from lines like ``mon=09:00-17:00`` (empty: open around the clock)."""
    periods: list[hours.Period] = []
    days = {name[:3].lower(): i for i, name in enumerate(hours.WEEKDAYS)}
    for line_text in request.form.get("periods", "").splitlines():
        if not line_text.strip():
            continue
        day, _eq, span = line_text.partition("=")
        start, _dash, end = span.partition("-")
        try:
            periods.append(hours.Period(days[day.strip().lower()[:3]], hours.parse_hhmm(start),
                                        hours.parse_hhmm(end)))
        except (KeyError, ValueError):
            flash(f"Cannot read “{line_text.strip()}”: write one period a line, like mon=09:00-17:00.", "error")
            return redirect(url_for("staff.line_hours"))
    hours.set_hours(get_session(), periods, current_user.id)
    flash("The weekly hours are saved.", "success")
    return redirect(url_for("staff.line_hours"))


@bp.post("/hours/holidays")
@supervisor_required
def add_holiday() -> ResponseReturnValue:
    """Close the line all day on a date."""
    try:
        day = date.fromisoformat(request.form.get("day", ""))
    except ValueError:
        flash("Choose the holiday's date.", "error")
        return redirect(url_for("staff.line_hours"))
    hours.add_holiday(get_session(), day, request.form.get("name", "Holiday"), current_user.id)
    flash(f"The line is closed all day on {day.isoformat()}.", "success")
    return redirect(url_for("staff.line_hours"))


@bp.post("/hours/holidays/<int:holiday_id>/delete")
@supervisor_required
def remove_holiday(holiday_id: int) -> ResponseReturnValue:
    """Remove a holiday."""
    if not hours.remove_holiday(get_session(), holiday_id, current_user.id):
        abort(404)
    flash("Holiday removed.", "success")
    return redirect(url_for("staff.line_hours"))


# Callers: plans, limits, blocks ---------------------------------------------------------------


@bp.get("/callers")
@supervisor_required
def caller_list() -> str:
    """Recent callers by pseudonym, with their calls today, plan, limit and block (a pseudonym finds one)."""
    db = get_session()
    svc = services()
    now = utcnow()
    wanted = request.args.get("pseudonym", "").strip()
    if wanted:
        found = callers.caller_by_pseudonym(db, svc.vault, wanted)
        if found is not None:
            return redirect(url_for("staff.caller_page", caller_id=found.id))  # type: ignore[return-value]
        flash("No caller has that pseudonym.", "error")
    rows = []
    for caller in db.scalars(select(Caller).order_by(Caller.last_call_at.desc().nulls_last(), Caller.id.desc())
                             .limit(50)):
        plan = callers.plan_of(db, caller.id)
        rows.append({"id": caller.id, "pseudonym": callers.pseudonym(svc.vault, caller.id),
                     "last_call": _local(caller.last_call_at),
                     "today": callers.calls_today(db, svc.settings, caller.id, now),
                     "plan": plan is not None and plan.plan_encrypted is not None,
                     "limit": plan.daily_limit if plan is not None else None,
                     "blocked": callers.active_block(db, caller.id, now) is not None})
    return render_template("staff/callers.html", rows=rows, wanted=wanted)


@bp.route("/callers/<int:caller_id>", methods=["GET"])
@supervisor_required
def caller_page(caller_id: int) -> str:
    """One caller by pseudonym: the plan (viewing it is audit-logged), the limit, blocks."""
    db = get_session()
    svc = services()
    caller = db.get(Caller, caller_id)
    if caller is None:
        abort(404)
    now = utcnow()
    plan = callers.plan_of(db, caller.id)
    try:
        text = callers.plan_text(svc.vault, plan)
    except DecryptError:
        text = None
        flash("This plan cannot be decrypted with the current key.", "error")
    if text is not None:
        audit("view_caller_plan", "caller", caller.id)
        db.commit()
    blocks = db.scalars(select(CallerBlock).where(CallerBlock.caller_id == caller.id)
                        .order_by(CallerBlock.created_at.desc())).all()
    block_rows = []
    for b in blocks:
        try:
            reason = svc.vault.decrypt_text(b.reason_encrypted)
        except DecryptError:
            reason = "(cannot be decrypted)"
        live = b.lifted_at is None and (aware(b.expires_at) or now) > now
        block_rows.append({"id": b.id, "reason": reason, "until": _local(b.expires_at), "live": live,
                           "lifted": _local(b.lifted_at) if b.lifted_at else None})
    return render_template("staff/caller.html", caller=caller, pseudonym=callers.pseudonym(svc.vault, caller.id),
                           plan_text=text or "", limit=plan.daily_limit if plan else None,
                           today=callers.calls_today(db, svc.settings, caller.id, now), blocks=block_rows)


@bp.post("/callers/<int:caller_id>/plan")
@supervisor_required
def save_caller_plan(caller_id: int) -> ResponseReturnValue:
    """Set the caller's plan text and daily limit (empty: none)."""
    db = get_session()
    if db.get(Caller, caller_id) is None:
        abort(404)
    raw_limit = request.form.get("daily_limit", "").strip()
    try:
        limit = int(raw_limit) if raw_limit else None
        callers.set_plan(db, services().vault, caller_id, request.form.get("plan", ""), limit, current_user.id,
                         utcnow())
    except ValueError:
        flash("The daily limit is a whole number of calls, 1 or more (or empty for no limit).", "error")
        return redirect(url_for("staff.caller_page", caller_id=caller_id))
    flash("The caller's plan is saved.", "success")
    return redirect(url_for("staff.caller_page", caller_id=caller_id))


@bp.post("/callers/<int:caller_id>/block")
@supervisor_required
def block_caller(caller_id: int) -> ResponseReturnValue:
    """Block a caller for abuse, with a reason, for some days (they hear a message; 9 still works)."""
    db = get_session()
    if db.get(Caller, caller_id) is None:
        abort(404)
    now = utcnow()
    try:
        days = int(request.form.get("days", ""))
        if not 1 <= days <= 365:
            raise ValueError("days")
        callers.block(db, services().vault, caller_id, request.form.get("reason", ""), now + timedelta(days=days),
                      current_user.id, now)
    except ValueError:
        flash("A block needs the abuse it is for, and 1 to 365 days.", "error")
        return redirect(url_for("staff.caller_page", caller_id=caller_id))
    flash("The caller is blocked from reaching peers. They hear a message and keep the crisis line.", "success")
    return redirect(url_for("staff.caller_page", caller_id=caller_id))


@bp.post("/callers/blocks/<int:block_id>/lift")
@supervisor_required
def lift_block(block_id: int) -> ResponseReturnValue:
    """Lift a block early."""
    db = get_session()
    row = db.get(CallerBlock, block_id)
    if row is None or not callers.lift_block(db, block_id, current_user.id, utcnow()):
        abort(404)
    flash("The block is lifted.", "success")
    return redirect(url_for("staff.caller_page", caller_id=row.caller_id))


# Shifts (supervisors) ----------------------------------------------------------------------------


def _peer_names() -> dict[int, str]:
    return {p.id: p.display_name for p in get_session().scalars(select(Peer))}


@bp.get("/shifts")
@supervisor_required
def shift_calendar() -> str:
    """Who is on call now, templates, rules, and the next two weeks of shifts with their gaps."""
    db = get_session()
    svc = services()
    now = utcnow()
    shifts.ensure_shifts(db, svc.settings.zone, now)
    templates = db.scalars(select(ShiftTemplate).where(ShiftTemplate.active.is_(True))
                           .order_by(ShiftTemplate.weekday, ShiftTemplate.start_minute)).all()
    views = shifts.upcoming(db, now)
    on_call = shifts.on_call_now(db, now)
    return render_template("staff/shifts.html", templates=templates,
                           label=lambda t: shifts.template_label(t, LANGUAGES), views=views,
                           gaps=sum(1 for v in views if v.missing), names=_peer_names(), rules=shifts.rules(db),
                           weekdays=WEEKDAY_CHOICES, languages=sorted(svc.flows), zone=svc.settings.line_timezone,
                           on_call=on_call, rung=next((o for o in on_call if o.supervisor), None),
                           supervisor_number_set=bool(svc.settings.supervisor_number))


@bp.post("/shifts/templates")
@supervisor_required
def add_shift_template() -> ResponseReturnValue:
    """Add a weekly recurring shift."""
    form = request.form
    languages = [lang for lang in form.getlist("languages") if lang in services().flows]
    try:
        shifts.add_template(get_session(), int(form.get("weekday", "")), hours.parse_hhmm(form.get("start", "")),
                            hours.parse_hhmm(form.get("end", "")), int(form.get("peers_needed", "1") or 1),
                            languages, form.get("on_call") == "yes", current_user.id)
    except ValueError:
        flash("A shift needs a weekday, a start and an end (HH:MM), at least one peer and one language.", "error")
        return redirect(url_for("staff.shift_calendar"))
    flash("The recurring shift is added.", "success")
    return redirect(url_for("staff.shift_calendar"))


@bp.post("/shifts/templates/<int:template_id>/retire")
@supervisor_required
def retire_shift_template(template_id: int) -> ResponseReturnValue:
    """Stop a recurring shift."""
    if not shifts.retire_template(get_session(), template_id, current_user.id, utcnow()):
        abort(404)
    flash("The recurring shift is stopped; shifts peers signed up for stay.", "success")
    return redirect(url_for("staff.shift_calendar"))


@bp.post("/shifts/rules")
@supervisor_required
def save_shift_rules() -> ResponseReturnValue:
    """Change the rules for signing up and dropping."""
    try:
        shifts.set_rules(get_session(), int(request.form.get("max_shifts_per_week", "")),
                         int(request.form.get("drop_notice_hours", "")), current_user.id, utcnow())
    except ValueError:
        flash("Give at least 1 shift a week and a notice of 0 hours or more.", "error")
        return redirect(url_for("staff.shift_calendar"))
    flash("The shift rules are saved.", "success")
    return redirect(url_for("staff.shift_calendar"))


# A peer's shifts -------------------------------------------------------------------------------


def _me() -> Peer:
    peer = get_session().get(Peer, current_user.peer_id)
    if peer is None:
        abort(403)
    return peer


@bp.get("/me/shifts")
@peer_required
def my_shifts() -> str:
    """The next two weeks: my shifts, and open ones in my languages to sign up for."""
    db = get_session()
    svc = services()
    now = utcnow()
    peer = _me()
    shifts.ensure_shifts(db, svc.settings.zone, now)
    views = [v for v in shifts.upcoming(db, now)
             if peer.id in v.peer_ids or set(v.shift.languages or []) & set(peer.languages or [])]
    rules = shifts.rules(db)
    droppable = {v.shift.id for v in views if shifts.may_drop(v.shift, rules.drop_notice_hours, now)}
    return render_template("staff/my_shifts.html", peer=peer, views=views, names=_peer_names(),
                           rules=rules, droppable=droppable, zone=svc.settings.line_timezone)


def _shift(shift_id: int) -> Shift:
    shift = get_session().get(Shift, shift_id)
    if shift is None:
        abort(404)
    return shift


@bp.post("/me/shifts/<int:shift_id>/signup")
@peer_required
def sign_up_for_shift(shift_id: int) -> ResponseReturnValue:
    """Sign me up for a shift (within the supervisor's rules)."""
    shift = _shift(shift_id)
    try:
        shifts.sign_up(get_session(), _me(), shift, services().settings.zone, current_user.id, utcnow())
    except shifts.ShiftRuleError as exc:
        flash(str(exc), "error")
        return redirect(url_for("staff.my_shifts"))
    flash(f"You are on the shift of {_local(shift.starts_at)}.", "success")
    return redirect(url_for("staff.my_shifts"))


@bp.post("/me/shifts/<int:shift_id>/drop")
@peer_required
def drop_shift(shift_id: int) -> ResponseReturnValue:
    """Take me off a shift (far enough ahead)."""
    shift = _shift(shift_id)
    try:
        shifts.drop(get_session(), _me(), shift, current_user.id, utcnow())
    except shifts.ShiftRuleError as exc:
        flash(str(exc), "error")
        return redirect(url_for("staff.my_shifts"))
    flash(f"You are off the shift of {_local(shift.starts_at)}.", "success")
    return redirect(url_for("staff.my_shifts"))


# The accepting peer's view of their caller, and call records --------------------------------------


def _my_operations(peer: Peer) -> dict[str, Any]:
    """For a peer's page: their next shift, the plan of the caller they are with (or just were), calls to record.

    The plan shows only to the peer who accepted the call, only while it lasts and during
    the wrap-up after it; each showing is audit-logged.
    """
    db = get_session()
    svc = services()
    now = utcnow()
    nxt = shifts.next_shift(db, peer.id, now)
    caller_id, live = callers.current_caller_of_peer(db, peer.id, now)
    plan = None
    if caller_id is not None:
        try:
            plan = callers.plan_text(svc.vault, callers.plan_of(db, caller_id))
        except DecryptError:
            plan = "(this plan cannot be decrypted)"
        if plan is not None:
            audit("view_caller_plan", "caller", caller_id, detail=f"accepting peer {peer.id}")
            db.commit()
    to_record = records.unrecorded_calls(db, peer.id, now - timedelta(days=1))
    # A shift under way is shown with its end: its start is already past.
    under_way = nxt is not None and (aware(nxt.starts_at) or now) <= now
    return {"next_shift": _local(nxt.starts_at) if nxt is not None else None, "plan": plan,
            "shift_ends": _local(nxt.ends_at) if nxt is not None and under_way else None,
            "plan_live": live,
            "to_record": [(call_id, _local(started), kind) for call_id, started, kind in to_record]}


@bp.route("/me/calls/<int:call_id>/record", methods=["GET", "POST"])
@peer_required
def call_record(call_id: int) -> ResponseReturnValue:
    """Complete the post-call record of one of my calls: reason, outcome, referral, risk, minutes."""
    db = get_session()
    peer = _me()
    if call_id not in records.calls_of_peer(db, peer.id):
        abort(404)
    config = records.fields()
    row = records.record_of(db, call_id, peer.id)
    if request.method == "POST":
        form = request.form
        try:
            minutes = int(form["minutes"]) if form.get("minutes", "").strip() else None
            referral = {"yes": True, "no": False}.get(form.get("referral", ""))
            records.save(db, call_id, peer.id, "page", reason=form.get("reason") or None,
                         outcome=form.get("outcome") or None, referral=referral, risk=form.get("risk") or None,
                         minutes=minutes)
        except ValueError:
            flash("Choose from the lists, and give the minutes as a whole number (0 to 600).", "error")
            return redirect(url_for("staff.call_record", call_id=call_id))
        audit("call_record", "call", call_id)
        db.commit()
        flash("The call record is saved.", "success")
        return redirect(url_for("staff.my_shift"))
    call = db.get(Call, call_id)
    return render_template("staff/call_record.html", call=call, row=row, config=config,
                           minutes=(row.minutes if row is not None and row.minutes is not None
                                    else records.talk_minutes(db, call_id, peer.id)))


@bp.get("/records")
@supervisor_required
def call_records() -> str:
    """Each call's record (codes shown with their labels), newest first."""
    db = get_session()
    rows = db.execute(select(CallRecord, Call.started_at).join(Call, Call.id == CallRecord.call_id)
                      .order_by(Call.started_at.desc()).limit(200)).all()
    total = db.scalar(select(func.count()).select_from(CallRecord)) or 0
    return render_template("staff/records.html", rows=rows, config=records.fields(), names=_peer_names(),
                           total=total)
