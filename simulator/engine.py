"""A TwiML-following call leg: what Twilio does with the documents the app returns.

One :class:`Leg` is one side of a call (the caller dialling the line, or a peer's phone
that the network rings). It fetches TwiML through a :class:`Transport` (real HTTP with
httpx, or a Flask test client), signs every request like Twilio (``X-Twilio-Signature``
with the auth token, for the public URL), and carries out Say, Play, Pause, Gather,
Redirect, Record, Dial (Number, Conference), Enqueue (waitUrl loop, Leave) and Hangup.
An :class:`Actor` is the person on the leg: a typed script, a terminal, or a peer.

Between verbs the leg asks the phone network (:class:`HubClient`) about its call, so a REST
redirect (``Calls/<sid>.json`` with ``Url``) or hang-up (``Status=completed``) made by the
app reaches the leg wherever it is: in a menu, on hold, or in a conference.

Exceptions: :class:`~simulator.errors.SimulatorError` (and its
:class:`~simulator.errors.TransportError`) for what the simulator cannot go on with;
:class:`HangUp` ends a leg and :class:`Redirected` restarts it, both handled inside it.
"""
from __future__ import annotations

import io
import time
import uuid
import wave
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from lxml import etree
from twilio.request_validator import RequestValidator

from simulator.errors import SimulatorError, TransportError

API_VERSION = "2010-04-01"
WORDS_PER_S = 2.5  # rough speed of <Say>, used only when pacing output in real time
MAX_REDIRECTS_PER_S = 50  # a document that redirects to itself would otherwise spin forever


class HangUp(Exception):
    """This leg's call ended (the person hung up, the app hung up, or the network ended it)."""

    def __init__(self, status: str = "completed", by: str = "caller") -> None:
        super().__init__(status)
        self.status = status
        self.by = by


class Redirected(Exception):
    """The app redirected this live call (REST ``Calls`` update with ``Url`` or ``Twiml``)."""

    def __init__(self, url: str | None, method: str = "POST", twiml: str | None = None) -> None:
        super().__init__(url or "twiml")
        self.url = url
        self.method = method
        self.twiml = twiml


@dataclass
class Reply:
    """The app's answer to one webhook request."""

    status: int
    content_type: str
    body: bytes


class Transport(Protocol):
    """How the leg reaches the app; ``url`` is the public (signed) URL."""

    def request(self, method: str, url: str, params: dict[str, str], signature: str) -> Reply:
        """Send one webhook request."""
        ...


