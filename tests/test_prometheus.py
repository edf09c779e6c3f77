"""GET /metrics: Prometheus text format, only with the METRICS_TOKEN bearer token."""
from __future__ import annotations

import re
from typing import Any

import pytest
from rq import Queue

from ivr import create_app
from ivr.services import services
from models import Voicemail
from queues.connection import ALL_QUEUES, CALLBACK_QUEUE, DEFAULT_QUEUE
from tests.factories import make_peer

TOKEN = "scrape-token-0123456789"
SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["metrics_token"] = TOKEN
    return app_config


def scrape(client: Any, token: str | None = TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/metrics", headers=headers)


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, every HELP and TYPE line checked to precede its samples."""
    found: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        assert match[1] in typed, line
        found[match[1] + (match[2] or "")] = float(match[3])
    return found


def test_metrics_are_off_without_a_token(app_config: dict[str, Any], engine: Any, redis: Any) -> None:
    application = create_app({**app_config, "metrics_token": ""})
    try:
        assert application.test_client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    finally:
        services(application).engine.dispose()


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_metrics_need_the_token(client: Any, token: str | None) -> None:
    response = scrape(client, token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="peerline metrics"'
    assert b"peerline_" not in response.data


def test_metrics_report_queues_failed_jobs_peers_and_voicemails(client: Any, svc: Any, db: Any, redis: Any,
                                                                work_jobs: Any) -> None:
    make_peer(db, svc.vault, display_name="Sam", phone="+12025550101")
    make_peer(db, svc.vault, display_name="Rosa", phone="+12025550102", status="busy")
    db.add(Voicemail(recording_sid="RE1", recording_url="https://x.test/RE1", duration_s=3, status="pending"))
    db.commit()
    Queue(DEFAULT_QUEUE, connection=redis).enqueue("math.sqrt", -1)  # fails: ValueError
    work_jobs(DEFAULT_QUEUE)
    Queue(CALLBACK_QUEUE, connection=redis).enqueue("math.sqrt", 4)  # waits: nobody works this queue

    response = scrape(client)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(response.get_data(as_text=True))
    assert found['peerline_up{part="database"}'] == found['peerline_up{part="redis"}'] == 1
    assert found['peerline_rq_jobs{queue="default",state="failed"}'] == 1
    assert found['peerline_rq_jobs{queue="callbacks",state="queued"}'] == 1
    assert set(ALL_QUEUES) == {key.split('queue="')[1].split('"')[0] for key in found
                               if key.startswith("peerline_rq_jobs")}
    assert found["peerline_rq_workers"] == 0
    assert found['peerline_peers{status="available"}'] == found['peerline_peers{status="busy"}'] == 1
    assert found['peerline_voicemails{status="pending"}'] == 1
    assert found["peerline_callers_waiting"] == 0


def test_metrics_answer_with_redis_down(app_config: dict[str, Any], engine: Any, redis: Any) -> None:
    application = create_app({**app_config, "redis_url": "redis://127.0.0.1:1/0"})
    try:
        response = scrape(application.test_client())
    finally:
        services(application).engine.dispose()
    assert response.status_code == 200
    found = samples(response.get_data(as_text=True))
    assert found['peerline_up{part="redis"}'] == 0 and found['peerline_up{part="database"}'] == 1
    assert not any(key.startswith("peerline_rq_") for key in found)
