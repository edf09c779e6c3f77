"""The services of one process: settings, database, Redis, vault, flows, URLs, jobs, Twilio.

Built once per process (by the web app factory, or by the worker command) and passed to the
rules explicitly; nothing here is global. The two parts that depend on outer layers come in
as plain callables: ``paths`` builds a route's path from its endpoint name (the web app
gives its URL map), and ``jobs`` schedules background work (:class:`~callflows.scheduling.Jobs`,
implemented with RQ by ``queues``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callflows.loader import Flow
from callflows.scheduling import Jobs
from callflows.settings import Settings
from callflows.twilio_client import TwilioGateway, gateway_for
from models.crypto import Vault

PathBuilder = Callable[[str, Mapping[str, object]], str]


def _no_routes(endpoint: str, values: Mapping[str, object]) -> str:
    raise LookupError(f"no URL map in this process to build {endpoint!r}")


@dataclass
class Services:
    """Everything a request or a job needs, built once per process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    vault: Vault
    flows: dict[str, Flow]
    jobs: Jobs
    paths: PathBuilder = field(default=_no_routes, repr=False)
    _twilio: TwilioGateway | None = field(default=None, repr=False)

    def public_url(self, endpoint: str, **values: object) -> str:
        """Absolute URL of ``endpoint`` on PUBLIC_BASE_URL, the same in a request, a job or a thread."""
        return self.settings.public_base_url + self.paths(endpoint, values)

    def flow(self, language: str | None) -> Flow:
        """The flow of ``language``, English when it is unknown."""
        return self.flows.get(language or "en") or self.flows["en"]

    @property
    def twilio(self) -> TwilioGateway:
        """The one Twilio REST client of this process (created on first use)."""
        if self._twilio is None:
            self._twilio = gateway_for(self.settings)
        return self._twilio
