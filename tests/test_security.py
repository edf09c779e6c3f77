"""Signatures, errors that still answer the caller, and the fallback with everything down."""
from __future__ import annotations

import http.client
import io
from urllib.parse import unquote, urlencode

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr import MAX_REQUEST_BYTES, create_app
from ivr.webhooks import context, menus
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN, TestCaller, parse_twiml, serving, sign, spoken


def test_unsigned_request_is_rejected(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/voice/incoming", data={"CallSid": "CA1", "From": "+15555550100"})
    assert response.status_code == 403


def test_wrong_signature_is_rejected(client) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    bad = sign(PUBLIC_BASE + "/voice/incoming", params, token="someone-elses-token")
    response = client.post("/voice/incoming", data=params, headers={"X-Twilio-Signature": bad})
    assert response.status_code == 403


def test_signature_for_another_url_is_rejected(client) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    other = sign("https://evil.example/voice/incoming", params)
    response = client.post("/voice/incoming", data=params, headers={"X-Twilio-Signature": other})
    assert response.status_code == 403


def test_tampered_form_is_rejected(client) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    signature = sign(PUBLIC_BASE + "/voice/incoming", params)
    response = client.post("/voice/incoming", data={**params, "From": "+15555550111"},
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_a_percent_encoded_path_is_signed_as_twilio_requested_it(client) -> None:  # type: ignore[no-untyped-def]
    # url_for percent-encodes a path argument; Twilio requests and signs the URL as it was given.
    params = {"CallSid": "CA1", "From": "+15555550100"}
    path = "/voice/menu/caf%C3%A9%20au%20lait"
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE + path, params)})
    assert response.status_code == 200 and parse_twiml(response.data).find("Gather") is not None
    decoded = sign(PUBLIC_BASE + "/voice/menu/café au lait", params)  # not what Twilio signed
    assert client.post(path, data=params, headers={"X-Twilio-Signature": decoded}).status_code == 403


@pytest.mark.parametrize("path", ["/voice/incoming", "/voice/no-such-route"])
def test_a_query_that_is_not_utf8_is_refused_not_an_error(client, path: str) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE + path, params)},
                           environ_overrides={"QUERY_STRING": "lang=\xff"})  # the raw byte 0xff
    assert response.status_code == 403


def test_a_path_with_an_empty_segment_answers_twiml_not_a_redirect(client) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    path = "/voice/stories/pain//key"  # merging the slashes would find a route
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE + path, params)})
    assert response.status_code == 200  # werkzeug would redirect (308) to a URL Twilio never signed
    assert spoken(parse_twiml(response.data)) == "Sorry, something went wrong on our side. You are still connected."


