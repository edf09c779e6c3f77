"""Signed, expiring URLs of peer-story audio: made for <Play> by the story and hold handlers, read by media."""
from __future__ import annotations

import math

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ivr.services import services
from ivr.webhooks.context import public_url


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services().settings.secret_key, salt="peerline-media")


def story_audio_url(story_id: int, start_s: float = 0.0) -> str:
    """An absolute, signed URL for a story's audio, valid for MEDIA_URL_TTL seconds."""
    token = _serializer().dumps({"story": story_id, "start": round(start_s, 1)})
    return public_url("media.story", token=token)


def read_story_token(token: str) -> tuple[int, float]:
    """The story id and start second a token names; SignatureExpired when too old, BadSignature when forged."""
    data = _serializer().loads(token, max_age=services().settings.media_url_ttl_s)
    try:
        story_id, start = int(data["story"]), float(data.get("start") or 0)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:  # signed, yet not one of ours
        raise BadSignature("not a story token") from exc
    # A position no audio has (nan, infinity) plays the story from its start, never a failure.
    return story_id, start if math.isfinite(start) else 0.0
