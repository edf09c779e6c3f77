"""Audio served to Twilio at signed, expiring URLs (peer stories): ``GET /media/story/<token>.wav``.

Not a TwiML route: Twilio's <Play> fetches it, so a bad or expired token answers a bare 404
or 410 (Twilio then goes on to the next verb), and a failure a bare 500, never an HTML page.
"""
from __future__ import annotations

import io
import logging
import wave
from pathlib import Path

from flask import Blueprint, Response, abort, request, send_file
from itsdangerous import BadSignature, SignatureExpired
from werkzeug.exceptions import Gone, HTTPException, NotFound

from callflows.stories import is_playable
from callflows.storage import stored_path
from ivr.db import get_session
from ivr.services import services
from ivr.webhooks.story_audio import read_story_token
from models import PeerStory

log = logging.getLogger(__name__)
bp = Blueprint("media", __name__, url_prefix="/media")


@bp.get("/story/<token>.wav")
def story(token: str) -> Response:
    """Serve a story's WAV audio, from ``start`` seconds when the caller resumed a pause."""
    try:
        story_id, start = read_story_token(token)
    except SignatureExpired:
        abort(410)
    except BadSignature:
        abort(404)
    story_row = get_session().get(PeerStory, story_id)
    if story_row is None or not story_row.audio_path or not is_playable(story_row):
        abort(404)
    path = stored_path(services().settings.instance_path, story_row.audio_path)
    if not path.exists():
        abort(404)
    if start <= 0:
        return send_file(path, mimetype="audio/wav", max_age=0)
    return Response(trim_wav(path, start), mimetype="audio/wav")


# By code as well: Flask prefers a handler for the status code (the app's own, for 404) to one for a class.
@bp.errorhandler(NotFound)
@bp.errorhandler(Gone)
@bp.errorhandler(Exception)
def on_error(exc: Exception) -> Response:
    """A bare status for <Play> (404 bad token, 410 expired, 500 failure), never an HTML page."""
    if isinstance(exc, HTTPException):
        return Response(status=exc.code or 500, mimetype="text/plain")
    log.exception("story audio failed: %s", request.path)
    return Response(status=500, mimetype="text/plain")


def trim_wav(path: Path, start_s: float) -> bytes:
    """WAV bytes of ``path`` from ``start_s`` seconds on (for resuming a paused story)."""
    with wave.open(str(path), "rb") as src:
        params = src.getparams()
        src.setpos(min(src.getnframes(), int(start_s * src.getframerate())))
        frames = src.readframes(src.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as dst:
        dst.setparams(params)
        dst.writeframes(frames)
    return out.getvalue()