class HttpTransport:
    """Real HTTP with httpx; ``rewrite`` maps a public URL prefix to where the app really listens."""

    def __init__(self, rewrite: dict[str, str] | None = None, timeout: float = 30.0,
                 signature_header: str = "X-Twilio-Signature") -> None:
        self.rewrite = dict(rewrite or {})
        self.client = httpx.Client(timeout=timeout)
        self.signature_header = signature_header  # X-SignalWire-Signature when playing SignalWire

    def target(self, url: str) -> str:
        """The URL actually requested for a public URL."""
        for public, real in self.rewrite.items():
            if url.startswith(public):
                return real + url[len(public):]
        return url

    def request(self, method: str, url: str, params: dict[str, str], signature: str) -> Reply:
        """Send one webhook request over HTTP."""
        headers = {self.signature_header: signature, "User-Agent": "TwilioProxy/1.1 (peerline simulator)"}
        try:
            if method == "GET":
                response = self.client.get(self.target(url), headers=headers)
            else:
                response = self.client.post(self.target(url), data=params, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {url}: {exc}") from exc
        return Reply(response.status_code, response.headers.get("content-type", ""), response.content)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()


class FlaskTransport:
    """A Flask test client as the transport (no sockets); only the path and query are used."""

    def __init__(self, client: Any, signature_header: str = "X-Twilio-Signature") -> None:
        self.client = client
        self.signature_header = signature_header

    def request(self, method: str, url: str, params: dict[str, str], signature: str) -> Reply:
        """Send one webhook request through the test client."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {self.signature_header: signature}
        if method == "GET":
            response = self.client.get(path, headers=headers)
        else:
            response = self.client.post(path, data=params, headers=headers)
        return Reply(response.status_code, response.content_type or "", response.data)


class HubClient:
    """The simulator's side door into the phone network (the ``/_sim/...`` endpoints)."""

    def __init__(self, base_url: str, timeout: float = 10.0, want_events: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.want_events = want_events
        self.events_seen = 0

    def _call(self, method: str, path: str, **json: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, json=json or None)
        except httpx.HTTPError as exc:
            raise SimulatorError(f"phone network at {self.base_url} is not reachable ({exc}); "
                                 "start it with `peerline phone-network` (or `peerline up`)") from exc
        if response.status_code >= 400:
            raise SimulatorError(f"phone network refused {method} {path}: HTTP {response.status_code} "
                                 f"{response.text[:200]}")
        return dict(response.json())

    def register(self, from_: str, to: str, call_sid: str | None = None) -> str:
        """Tell the network about an inbound call; returns its CallSid."""
        return str(self._call("POST", "/_sim/calls", From=from_, To=to, CallSid=call_sid)["sid"])

    def state(self, sid: str) -> dict[str, Any]:
        """The call as the network sees it (status, pending redirect, queue, conference) and new events."""
        query = f"?since={self.events_seen}" if self.want_events else ""
        data = self._call("GET", f"/_sim/calls/{sid}{query}")
        self.events_seen = int(data.get("next_event", self.events_seen))
        return data

    def act(self, sid: str, op: str, **fields: Any) -> dict[str, Any]:
        """Tell the network what the leg did: enqueue, dequeue, join, leave, end, dial (a number)."""
        return self._call("POST", f"/_sim/calls/{sid}/{op}", **fields)

    def upload_recording(self, audio: bytes, call_sid: str | None = None, duration_s: int | None = None) -> str:
        """Store audio on the network as a recording of ``call_sid``; returns its RecordingSid."""
        # The network lists it like Twilio, with its call and duration (the reconciler reads them).
        params = {k: v for k, v in (("CallSid", call_sid), ("Duration", duration_s)) if v is not None}
        try:
            response = self.client.post("/_sim/recordings", content=audio, params=params,
                                        headers={"Content-Type": "audio/x-wav"})
        except httpx.HTTPError as exc:
            raise SimulatorError(f"phone network at {self.base_url} is not reachable ({exc})") from exc
        response.raise_for_status()
        return str(response.json()["sid"])

    def settings(self, **values: Any) -> dict[str, Any]:
        """Change network-wide behaviour (``peer_answers``, ``ring_s``)."""
        return self._call("POST", "/_sim/settings", **values)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()


@dataclass
class Answer:
    """What a person did at a <Gather>: keys or words."""

    digits: str | None = None
    speech: str | None = None


class Actor(Protocol):
    """The person on a leg."""

    def gather(self, heard: str, input_types: str, on_hold: bool) -> Answer | None:
        """Answer a <Gather> (None: press and say nothing); raise HangUp to hang up."""
        ...

    def record(self) -> bytes | None:
        """Audio to leave at a <Record> (WAV bytes), or None to stay silent."""
        ...

    def stay(self, what: str, seconds: float) -> bool:
        """While connected or on hold, wait up to ``seconds``; False means hang up now."""
        ...


class ScriptActor:
    """Answers gathers from a list ("1", "*", "talk to someone", "" for silence).

    When the list runs out the caller hangs up at the next menu, except while on hold, where
    they wait silently; once connected they talk ``talk_s`` seconds and hang up.
    """

    def __init__(self, items: list[str], record_file: bytes | None = None, talk_s: float = 2.0,
                 hold_s: float = 60.0) -> None:
        self.items = list(items)
        self.audio = record_file
        self.talk_s = talk_s
        self.hold_s = hold_s
        self._since: dict[str, float] = {}

    def gather(self, heard: str, input_types: str, on_hold: bool) -> Answer | None:
        """Next scripted answer; hang up when the script is used up (wait when on hold)."""
        if not self.items:
            if on_hold:
                return None
            raise HangUp(by="caller")
        return parse_answer(self.items.pop(0))

    def record(self) -> bytes | None:
        """The --record file, once."""
        audio, self.audio = self.audio, None
        return audio

    def stay(self, what: str, seconds: float) -> bool:
        """Talk (or hold) for a fixed time, then hang up."""
        started = self._since.setdefault(what, time.monotonic())
        limit = self.talk_s if what == "conference" else self.hold_s
        if time.monotonic() - started >= limit:
            return False
        time.sleep(min(seconds, max(0.0, limit - (time.monotonic() - started))))
        return True


# A scripted peer key that hangs up the conversation (``--peer-keys "hangup"``): the peer ends the call first.
HANG_UP = "hangup"


class PeerActor:
    """A peer's phone: ``accept`` (and ``unknown``, a person who is quiet at first) presses 1 at the
    first menu; ``drop`` presses 1 and then its line drops before the room; ``ignore``, machines, a
    fax and ``unknown-silent`` press nothing.

    A peer who accepts may be scripted further (``keys``, taken from ``keys_source`` once they are
    in the call, so the peer who won the caller gets them): a ``*`` is pressed in the call after
    STAR_AFTER_S with someone else in the room (with ``hangupOnStar`` it opens the peer's in-call
    menu; a callback's peer waits in the room for the caller first), every other key answers
    the next menu.
    """

    STAR_AFTER_S = 1.0

    def __init__(self, mode: str, max_s: float = 600.0, talk_s: float | None = None,
                 keys_source: Callable[[], list[str]] | None = None) -> None:
        self.mode = mode
        self.max_s = max_s
        self.talk_s = talk_s  # hang up after this long in a conversation (None: stay until it ends)
        self._talking_since: float | None = None
        self.pressed = False
        self.started = time.monotonic()
        self.drops_before_room = mode == "drop"  # the line drops on the way into a conference
        self.keys_source = keys_source
        self.keys: list[str] = []
        self._in_call_since: float | None = None

    def gather(self, heard: str, input_types: str, on_hold: bool) -> Answer | None:
        """Press 1 at the first gather when accepting (or dropping later), then the scripted keys; otherwise stay silent."""
        if self.mode in ("accept", "unknown", "drop") and not self.pressed:
            self.pressed = True
            return Answer(digits="1")
        if self.keys and self.keys[0] not in ("*", HANG_UP):
            return parse_answer(self.keys.pop(0))
        return None

    def press_star(self, company: bool = True) -> bool:
        """In a call: press ``*`` now when it is the next scripted key and the call (with ``company``, someone
        else in the room) has gone on a moment."""
        self._take_keys()
        if not self.keys or self.keys[0] != "*" or not company:
            if not self.keys or self.keys[0] != HANG_UP:
                self._in_call_since = None
            return False
        return self._key_is_due()

    def _key_is_due(self) -> bool:
        """Take the next scripted key once the call has gone on a moment (STAR_AFTER_S) in company."""
        self._in_call_since = self._in_call_since or time.monotonic()
        if time.monotonic() - self._in_call_since < self.STAR_AFTER_S:
            return False
        self.keys.pop(0)
        self._in_call_since = None
        return True

    def _take_keys(self) -> None:
        if self.keys_source is not None:
            # Taken by the first peer who is in a call (the one who won the caller), once.
            self.keys, self.keys_source = self.keys_source(), None

    def hangs_up(self, company: bool = True) -> bool:
        """In a call: hang up now when ``hangup`` is the next scripted key and the call (with ``company``,
        someone else in the room) has gone on a moment, so the peer ends the conversation first."""
        self._take_keys()
        if not self.keys or self.keys[0] != HANG_UP or not company:
            return False
        return self._key_is_due()

    def record(self) -> bytes | None:
        """A peer never leaves a recording."""
        return None

    def stay(self, what: str, seconds: float) -> bool:
        """Stay connected until the conference ends, or ``talk_s`` (capped, so a leg never outlives a test run)."""
        if time.monotonic() - self.started > self.max_s:
            return False
        if what == "conference" and self.talk_s is not None:
            self._talking_since = self._talking_since or time.monotonic()
            if time.monotonic() - self._talking_since >= self.talk_s:
                return False
        time.sleep(seconds)
        return True


def parse_answer(item: str) -> Answer | None:
    """A typed answer: keys (0-9 * #) are digits, anything else is speech, blank is silence."""
    item = item.strip()
    if not item or item in ("-", "silence"):
        return None
    if all(ch in "0123456789*#w" for ch in item):
        return Answer(digits=item.replace("w", ""))
    return Answer(speech=item)


@dataclass
class _Request:
    url: str | None
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)
    twiml: str | None = None


class _Left(Exception):
    """<Leave> inside a queue's wait document."""


class Leg:
    """One side of a call, following the app's TwiML like Twilio does."""

    def __init__(
        self,
        transport: Transport,
        token: str,
        call_sid: str,
        from_: str,
        to: str,
        actor: Actor,
        *,
        account_sid: str = "AC" + "0" * 32,
        direction: str = "inbound",
        hub: HubClient | None = None,
        network_url: str | None = None,
        out: Callable[[str], None] = lambda line: None,
        pace: float = 0.0,
        max_s: float = 300.0,
        poll_s: float = 0.1,
        hold_min_s: float = 0.2,
        status_callback: str | None = None,
        status_events: tuple[str, ...] = ("completed",),
        extra: dict[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.validator = RequestValidator(token)
        self.call_sid = call_sid
        self.from_ = from_
        self.to = to
        self.actor = actor
        self.account_sid = account_sid
        self.direction = direction
        self.hub = hub
        self.network_url = (network_url or (hub.base_url if hub else "")).rstrip("/")
        self.out = out
        self.pace = pace
        self.max_s = max_s
        self.poll_s = poll_s
        self.hold_min_s = hold_min_s  # at least this long per waitUrl round, so holding never spins
        self.status_callback = status_callback
        self.status_events = status_events
        self.extra = dict(extra or {})
        self.heard: list[str] = []  # every line said or played to this leg, in order
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, url, params) sent
        self.status = "in-progress"
        self.started = time.monotonic()
        self._redirect_seq = 0
        self._pending_keys = ""
        self._last: dict[str, Any] = {}  # the network's last answer about this call
        self._sequence = 0  # status callbacks sent for this call (Twilio's SequenceNumber counts from 0)

    # Requests -------------------------------------------------------------------------

    def params(self, **more: str) -> dict[str, str]:
        """Twilio's standard request parameters plus ``more``."""
        base = {"CallSid": self.call_sid, "AccountSid": self.account_sid, "From": self.from_, "To": self.to,
                "Caller": self.from_, "Called": self.to, "CallStatus": self.status, "Direction": self.direction,
                "ApiVersion": API_VERSION, **self.extra}
        base.update({k: v for k, v in more.items() if v is not None})
        return base

    def send(self, url: str, method: str = "POST", **more: str) -> Reply:
        """Sign and send one request (GET puts the parameters in the query, as Twilio does)."""
        params = self.params(**more)
        method = (method or "POST").upper()
        if method == "GET":
            url = url + ("&" if "?" in url else "?") + urlencode(params)
            signature = self.validator.compute_signature(url, {})
        else:
            signature = self.validator.compute_signature(url, params)
        self.requests.append((method, url, params))
        return self.transport.request(method, url, params if method != "GET" else {}, signature)

    def fetch(self, url: str, method: str = "POST", **more: str) -> etree._Element:
        """Request a TwiML document and parse it."""
        reply = self.send(url, method, **more)
        if reply.status != 200:
            raise TransportError(f"{method} {url}: HTTP {reply.status}: {reply.body[:300]!r}")
        if "xml" not in reply.content_type:
            raise TransportError(f"{method} {url}: expected TwiML, got {reply.content_type!r}")
        try:
            root = etree.fromstring(reply.body)
        except etree.XMLSyntaxError as exc:
            raise TransportError(f"{method} {url}: invalid TwiML: {exc}") from exc
        if root.tag != "Response":
            raise TransportError(f"{method} {url}: TwiML root is <{root.tag}>, not <Response>")
        return root

    def next_sequence(self) -> str:
        """The ``SequenceNumber`` of this call's next status callback: 0, 1, 2... in the order sent."""
        number, self._sequence = self._sequence, self._sequence + 1
        return str(number)

    def notify(self, url: str, method: str = "POST", **more: str) -> None:
        """A request whose answer Twilio ignores (status callbacks, a left queue's action)."""
        try:
            self.send(url, method, **more)
        except TransportError as exc:
            self.out(f"[network] {url} failed: {exc}")

    # The call -------------------------------------------------------------------------

    def run(self, url: str | None, method: str = "POST", twiml: str | None = None) -> str:
        """Follow the call from ``url`` (or inline ``twiml``) until it ends; returns the final status."""
        request: _Request | None = _Request(url, method, twiml=twiml)
        current = url or ""
        loops: list[float] = []
        try:
            while request is not None:
                loops = [t for t in loops if time.monotonic() - t < 1.0] + [time.monotonic()]
                if len(loops) > MAX_REDIRECTS_PER_S:
                    raise SimulatorError(f"more than {MAX_REDIRECTS_PER_S} documents a second (a redirect loop?)")
                try:
                    if request.twiml is not None:
                        root = etree.fromstring(request.twiml.encode())
                        current = request.url or current
                    else:
                        assert request.url is not None
                        current = request.url
                        root = self.fetch(request.url, request.method, **request.params)
                    request = self.execute(list(root), current)
                except Redirected as exc:
                    self.out("[the line moves your call]" if self.direction == "inbound" else "[redirected]")
                    request = _Request(exc.url, exc.method, twiml=exc.twiml)
        except HangUp as exc:
            self.status = exc.status
            if exc.by == "caller":
                self.out("[you hang up]")
            elif exc.by == "app":
                self.out("[the line hangs up]")
            else:
                self.out("[the call ends]")
        else:
            self.out("[the line hangs up]")
            self.status = "completed"
        if self.status == "in-progress":
            self.status = "completed"
        self.finish()
        return self.status

    def finish(self) -> None:
        """The call ended: tell the network and post the status callback."""
        duration = str(int(round(time.monotonic() - self.started)))
        if self.hub is not None:
            try:
                self.hub.act(self.call_sid, "end", status=self.status, duration=duration)
            except SimulatorError as exc:
                self.out(f"[network] {exc}")
        if self.status_callback and "completed" in self.status_events:
            self.notify(self.status_callback, "POST", CallStatus=self.status, CallDuration=duration,
                        Duration=str(max(1, (int(duration) + 59) // 60)), CallbackSource="call-progress-events",
                        SequenceNumber=self.next_sequence(), Timestamp=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()))

    def check(self) -> None:
        """Ask the network whether the app redirected or ended this call; show network events."""
        if time.monotonic() - self.started > self.max_s:
            self.out(f"[the simulator ends the call after {self.max_s:.0f} s]")
            raise HangUp(by="caller")
        if self.hub is None:
            return
        state = self._last = self.hub.state(self.call_sid)
        for line in state.get("events", []):
            self.out(f"[network] {line}")
        call = state.get("call", {})
        if call.get("status") in ("completed", "canceled", "failed", "busy", "no-answer"):
            raise HangUp(status="completed", by="app")
        seq = int(call.get("redirect_seq", 0))
        if seq > self._redirect_seq:
            self._redirect_seq = seq
            redirect = call.get("redirect") or {}
            raise Redirected(redirect.get("url"), (redirect.get("method") or "POST").upper(), redirect.get("twiml"))

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of call time pass (scaled by pace), checking the network meanwhile."""
        remaining = seconds * self.pace
        self.check()
        while remaining > 0:
            step = min(remaining, max(self.poll_s, 0.05))
            time.sleep(step)
            remaining -= step
            self.check()

    # Verbs ----------------------------------------------------------------------------

    def execute(self, verbs: list[etree._Element], doc_url: str, on_hold: bool = False) -> _Request | None:
        """Carry out verbs in order; returns the next document to fetch, or None at the end."""
        for verb in verbs:
            if not isinstance(verb.tag, str):
                continue  # comments
            self.check()
            tag = verb.tag
            if tag in ("Say", "Play", "Pause"):
                self.speak(verb)
            elif tag == "Gather":
                nxt = self.gather(verb, doc_url, on_hold)
                if nxt is not None:
                    return nxt
            elif tag == "Redirect":
                return _Request(urljoin(doc_url, (verb.text or "").strip()), verb.get("method", "POST"))
            elif tag in ("Hangup", "Reject"):
                raise HangUp(status="completed", by="app")
            elif tag == "Leave":
                if on_hold:
                    raise _Left()
            elif tag == "Record":
                nxt = self.record(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif tag == "Dial":
                nxt = self.dial(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif tag == "Enqueue":
                nxt = self.enqueue(verb, doc_url)
                if nxt is not None:
                    return nxt
            else:
                self.out(f"[the simulator skips <{tag}>]")
        return None

    def speak(self, verb: etree._Element) -> None:
        """<Say>, <Play>, <Pause>: what the person hears."""
        if verb.tag == "Say":
            text = " ".join(" ".join(verb.itertext()).split())
            self.heard.append(text)
            self.out(f'  "{text}"')
            self.wait(len(text.split()) / WORDS_PER_S)
        elif verb.tag == "Play":
            url = (verb.text or "").strip()
            self.heard.append(f"[audio {url}]")
            self.out(f"  [plays audio {url}]" if url else "  [plays]")
            self.wait(5)
        else:
            length = float(verb.get("length", "1"))
            self.out(f"  [silence {length:g} s]")
            self.wait(length)

    def gather(self, verb: etree._Element, doc_url: str, on_hold: bool) -> _Request | None:
        """<Gather>: say the nested prompts, take keys or speech, post them to ``action``."""
        spoken_from = len(self.heard)
        for child in verb:
            if isinstance(child.tag, str) and child.tag in ("Say", "Play", "Pause"):
                self.speak(child)
        heard = " ".join(self.heard[spoken_from:])
        input_types = verb.get("input", "dtmf")
        answer: Answer | None
        if self._pending_keys:
            answer = Answer(digits=self._pending_keys)
            self._pending_keys = ""
        else:
            answer = self.actor.gather(heard, input_types, on_hold)
        self.check()  # the app may have moved the call while the person was thinking
        action = urljoin(doc_url, verb.get("action") or doc_url)
        method = verb.get("method", "POST")
        if answer is not None and answer.digits:
            digits = answer.digits
            finish = verb.get("finishOnKey", "#")
            num = int(verb.get("numDigits", "0") or 0)
            if finish and finish in digits and (not num or digits.index(finish) < num):
                digits = digits[:digits.index(finish)]
            elif num and len(digits) > num:
                digits, self._pending_keys = digits[:num], digits[num:]
            if "dtmf" not in input_types:
                self.out("  [keys are not listened to here]")
                answer = None
            else:
                self.out(f"> you press {digits or answer.digits}")
                return _Request(action, method, {"Digits": digits or answer.digits or ""})
        if answer is not None and answer.speech:
            if "speech" not in input_types:
                self.out("  [speech is not listened to here]")
            else:
                self.out(f'> you say "{answer.speech}"')
                return _Request(action, method, {"SpeechResult": answer.speech, "Confidence": "0.92"})
        self.out("> (you say nothing)")
        if verb.get("actionOnEmptyResult") == "true":
            return _Request(action, method, {})
        return None

    def record(self, verb: etree._Element, doc_url: str) -> _Request | None:
        """<Record>: upload the person's audio to the network, then post the action and status callback."""
        if verb.get("playBeep", "true") != "false":
            self.out("  [beep]")
        audio = self.actor.record()
        if audio is None:
            self.out("> (you record nothing)")
            return None  # Twilio falls through to the next verb when nothing was recorded
        if self.hub is None:
            raise SimulatorError("recording needs the phone network (--network)")
        duration = str(max(1, int(round(wav_seconds(audio)))))
        sid = self.hub.upload_recording(audio, call_sid=self.call_sid, duration_s=int(duration))
        recording_url = f"{self.network_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}"
        self.out(f"> you leave a {duration} s message, then press #")
        action = urljoin(doc_url, verb.get("action") or doc_url)
        reply = self.fetch(action, verb.get("method", "POST"), RecordingUrl=recording_url, RecordingSid=sid,
                           RecordingDuration=duration, Digits="#")
        callback = verb.get("recordingStatusCallback")
        if callback:
            events = (verb.get("recordingStatusCallbackEvent") or "completed").replace(",", " ").split()
            if "completed" in events:
                self.notify(urljoin(doc_url, callback), verb.get("recordingStatusCallbackMethod", "POST"),
                            RecordingSid=sid, RecordingUrl=recording_url, RecordingStatus="completed",
                            RecordingDuration=duration, RecordingChannels="1", RecordingSource="RecordVerb",
                            RecordingStartTime=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                            ErrorCode="0")
        return _Request(action, twiml=etree.tostring(reply).decode())

    def dial(self, verb: etree._Element, doc_url: str) -> _Request | None:
        """<Dial>: a <Conference> joins the network's room; a <Number> ends as the network says that
        phone answers (busy, no-answer or failed at once; else connected, and over after a moment)."""
        action = verb.get("action")
        method = verb.get("method", "POST")
        conference = verb.find("Conference")
        # The dialled leg's id has the shape of this call's own (Twilio's CA + hex, or SignalWire's UUID).
        dial_sid = new_call_sid("signalwire" if "-" in self.call_sid else "twilio")
        started = time.monotonic()
        if conference is not None and getattr(self.actor, "drops_before_room", False):
            # An actor that drops before the room (a lost line, a hang-up during the last words).
            self.out("[the phone drops before the conversation]")
            raise HangUp(by="caller")
        if conference is not None:
            try:
                status = self.conference(conference, hangup_on_star=verb.get("hangupOnStar") == "true")
            except HangUp as ended:
                if ended.by == "caller" or not action:
                    raise
                # The call was ended in the room (the network or the REST API): Twilio still tells the app
                # how the Dial ended (CallStatus completed), as it tells an <Enqueue>'s action.
                self.status = "completed"
                self.notify(urljoin(doc_url, action), method, DialCallStatus="completed", DialCallSid=dial_sid,
                            DialCallDuration=str(int(time.monotonic() - started)))
                raise
        else:
            number = verb.find("Number")
            target = (number.text if number is not None else verb.text or "").strip()
            result = self.hub.act(self.call_sid, "dial", number=target) if self.hub is not None else {}
            status = str(result.get("status") or "completed")
            if status == "completed":
                self.out(f"  [ringing {target} ... connected; the simulator ends that call after a moment]")
                self.wait(2)
            else:
                # Twilio rings a number that never answers for the Dial's timeout (default 30 s).
                self.out(f"  [ringing {target} ... {status}]")
                self.wait(float(verb.get("timeout", "30")) if status == "no-answer" else 0)
        if status == "hangup":
            self.status = "completed"  # Twilio's request says the call is over (CallStatus=completed)
            if action:  # Twilio still tells the app how the Dial ended, and ignores the answer
                self.notify(urljoin(doc_url, action), method, DialCallStatus="completed", DialCallSid=dial_sid,
                            DialCallDuration=str(int(time.monotonic() - started)))
            raise HangUp(by="caller")
        if not action:
            return None
        talked = int(time.monotonic() - started) if status == "completed" else 0  # nobody answered: no talk time
        return _Request(urljoin(doc_url, action), method,
                        {"DialCallStatus": status, "DialCallSid": dial_sid, "DialCallDuration": str(talked)})

    def conference(self, noun: etree._Element, hangup_on_star: bool = False) -> str:
        """Stay in a conference until it ends ("completed"), this person hangs up ("hangup"), or presses
        ``*`` under ``hangupOnStar`` ("completed": the Dial's action goes on). Announcements made to
        this participant (``AnnounceUrl``) are fetched and heard."""
        if self.hub is None:
            raise SimulatorError("a <Conference> needs the phone network (--network)")
        name = (noun.text or "").strip()
        end_on_exit = noun.get("endConferenceOnExit") == "true"
        self.hub.act(self.call_sid, "join", conference=name, end_on_exit=end_on_exit,
                     muted=noun.get("muted") == "true", coach=noun.get("coach"))
        coach = noun.get("coach")
        self.out("  [connected: you are in the conversation]" if self.direction == "inbound"
                 else "  [connected: coaching the peer; only they hear you]" if coach
                 else "  [connected, muted: you listen]" if noun.get("muted") == "true"
                 else "  [connected to the caller]")
        announced = int(self._last.get("call", {}).get("announce_seq") or 0)
        press_star = getattr(self.actor, "press_star", None)
        hangs_up = getattr(self.actor, "hangs_up", None)
        try:
            while True:
                self.check()
                call = self._last.get("call", {})
                if call.get("conference") != name:
                    self.out("  [the other side hung up]")
                    return "completed"
                if int(call.get("announce_seq") or 0) > announced:
                    announced = int(call.get("announce_seq") or 0)
                    self.announcement(call.get("announce") or {})
                if hangup_on_star and press_star is not None and press_star(int(call.get("company") or 0) > 0):
                    self.out("> you press *")
                    self.hub.act(self.call_sid, "leave")
                    return "completed"
                if hangs_up is not None and hangs_up(int(call.get("company") or 0) > 0):
                    self.out("> you hang up")
                    self.hub.act(self.call_sid, "leave")
                    return "hangup"
                if not self.actor.stay("conference", max(self.poll_s, 0.05)):
                    self.hub.act(self.call_sid, "leave")
                    return "hangup"
        except Redirected:
            raise
        except HangUp:
            self.hub.act(self.call_sid, "leave")
            raise

    def announcement(self, announce: dict[str, Any]) -> None:
        """Hear an announcement (a participant's ``AnnounceUrl``): its Say, Play and Pause verbs, nothing else."""
        url = announce.get("url")
        if not url:
            return
        try:
            root = self.fetch(url, (announce.get("method") or "POST").upper())
        except TransportError as exc:
            self.out(f"[network] announcement {url} failed: {exc}")
            return
        for verb in root:
            if isinstance(verb.tag, str) and verb.tag in ("Say", "Play", "Pause"):
                self.speak(verb)

    def enqueue(self, verb: etree._Element, doc_url: str) -> _Request | None:
        """<Enqueue>: hold, looping over waitUrl, until <Leave>, a redirect, or a hang-up."""
        if self.hub is None:
            raise SimulatorError("<Enqueue> needs the phone network (--network)")
        name = (verb.text or "").strip()
        action = verb.get("action")
        method = verb.get("method", "POST")
        wait_url = verb.get("waitUrl")
        wait_method = verb.get("waitUrlMethod", "POST")
        joined = self.hub.act(self.call_sid, "enqueue", queue=name)
        queue_sid = str(joined["queue_sid"])
        self.out(f"  [on hold in queue {name!r}]")

        def left(result: str) -> dict[str, str]:
            info = self.hub.act(self.call_sid, "dequeue") if self.hub else {}
            return {"QueueResult": result, "QueueSid": queue_sid, "QueueTime": str(info.get("queue_time", 0))}

        try:
            while True:
                self.check()
                round_started = time.monotonic()
                if wait_url:
                    info = self._last.get("queue") or {}
                    params = {"QueueSid": queue_sid, "QueuePosition": str(info.get("position", 1)),
                              "QueueTime": str(info.get("time", 0)), "AvgQueueTime": str(info.get("avg", 0)),
                              "CurrentQueueSize": str(info.get("size", 1))}
                    self.hold(_Request(urljoin(doc_url, wait_url), wait_method, params))
                else:
                    self.out("  [hold music]")
                rest = self.hold_min_s - (time.monotonic() - round_started)
                if not self.actor.stay("hold", max(rest, 0.05)):
                    raise HangUp(by="caller")
        except _Left:
            fields = left("leave")
            self.out("  [you leave the queue]")
            if not action:
                return None
            return _Request(urljoin(doc_url, action), method, fields)
        except Redirected:
            fields = left("redirected")
            if action:
                self.notify(urljoin(doc_url, action), method, **fields)
            raise
        except HangUp:
            fields = left("hangup")
            if action:
                self.notify(urljoin(doc_url, action), method, **fields)
            raise

    def hold(self, request: _Request) -> None:
        """Play one waitUrl document (and what its <Gather> or <Redirect> leads to) while on hold."""
        hops = 0
        next_request: _Request | None = request
        while next_request is not None and hops < 10:
            hops += 1
            assert next_request.url is not None
            root = self.fetch(next_request.url, next_request.method, **next_request.params)
            next_request = self.execute(list(root), next_request.url, on_hold=True)


def wav_seconds(audio: bytes) -> float:
    """Length of WAV audio in seconds (0 when it is not a WAV file)."""
    try:
        with wave.open(io.BytesIO(audio), "rb") as fh:
            return fh.getnframes() / float(fh.getframerate())
    except (wave.Error, EOFError):
        return 0.0


def new_call_sid(provider: str = "twilio") -> str:
    """A call id as ``provider`` makes them: Twilio's ``CA`` + 32 hex digits, or a UUID (SignalWire)."""
    return str(uuid.uuid4()) if provider == "signalwire" else "CA" + uuid.uuid4().hex
