"""Per-request database session, closed on teardown (Flask's flaskr pattern)."""
from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from ivr.services import services


def get_session() -> Session:
    """The database session of the current request, opened on first use."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    session: Session = g.db_session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    """Close the request's session, rolling back anything not committed."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Register the teardown hook."""
    app.teardown_appcontext(close_session)
