"""bench/load.py's paths walk the real app: every step is answered with TwiML the walker can follow."""
from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from bench.load import PATHS, Call, Figures, Run, Step
from callflows.services import Services
from models import CallbackRequest, PeerStory, Voicemail
from models.tables import PeerRequest
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN


@pytest.fixture
def line_on_break(svc: Services, db: Any) -> None:
    """What bench/load.py seeds: stories on every topic in both languages, a peer on shift but on a break."""
    for language in ("en", "es"):
        for topic in ("medication", "pain", "loneliness", "stigma"):
            for n in range(3):
                db.add(PeerStory(title=f"{topic} {n}", topic=topic, language=language, transcript="A story.",
                                 status="approved", consent_given=True))
    db.commit()
    make_peer(db, svc.vault, phone="+15555550361", languages=["en", "es"], status="break")


def _walk(client: Any, path: list[Step], number: str = "+15555550362") -> Figures:
    async def transport(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        response = client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=form, headers=headers)
        response.close()  # as a WSGI server does once the answer is sent
        return response.status_code, response.data

    run = Run(bare=False, base_url=PUBLIC_BASE, token=TEST_AUTH_TOKEN, calls=1, interval_s=0.0,
              figures=Figures("peerline", 1), rng=random.Random(3), numbers=itertools.count(),
              measure_until=float("inf"), transport=transport)
    call = Call(run, number, path)

    async def steps() -> None:
        for kind, digits in path:
            assert await call.step(kind, digits), f"the answer did not allow {kind} {digits}"

    asyncio.run(steps())
    return run.figures


@pytest.mark.parametrize("make_path", [make for make, _weight in PATHS], ids=lambda make: make.__name__)
def test_every_path_of_the_load_bench_walks_the_app_without_an_error(line_on_break: None, client: Any,
                                                                     make_path: Any) -> None:
    path = make_path(random.Random(5))
    figures = _walk(client, path)
    assert figures.errors == 0, figures.first_errors
    # One answer per step; a voicemail adds its recording callback, a hang-up on hold the queue's action.
    extra = sum(1 for kind, _d in path if kind == "record") + (1 if any(k == "hold" for k, _d in path)
                                                             and not any(k == "leave" for k, _d in path) else 0)
    assert len(figures.latencies) == len(path) + extra


def test_the_paths_leave_what_a_caller_would(line_on_break: None, client: Any, db: Any) -> None:
    rng = random.Random(7)
    paths = {make.__name__: make for make, _weight in PATHS}
    for n, name in enumerate(("path_hold", "path_hold_callback", "path_voicemail", "path_callback")):
        figures = _walk(client, paths[name](rng), number=f"+1555555037{n}")  # each a new caller
        assert figures.errors == 0, figures.first_errors
    # Two callbacks (one kept its place from hold), one message, two waits for a peer, both over.
    assert db.scalar(select(func.count()).select_from(CallbackRequest).where(CallbackRequest.status == "pending")) == 2
    assert db.scalar(select(func.count()).select_from(Voicemail)) == 1
    assert sorted(db.scalars(select(PeerRequest.status))) == ["abandoned", "callback"]
