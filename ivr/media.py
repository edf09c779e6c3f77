"""Audio served to Twilio at signed, expiring URLs (peer stories)."""
from __future__ import annotations

import io
import wave
from pathlib import Path

from flask import Blueprint, Response, abort, send_file, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from callflows.storage import stored_path
from callflows.stories import is_playable
from ivr.db import get_session
from ivr.services import services
from models import PeerStory

bp = Blueprint("media", __name__, url_prefix="/media")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services().settings.secret_key, salt="peerline-media")


def story_audio_url(story_id: int, start_s: float = 0.0) -> str:
    """An absolute, signed URL for a story's audio, valid for MEDIA_URL_TTL seconds."""
    token = _serializer().dumps({"story": story_id, "start": round(start_s, 1)})
    return services().settings.public_base_url + url_for("media.story", token=token)


@bp.get("/story/<token>.wav")
def story(token: str) -> Response:
    """Serve a story's WAV audio, from ``start`` seconds when the caller resumed a pause."""
    try:
        data = _serializer().loads(token, max_age=services().settings.media_url_ttl_s)
    except SignatureExpired:
        abort(410)
    except BadSignature:
        abort(404)
    story_row = get_session().get(PeerStory, int(data["story"]))
    if story_row is None or not story_row.audio_path or not is_playable(story_row):
        abort(404)
    path = stored_path(services().settings.instance_path, story_row.audio_path)
    if not path.exists():
        abort(404)
    start = float(data.get("start") or 0)
    if start <= 0:
        return send_file(path, mimetype="audio/wav", max_age=0)
    return Response(trim_wav(path, start), mimetype="audio/wav")


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
