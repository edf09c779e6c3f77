"""The web app's handle on this process's :class:`~callflows.services.Services`."""
from __future__ import annotations

from typing import Mapping

from flask import Flask, current_app
from werkzeug.routing import Map

from callflows.services import PathBuilder, Services

EXTENSION = "peerline"


def services(app: Flask | None = None) -> Services:
    """The services of ``app`` (the current app by default)."""
    found: Services = (app or current_app).extensions[EXTENSION]
    return found


def path_builder(url_map: Map) -> PathBuilder:
    """Build route paths from the app's URL map, so requests, jobs and threads make the same URLs."""
    def build(endpoint: str, values: Mapping[str, object]) -> str:
        return url_map.bind("peerline.internal").build(endpoint, dict(values))
    return build
