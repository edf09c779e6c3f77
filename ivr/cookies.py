"""The staff pages' signed-cookie session, not opened for Twilio's webhooks.

Twilio sends no cookie and the webhooks keep nothing in a session; Flask would still build a
signing serializer and look for the cookie on every webhook. Under the webhook prefixes the
session is Flask's null session (read-only and empty; writing to it raises), so nothing is
signed or set there.
"""
from __future__ import annotations

from typing import Iterable

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class StaffOnlySessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session everywhere but under the given path prefixes."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.prefixes = tuple(p.rstrip("/") for p in prefixes)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """No session for a webhook (the null session); the signed cookie's for the rest."""
        path = request.path
        if any(path == p or path.startswith(p + "/") for p in self.prefixes):
            return None  # Flask then uses make_null_session
        return super().open_session(app, request)
