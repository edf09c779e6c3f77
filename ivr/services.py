"""The connections and shared objects that live on ``app.extensions['peerline']``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Flask, current_app
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import Map

from callflows import Flow
from ivr.config import Settings
from models.crypto import Vault

if TYPE_CHECKING:
    from ivr.twilio_client import TwilioGateway


@dataclass
class Services:
    """Everything a request or a job needs, built once per process by ``create_app``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    vault: Vault
    flows: dict[str, Flow]
    url_map: Map = field(default_factory=Map, repr=False)  # the app's routes, for URLs built in jobs
    _twilio: TwilioGateway | None = field(default=None, repr=False)

    def public_url(self, endpoint: str, **values: object) -> str:
        """Absolute URL of ``endpoint`` on PUBLIC_BASE_URL, with or without a request or app context.

        Built from the app's URL map rather than ``url_for`` so that RQ jobs and worker threads
        produce the same URLs that the routes answer.
        """
        path = self.url_map.bind("peerline.internal").build(endpoint, values)
        return self.settings.public_base_url + path

    @property
    def twilio(self) -> TwilioGateway:
        """The one Twilio REST client of this process (created on first use)."""
        if self._twilio is None:
            from ivr.twilio_client import TwilioGateway

            self._twilio = TwilioGateway(self.settings)
        return self._twilio


def services(app: Flask | None = None) -> Services:
    """The services of ``app`` (the current app by default)."""
    return (app or current_app).extensions["peerline"]  # type: ignore[no-any-return]
