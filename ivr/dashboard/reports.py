"""The Reports page: how the line did in a chosen period, with charts drawn on the server as SVG
(each with its data table), staffing advice, and a CSV download with small cells suppressed."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

from flask import Response, flash, render_template, request
from flask.typing import ResponseReturnValue

from callflows import metrics, records, staffing
from ivr.dashboard.core import audit, bp, supervisor_required
from ivr.dashboard.labels import RISK_LABELS
from ivr.db import get_session
from ivr.services import services
from models import utcnow

# Chart geometry, in SVG user units (the SVG scales to the page width).
BAR_CHART_W, BAR_CHART_H, BAR_TOP, BAR_BOTTOM, BAR_LEFT = 720, 260, 20, 40, 40
HEAT_CELL, HEAT_LEFT, HEAT_TOP = 26, 48, 22
HEAT_SHADES = ("#f1f5fb", "#c6dbef", "#6baed6", "#2171b5", "#08306b")


@dataclass(frozen=True)
class Bar:
    """One bar (or one part of a stacked bar) with its label."""

    x: float
    y: float
    w: float
    h: float
    label: str
    value: int
    series: str


@dataclass(frozen=True)
class Cell:
    """One square of the hour-of-week heat map."""

    x: float
    y: float
    shade: str
    label: str


def _parse_day(name: str) -> tuple[date | None, str | None]:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None, None
    try:
        return date.fromisoformat(raw), None
    except ValueError:
        return None, f"{raw!r} is not a date (YYYY-MM-DD); showing the default period."


def chosen_period() -> tuple[metrics.Period, date, date]:
    """The period in the query string (``since``, ``until``: local days, inclusive); the last 7 days by default."""
    zone = services().settings.zone
    since, problem = _parse_day("since")
    until, problem2 = _parse_day("until")
    for text in (problem, problem2):
        if text:
            flash(text, "error")
    period = metrics.period_for_days(since, until, zone, utcnow())
    first = period.since.astimezone(zone).date()
    last = (period.until.astimezone(zone) - timedelta(seconds=1)).date()
    return period, first, last


def _scale(values: list[int]) -> int:
    top = max(values, default=0)
    return max(1, top)


def hour_bars(m: metrics.Metrics) -> tuple[list[Bar], int]:
    """Offered and answered calls for each local hour of the day, side by side."""
    offered = [m.by_hour.get(h, metrics.Breakdown()).offered for h in range(24)]
    answered = [m.by_hour.get(h, metrics.Breakdown()).answered for h in range(24)]
    top = _scale(offered)
    plot_h = BAR_CHART_H - BAR_TOP - BAR_BOTTOM
    slot = (BAR_CHART_W - BAR_LEFT) / 24
    bars = []
    for h in range(24):
        for i, (series, value) in enumerate((("offered", offered[h]), ("answered", answered[h]))):
            height = plot_h * value / top
            bars.append(Bar(BAR_LEFT + h * slot + 2 + i * (slot - 4) / 2, BAR_TOP + plot_h - height, (slot - 4) / 2,
                            height, f"{h:02d}:00", value, series))
    return bars, top


def wait_bars(m: metrics.Metrics) -> tuple[list[Bar], int]:
    """Callers by how long they waited for a peer: answered, then not answered, stacked."""
    labels = list(m.wait_distribution)
    totals = [sum(m.wait_distribution[k].values()) for k in labels]
    top = _scale(totals)
    plot_h = BAR_CHART_H - BAR_TOP - BAR_BOTTOM
    slot = (BAR_CHART_W - BAR_LEFT) / max(1, len(labels))
    bars = []
    for i, label in enumerate(labels):
        base: float = BAR_TOP + plot_h
        for series in ("answered", "not_answered"):
            value = m.wait_distribution[label][series]
            height = plot_h * value / top
            base -= height
            bars.append(Bar(BAR_LEFT + i * slot + 6, base, slot - 12, height, label, value, series))
    return bars, top


def heat_cells(m: metrics.Metrics) -> tuple[list[Cell], int]:
    """Offered calls by weekday and hour as shaded squares (five shades from none to the busiest hour)."""
    top = _scale([v for row in m.hour_of_week for v in row])
    cells = []
    for day, row in enumerate(m.hour_of_week):
        for hour, value in enumerate(row):
            level = 0 if value == 0 else 1 + min(3, (3 * value) // top)
            cells.append(Cell(HEAT_LEFT + hour * HEAT_CELL, HEAT_TOP + day * HEAT_CELL, HEAT_SHADES[level],
                              f"{metrics.WEEKDAYS[day]} {hour:02d}:00, {value} calls"))
    return cells, top


@bp.get("/reports")
@supervisor_required
def reports() -> str:
    """How the line is doing in the chosen period: figures, charts with data tables, staffing advice."""
    settings = services().settings
    period, first, last = chosen_period()
    session = get_session()
    m = metrics.compute(session, period, settings.zone, settings.service_level_seconds, now=utcnow())
    advice = staffing.advise(session, m, period, settings.zone, settings.service_level_target / 100,
                             settings.service_level_seconds, settings.peer_wrapup_seconds)
    bars, bars_top = hour_bars(m)
    waits, waits_top = wait_bars(m)
    cells, heat_top = heat_cells(m)
    return render_template(
        "staff/reports.html", m=m, first=first, last=last, advice=advice, hour_bars=bars, hour_top=bars_top,
        wait_bars=waits, wait_top=waits_top, heat=cells, heat_top=heat_top, shades=HEAT_SHADES,
        record_fields=records.fields(), short_hours=sum(1 for a in advice if a.short), weekdays=metrics.WEEKDAYS, risk_levels=metrics.RISK_LEVELS, risk_labels=RISK_LABELS, target=settings.service_level_target,
        chart=dict(w=BAR_CHART_W, h=BAR_CHART_H, top=BAR_TOP, bottom=BAR_BOTTOM, left=BAR_LEFT,
                   cell=HEAT_CELL, heat_left=HEAT_LEFT, heat_top=HEAT_TOP),
        fmt_s=metrics.fmt_seconds, fmt_share=metrics.fmt_share)


@bp.get("/reports.csv")
@supervisor_required
def reports_csv() -> ResponseReturnValue:
    """The period's figures as CSV, every count from 1 to 10 shown as "<11" (safe to share)."""
    settings = services().settings
    period, first, last = chosen_period()
    m = metrics.compute(get_session(), period, settings.zone, settings.service_level_seconds, now=utcnow())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "item", "value"))
    writer.writerows(metrics.export_cells(m))
    audit("export_report", detail=f"{first.isoformat()} to {last.isoformat()}")
    get_session().commit()
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="peerline-report-{first.isoformat()}-{last.isoformat()}.csv"'})
