"""WSGI entry point for gunicorn: ``gunicorn ivr.wsgi:app``."""
from __future__ import annotations

from ivr import create_app

app = create_app()
