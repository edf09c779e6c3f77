"""Words for people instead of codes on the staff pages: times in the line's time zone with the
zone shown, language names, call steps, callback windows and risk levels."""
from __future__ import annotations

from datetime import datetime

from flask import Flask

from callflows.times import aware
from ivr.services import services

LANGUAGES = {"en": "English", "es": "Spanish"}
# Where a call is: the flow's nodes and the steps the webhooks record.
STEPS = {
    "start": "the greeting",
    "language": "choosing a language",
    "main": "the main menu",
    "stories": "the stories menu",
    "settings": "the settings menu",
    "no_peer": "no peer free: choosing what to do",
    "story_after": "after a story",
    "callback_confirm": "confirming a callback number",
    "callback_window": "choosing a callback time",
    "callback_message": "hearing the callback message",
    "callback_pending": "told a callback is already pending",
    "callback_key": "keying a callback number",
}
# A voicemail's triage level ("untriaged" is how the metrics name a message not triaged yet).
RISK_LABELS: dict[str | None, str] = {
    "high": "High risk", "medium": "Medium risk", "low": "Low risk", "none": "No risk words", "unknown": "Risk unknown",
    "mentioned": "Risk words mentioned (negated)", None: "Not yet triaged", "untriaged": "Not yet triaged"}
WINDOW_NAMES = {"now": "As soon as possible", "morning": "Morning", "afternoon": "Afternoon", "evening": "Evening"}


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (UTC) time in LINE_TIMEZONE, with the zone's abbreviation (``2026-11-26 08:53 EST``)."""
    if value is None:
        return ""
    local = aware(value).astimezone(services().settings.zone)  # type: ignore[union-attr]
    return f"{local.strftime(fmt)} {local.tzname()}"


def language_label(code: str | None) -> str:
    """'Spanish' for 'es'; the code itself for others; 'unknown' for none."""
    return LANGUAGES.get((code or "")[:2], code or "unknown")


def step_label(node: str | None) -> str:
    """Where a call is, in words ('choosing a callback time' for callback_window)."""
    if not node:
        return STEPS["start"]
    return STEPS.get(node, node.replace("_", " ").replace(".", ": "))


def window_label(window: str | None) -> str:
    """A callback window in words, with its local hours ('Morning, 9:00 to 12:00')."""
    if not window:
        return "no time chosen"
    name = WINDOW_NAMES.get(window, window.replace("_", " ").capitalize())
    hours = services().settings.windows.get(window)
    return f"{name}, {hours[0]}:00 to {hours[1]}:00" if hours else name


def init_app(app: Flask) -> None:
    """Register the filters the staff templates use."""
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(language_label, "language_label")
    app.add_template_filter(step_label, "step_label")
    app.add_template_filter(window_label, "window_label")
    app.add_template_global(lambda: services().settings.zone.key, "line_zone")
