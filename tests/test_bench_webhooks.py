"""The webhook bench's request builder and TwiML walker, run against the app's test client."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from bench.webhooks import BenchError, check_peerline, run_call
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN, parse_twiml


def _post_via(client):  # type: ignore[no-untyped-def]
    def post(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        response = client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=form, headers=headers)
        return response.status_code, response.data

    return post


def test_bench_call_walks_the_menus_with_valid_signatures(client) -> None:  # type: ignore[no-untyped-def]
    bodies = run_call(_post_via(client), PUBLIC_BASE, TEST_AUTH_TOKEN, "CA" + "b" * 32, "+15555550190")
    assert len(bodies) == 5
    for body in bodies:
        parse_twiml(body)  # Twilio's schema, where available
    check_peerline(bodies)


def test_bench_call_fails_loudly_when_the_signature_is_wrong(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BenchError, match="HTTP 403"):
        run_call(_post_via(client), PUBLIC_BASE, "not-the-token", "CA" + "c" * 32, "+15555550191")


def test_the_bare_baseline_checks_the_signature_as_a_twilio_webhook_must(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib

    import bench.bare_app

    monkeypatch.setenv("BARE_AUTH_TOKEN", TEST_AUTH_TOKEN)
    monkeypatch.setenv("BARE_PUBLIC_BASE_URL", PUBLIC_BASE)
    bare = importlib.reload(bench.bare_app)
    try:
        bodies = run_call(_post_via(bare.app.test_client()), PUBLIC_BASE, TEST_AUTH_TOKEN, "CA" + "d" * 32, "+15555550192")
        assert len(bodies) == 5
        with pytest.raises(BenchError, match="HTTP 403"):
            run_call(_post_via(bare.app.test_client()), PUBLIC_BASE, "not-the-token", "CA" + "e" * 32, "+15555550193")
    finally:
        monkeypatch.undo()
        importlib.reload(bench.bare_app)
