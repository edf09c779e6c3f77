"""Supervisor pages for peer stories: the review queue, listening, consent, approve or retire."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from ivr.dashboard.core import audit, bp, supervisor_required
from ivr.dashboard.supervisor import audio_url
from ivr.db import get_session
from models import Peer, PeerStory, utcnow


@bp.get("/stories")
@supervisor_required
def stories() -> str:
    """Stories waiting for review first, then the approved and retired ones."""
    rows = get_session().scalars(select(PeerStory).order_by(PeerStory.created_at.desc())).all()
    groups = {status: [s for s in rows if s.status == status] for status in ("draft", "approved", "retired")}
    return render_template("staff/stories.html", groups=groups)


def _story_or_404(story_id: int) -> PeerStory:
    story = get_session().get(PeerStory, story_id)
    if story is None:
        abort(404)
    return story


def _render_story(story: PeerStory, status: int = 200) -> tuple[str, int]:
    peer = get_session().get(Peer, story.peer_id) if story.peer_id else None
    return render_template("staff/story.html", story=story, peer=peer,
                           audio_src=audio_url("story", story.id) if story.audio_path else None), status


@bp.get("/stories/<int:story_id>")
@supervisor_required
def story(story_id: int) -> tuple[str, int]:
    """One story: listen, read the transcript, confirm consent, approve or retire."""
    return _render_story(_story_or_404(story_id))


@bp.post("/stories/<int:story_id>/approve")
@supervisor_required
def approve_story(story_id: int) -> ResponseReturnValue:
    """Approve a story for callers; the storyteller's consent must be confirmed."""
    db = get_session()
    story_row = _story_or_404(story_id)
    if not story_row.consent_given and request.form.get("consent") != "yes":
        flash("Confirm that the storyteller consented before approving the story.", "error")
        return _render_story(story_row, status=400)
    if not story_row.consent_given:
        story_row.consent_given = True
        story_row.consent_at = utcnow()
        audit("confirm_consent", "story", story_row.id)
    previous = story_row.status
    story_row.status = "approved"
    audit("approve_story", "story", story_row.id, detail=f"{previous} -> approved")
    db.commit()
    flash(f"“{story_row.title}” is approved; callers can hear it now.", "success")
    return redirect(url_for("staff.stories"))


@bp.post("/stories/<int:story_id>/retire")
@supervisor_required
def retire_story(story_id: int) -> ResponseReturnValue:
    """Retire a story: callers no longer hear it."""
    db = get_session()
    story_row = _story_or_404(story_id)
    previous = story_row.status
    story_row.status = "retired"
    audit("retire_story", "story", story_row.id, detail=f"{previous} -> retired")
    db.commit()
    flash(f"“{story_row.title}” is retired.", "success")
    return redirect(url_for("staff.stories"))
