"""The peerline Flask app: Twilio voice webhooks, TwiML rendering, staff pages, CLI.

Thin by design: handlers parse the request, call a rule from :mod:`callflows`, and render
TwiML or a page. Exceptions that this package raises are in :mod:`ivr.errors`.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from callflows import ACTIONS, TOPIC_ACTIONS, load_flows
from callflows.services import Services
from callflows.settings import Settings, ensure_key_file
from ivr.cookies import StaffOnlySessionInterface
from ivr.services import EXTENSION, path_builder
from models.crypto import Vault, generate_key
from models.session import make_engine, make_sessionmaker
from queues.connection import connect
from queues.scheduler import RqJobs

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024  # MAX_CONTENT_LENGTH unless the config sets it


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, database, Redis, flows and blueprints on ``app.extensions``."""
    app = Flask(__name__, instance_path=os.environ.get("PEERLINE_INSTANCE_PATH") or None,
                instance_relative_config=True)
    # A path with an empty segment (a stale or forged webhook URL) has no route, so the webhooks
    # answer it with TwiML where werkzeug would redirect (308) to a URL Twilio never signed.
    app.url_map.merge_slashes = False
    instance = Path(app.instance_path)
    settings = Settings.from_env(instance)
    if test_config:
        overrides = {k: v for k, v in test_config.items() if k.islower()}
        settings = settings.replace(**overrides)
        app.config.update({k: v for k, v in test_config.items() if k.isupper()})

    data_key = settings.data_key
    secret_key = settings.secret_key
    if not data_key or not secret_key:
        instance.mkdir(parents=True, exist_ok=True)
    if not data_key:
        # Development only: a key kept in the instance folder, so `make run` needs no settings.
        data_key = ensure_key_file(instance / "data.key", generate_key)
        log.warning("PEERLINE_DATA_KEY is unset; using the generated key in %s", instance / "data.key")
    if not secret_key:
        secret_key = ensure_key_file(instance / "secret.key", lambda: secrets.token_urlsafe(32))
    settings = settings.replace(data_key=data_key, secret_key=secret_key).check()

    # Flask pre-fills these keys (None / False), so they are set outright unless a test set them.
    app.config["SECRET_KEY"] = app.config.get("SECRET_KEY") or secret_key
    # Twilio's webhook bodies are a few kB and no staff page uploads: a larger body is refused unread.
    app.config["MAX_CONTENT_LENGTH"] = app.config.get("MAX_CONTENT_LENGTH") or MAX_REQUEST_BYTES
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config.get("SESSION_COOKIE_SECURE")) or \
        settings.public_base_url.startswith("https://")

    if settings.trusted_proxies:
        # Behind N reverse proxies: the client's address (the sign-in throttle counts per address)
        # and scheme (HSTS, secure cookies) come from the last N X-Forwarded-For / -Proto entries.
        # Host is not taken from X-Forwarded-Host: URLs and signatures use PUBLIC_BASE_URL.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    engine = make_engine(settings.database_url)
    redis = connect(settings.redis_url, instance)
    app.extensions[EXTENSION] = Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        redis=redis,
        vault=Vault(data_key, settings.lookup_key),
        flows=load_flows(),
        jobs=RqJobs(redis),
        paths=path_builder(app.url_map),
    )

    # Imported here, not at the top: the views need the package's create_app module loaded
    # first, and this keeps `import ivr` cheap for the command-line tools. Importing a webhook
    # handler module adds its routes to the shared blueprints and its actions to the registry.
    from ivr import cli, dashboard, db, health, prometheus
    from ivr.webhooks import (actions, blueprints, callback_legs, callback_request, failures, hold, in_call, media,
                              menus, peer_legs, peer_phone, status, stories, survey, voicemail)

    handler_modules = (menus, stories, voicemail, hold, peer_legs, callback_request, callback_legs, peer_phone, status,
                       survey, in_call)
    missing = actions.unhandled(ACTIONS, TOPIC_ACTIONS)
    if missing:  # a handler module left out above: fail at start, not in a caller's ear
        raise RuntimeError(f"no webhook handles the flow actions {', '.join(missing)} "
                           f"(handler modules: {', '.join(m.__name__ for m in handler_modules)})")

    db.init_app(app)
    for blueprint in (*blueprints.TWILIO, media.bp, health.bp, prometheus.bp):
        app.register_blueprint(blueprint)
    failures.init_app(app, blueprints.TWILIO)
    app.session_interface = StaffOnlySessionInterface(str(bp.url_prefix) for bp in blueprints.TWILIO)
    dashboard.init_app(app)
    for blueprint in blueprints.TWILIO:
        # Twilio posts a signature, not a CSRF token; the staff pages check their own tokens.
        app.extensions["csrf"].exempt(blueprint)
    cli.register_commands(app)
    return app
