"""Test helpers: optional parts, TwiML parsing and schema validation, a signed test caller."""
from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from lxml import etree
from sqlalchemy import Engine, event
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parent.parent
TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TEST_ACCOUNT_SID = "AC" + "1" * 32
PUBLIC_BASE = "https://peerline.test"


def require(condition: bool, reason: str) -> None:
    """Skip (on a user's machine) or fail (in CI, where nothing may be skipped) when missing."""
    if condition:
        return
    if os.environ.get("PEERLINE_REQUIRE_ALL"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


# Where the schema comes from, for the skip message: a clone does not have it.
XSD_WHERE = (
    "Twilio's TwiML schema is not in this repository. It is Twilio's published voice schema "
    "(twiml_v20100401_twilioRealtimeCallSchema.xsd with the .xsd files it imports), from "
    "https://github.com/TwilioDevEd/twiml-generator (folder twiml_generator/xsd, MIT license); the project keeps "
    "it, with an offline xml.xsd import and <Leave> allowed, in shared/twiml-xsd beside the checkout "
    "(see its README). Put that folder at ../shared/twiml-xsd or set TWIML_XSD_DIR to it"
)


def xsd_dir() -> Path | None:
    """Twilio's TwiML schema folder: TWIML_XSD_DIR, else ../shared/twiml-xsd beside the checkout."""
    candidates = [os.environ.get("TWIML_XSD_DIR"), str(REPO.parent / "shared" / "twiml-xsd")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "twiml_v20100401_twilioRealtimeCallSchema.xsd").exists():
            return Path(candidate)
    return None


_SCHEMA: etree.XMLSchema | None = None


def twiml_schema() -> etree.XMLSchema | None:
    """The parsed TwiML schema, or None where it is not available (a user's machine)."""
    global _SCHEMA  # a parse cache for the test process, not app state
    if _SCHEMA is None:
        folder = xsd_dir()
        if folder is None:
            if os.environ.get("PEERLINE_REQUIRE_ALL"):
                pytest.fail(f"required in CI: {XSD_WHERE}")
            return None
        _SCHEMA = etree.XMLSchema(etree.parse(str(folder / "twiml_v20100401_twilioRealtimeCallSchema.xsd")))
    return _SCHEMA


def parse_twiml(body: bytes) -> etree._Element:
    """Parse a TwiML document and validate it against Twilio's schema when available."""
    root = etree.fromstring(body)
    schema = twiml_schema()
    if schema is not None:
        schema.assertValid(root)
    assert root.tag == "Response"
    return root


def spoken(root: etree._Element) -> str:
    """All the text the caller hears from <Say> verbs, in order, as one string."""
    return " ".join(" ".join(say.itertext()).strip() for say in root.iter("Say"))


@contextmanager
def serving(wsgi_app: Any) -> Iterator[str]:
    """Serve a WSGI app over real HTTP (werkzeug, in a thread) while the block runs; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs while the block runs, in order (whitespace folded)."""
    ran: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        ran.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield ran
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def sign(url: str, params: dict[str, str], token: str = TEST_AUTH_TOKEN) -> str:
    """X-Twilio-Signature for a request."""
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class TestCaller:
    __test__ = False  # a helper, not a test class
    """Places a simulated call through the Flask test client, with signed Twilio requests.

    ``press``, ``say`` and ``silence`` answer the current <Gather>; ``follow`` takes the
    <Redirect>. Every TwiML document is validated against Twilio's schema.
    """

    client: Any
    number: str = "+15555550199"
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    token: str = TEST_AUTH_TOKEN
    twiml: etree._Element | None = None
    heard: list[str] = field(default_factory=list)
    signature_header: str = "X-Twilio-Signature"  # X-SignalWire-Signature for a SignalWire-style caller
    account_sid: str = TEST_ACCOUNT_SID

    def post(self, url: str, **form: str) -> etree._Element:
        """POST signed form data to an absolute or relative URL and parse the TwiML."""
        if url.startswith("/"):
            url = PUBLIC_BASE + url
        params = {"CallSid": self.call_sid, "From": self.number, "To": "+15005550006",
                  "AccountSid": self.account_sid, **form}
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = self.client.post(path, data=params, headers={self.signature_header: sign(url, params, self.token)})
        body = response.data
        response.close()  # as a WSGI server does once the answer is sent (work deferred to then runs now)
        assert response.status_code == 200, (response.status_code, body[:500])
        assert response.mimetype == "text/xml"
        self.twiml = parse_twiml(body)
        self.heard.append(spoken(self.twiml))
        return self.twiml

    def call(self) -> etree._Element:
        """Dial the line."""
        return self.post("/voice/incoming", CallStatus="ringing", Direction="inbound")

    @property
    def said(self) -> str:
        """What the caller heard in the last response."""
        assert self.twiml is not None
        return spoken(self.twiml)

    def gather(self) -> etree._Element:
        """The current <Gather>."""
        assert self.twiml is not None
        found = self.twiml.find("Gather")
        assert found is not None, f"no <Gather> in {etree.tostring(self.twiml)!r}"
        return found

    def press(self, digits: str) -> etree._Element:
        """Press keys at the current menu."""
        return self.post(self.gather().get("action"), Digits=digits)

    def say(self, words: str) -> etree._Element:
        """Answer the current menu by voice."""
        return self.post(self.gather().get("action"), SpeechResult=words, Confidence="0.9")

    def silence(self) -> etree._Element:
        """Say and press nothing until the gather times out."""
        return self.post(self.gather().get("action"))

    def follow(self) -> etree._Element:
        """Follow the <Redirect> of the current document."""
        assert self.twiml is not None
        redirect = self.twiml.find("Redirect")
        assert redirect is not None, f"no <Redirect> in {etree.tostring(self.twiml)!r}"
        return self.post(redirect.text)

    def to_menu(self) -> etree._Element:
        """Follow redirects until a <Gather> menu is reached."""
        while self.twiml is not None and self.twiml.find("Gather") is None:
            self.follow()
        assert self.twiml is not None
        return self.twiml