class Body(io.RawIOBase):
    """A request body of ``size`` bytes that counts how many of them the app read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"a" * n
        self.read_bytes += n
        return n


FIVE_MB = 5 * 1024 * 1024


@pytest.mark.parametrize("path", ["/voice/incoming", "/voice/status", "/peer/hold/1/wait", "/peer/phone/pin",
                                  "/callbacks/attempt/1/caller/status", "/voice/no-such-route", "/staff/sign-in"])
def test_an_oversized_body_is_refused_unread(client, path: str) -> None:  # type: ignore[no-untyped-def]
    body = Body(FIVE_MB)
    response = client.post(path, content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": "x"},
                           environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(body.size)})
    assert response.status_code == 413
    assert body.read_bytes == 0  # refused on its declared length: not a byte parsed, so no time spent on it


def test_an_oversized_signed_form_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100", "SpeechResult": "a" * FIVE_MB}
    headers = {"X-Twilio-Signature": sign(PUBLIC_BASE + "/voice/incoming", params)}
    assert client.post("/voice/incoming", data=params, headers=headers).status_code == 413
    params["SpeechResult"] = "a" * (MAX_REQUEST_BYTES // 2)  # what Twilio sends fits well under the cap
    headers = {"X-Twilio-Signature": sign(PUBLIC_BASE + "/voice/incoming", params)}
    assert client.post("/voice/incoming", data=params, headers=headers).status_code == 200


def test_a_body_of_undeclared_length_is_read_no_further_than_the_cap(client) -> None:  # type: ignore[no-untyped-def]
    body = Body(FIVE_MB)  # sent chunked: no Content-Length to refuse it by
    response = client.post("/voice/incoming", content_type="application/x-www-form-urlencoded",
                           headers={"X-Twilio-Signature": "x"},
                           environ_overrides={"wsgi.input": body, "HTTP_TRANSFER_ENCODING": "chunked",
                                              "wsgi.input_terminated": True})
    assert response.status_code in (403, 413)
    assert body.read_bytes <= 2 * MAX_REQUEST_BYTES


def test_signed_request_is_answered(caller: TestCaller) -> None:
    caller.call()
    assert "For English, press 1." in caller.said


def test_error_inside_a_voice_route_answers_twiml_not_500(app, caller: TestCaller, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    caller.call()
    caller.press("1")
    caller.to_menu()

    def explode(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database on fire")

    monkeypatch.setattr(menus, "step", explode)
    caller.press("1")
    assert caller.said.startswith("Sorry, something went wrong on our side. You are still connected.")
    redirect = caller.twiml.find("Redirect").text
    assert "/voice/menu/main" in redirect and "err=1" in redirect
    # If the menu itself keeps failing, the caller is handed to the crisis line, not looped.
    monkeypatch.setattr(context.Ctx, "url", explode)
    caller.post(redirect)
    assert caller.twiml.find("Dial/Number").text == "988"


def test_fallback_answers_with_database_and_redis_down(app_config) -> None:  # type: ignore[no-untyped-def]
    down = dict(app_config, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
                redis_url="redis://127.0.0.1:1/0")
    client = create_app(down).test_client()
    params = {"CallSid": "CA2", "From": "+15555550100", "ErrorCode": "11200"}
    response = client.post("/voice/fallback", data=params,
                           headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/voice/fallback", params)})
    assert response.status_code == 200
    root = parse_twiml(response.data)
    # One instruction, English then Spanish at once, then the crisis line.
    assert [" ".join(say.itertext()) for say in root.findall("Say")] == [
        "Sorry, Peer Line is down right now, so stay on the line for the crisis line.",
        "Perdón, Peer Line no funciona ahora, así que no cuelgue y le pasamos a la línea de crisis.",
    ]
    assert [say.get("language") for say in root.findall("Say")] == ["en-US", "es-US"]
    assert [verb.tag for verb in root] == ["Say", "Say", "Dial"]
    assert root.find("Dial/Number").text == "988"
    # and the entry point itself still answers the caller with the database down
    caller = TestCaller(client)
    caller.call()
    assert "something went wrong" in caller.said or "stay on the line for the crisis line" in caller.said
    assert caller.twiml.find("Hangup") is None


def test_healthz_reports_each_part(client) -> None:  # type: ignore[no-untyped-def]
    report = client.get("/healthz").get_json()
    assert report["database"] == "ok"
    assert report["redis"] == "ok"
    assert report["workers"] == 0
    assert set(report["speech_model"]) == {"en", "es"}
    assert set(report["speech_model"].values()) <= {"none", "ready", "demo", "missing"}
    assert report["status"] == "ok"


def test_healthz_is_503_when_redis_is_down(app_config) -> None:  # type: ignore[no-untyped-def]
    client = create_app(dict(app_config, redis_url="redis://127.0.0.1:1/0")).test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("error")


# Awkward URLs as Twilio requests them (the path as given to Twilio, the query in its own order),
# each signed by twilio's own RequestValidator over exactly that URL.
AWKWARD_URLS = [
    "/voice/menu/;",  # an empty path parameter: urlparse drops it when it rebuilds the URL
    "/voice/menu/main;v=2",
    "/voice/menu/a%2Fb",  # an encoded slash the router sees as "/"
    "/voice/menu/a+b",
    "/voice/menu/a%2Bb",
    "/voice/menu/caf%c3%a9",  # lower-case escapes, as some URL builders write them
    "/voice/menu/%E2%98%8E%EF%B8%8F",
    "/voice/menu/main?lang=es&lang=en&a=%2F",  # repeated keys, not in sorted order
    "/voice/menu/main?b=2&a=1&b=1",
]


@pytest.mark.parametrize("path", AWKWARD_URLS)
def test_a_signed_awkward_url_is_accepted_and_a_wrong_signature_still_refused(client, path: str) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    right = sign(PUBLIC_BASE + path, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": right})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    wrong = sign(PUBLIC_BASE + path, params, token="someone-elses-token")
    assert client.post(path, data=params, headers={"X-Twilio-Signature": wrong}).status_code == 403
    # Signed for the URL as the router decodes it, not as it was requested: refused.
    path_part, _, query = path.partition("?")
    decoded = unquote(path_part) + (f"?{query}" if query else "")
    if decoded != path:
        other = sign(PUBLIC_BASE + decoded, params)
        assert client.post(path, data=params, headers={"X-Twilio-Signature": other}).status_code == 403


def test_a_repeated_form_field_is_signed_with_every_value(client) -> None:  # type: ignore[no-untyped-def]
    form = MultiDict([("CallSid", "CA1"), ("From", "+15555550100"), ("Extra", "b"), ("Extra", "a")])
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(PUBLIC_BASE + "/voice/incoming", form)
    response = client.post("/voice/incoming", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    first_only = sign(PUBLIC_BASE + "/voice/incoming", {"CallSid": "CA1", "From": "+15555550100", "Extra": "b"})
    assert client.post("/voice/incoming", data=form, headers={"X-Twilio-Signature": first_only}).status_code == 403


def test_a_signature_with_the_default_port_written_out_is_accepted(client) -> None:  # type: ignore[no-untyped-def]
    params = {"CallSid": "CA1", "From": "+15555550100"}
    scheme, _, rest = PUBLIC_BASE.partition("://")
    host, slash, tail = rest.partition("/")
    with_port = f"{scheme}://{host}:{443 if scheme == 'https' else 80}{slash}{tail}/voice/incoming"
    response = client.post("/voice/incoming", data=params, headers={"X-Twilio-Signature": sign(with_port, params)})
    assert response.status_code == 200
    other_port = f"{scheme}://{host}:8443{slash}{tail}/voice/incoming"
    assert client.post("/voice/incoming", data=params,
                       headers={"X-Twilio-Signature": sign(other_port, params)}).status_code == 403


def test_awkward_urls_over_real_http_are_checked_as_requested(app) -> None:  # type: ignore[no-untyped-def]
    # A real HTTP server hands the request line over in RAW_URI / REQUEST_URI, as gunicorn does.
    params = {"CallSid": "CA1", "From": "+15555550100"}
    with serving(app) as base:
        host, port = base.removeprefix("http://").split(":")
        for path in ("/voice/menu/;", "/voice/menu/a%2Fb;x", "/voice/menu/caf%c3%a9?lang=es&lang=en"):
            for signature, status in ((sign(PUBLIC_BASE + path, params), 200),
                                      (sign(PUBLIC_BASE + path, params, token="someone-elses-token"), 403)):
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request("POST", path, body=urlencode(params), headers={
                    "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
                response = conn.getresponse()
                response.read()
                conn.close()
                assert response.status == status, (path, response.status)
