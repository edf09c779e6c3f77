"""Failed sign-ins counted per source address (in Redis, expiring with the lockout), on top of
the per-account count kept on the staff user: guessing across many user names from one
address is slowed down as much as guessing one account's password."""
from __future__ import annotations

import logging

from flask import current_app, request
from redis.exceptions import RedisError

from ivr.services import services

log = logging.getLogger(__name__)

KEY = "peerline:staff:sign-in-failures:{address}"


def _key() -> str:
    return KEY.format(address=request.remote_addr or "unknown")


def address_blocked() -> bool:
    """True when this request's address has failed too often within the lockout time."""
    try:
        count = services().redis.get(_key())
    except RedisError as exc:  # Redis down: the per-account lockout still stands
        log.warning("cannot read the sign-in failures per address: %s", exc)
        return False
    return int(count or 0) >= current_app.config["STAFF_MAX_FAILED_SIGN_INS_PER_ADDRESS"]


def count_failure() -> None:
    """Count one failed sign-in from this request's address (forgotten after the lockout time)."""
    try:
        with services().redis.pipeline() as pipe:
            # The count starts, with its expiry, at the first failure (SET NX EX: old Redis has it too).
            pipe.set(_key(), 0, ex=current_app.config["STAFF_LOCKOUT_MINUTES"] * 60, nx=True)
            pipe.incr(_key())
            pipe.execute()
    except RedisError as exc:
        log.warning("cannot count a sign-in failure per address: %s", exc)
