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
