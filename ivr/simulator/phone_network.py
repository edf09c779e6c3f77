"""A local server that speaks Twilio's REST API (the parts peerline uses).

It keeps every request it receives (method, path, form fields, auth), so tests can assert
exactly what would have been sent to Twilio, and it holds recordings and calls in memory so
whole calls with outbound legs run on one machine. Run it with ``peerline phone-network``;
the app reaches it through ``TWILIO_API_BASE_URL``.
"""
from __future__ import annotations

import base64
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

API = "/2010-04-01/Accounts/<account>"


@dataclass
class SentRequest:
    """One request the app made to the (fake) Twilio REST API."""

    method: str
    path: str
    form: dict[str, Any]
    auth: tuple[str, str] | None


@dataclass
class NetworkState:
    """What the phone network holds: requests, recordings, calls, messages."""

    requests: list[SentRequest] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_sid(self, prefix: str) -> str:
        """A Twilio-shaped SID (two letters and 32 hex digits)."""
        return prefix + uuid.uuid4().hex

    def add_recording(self, audio: bytes) -> str:
        """Store audio as if Twilio had recorded it; returns its RecordingSid."""
        sid = self.new_sid("RE")
        with self.lock:
            self.recordings[sid] = audio
        return sid


def _auth() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return (user, password)


def create_phone_network(state: NetworkState | None = None) -> Flask:
    """The WSGI app of the phone network; ``app.extensions['network']`` is its state."""
    app = Flask("peerline-phone-network")
    network = state or NetworkState()
    app.extensions["network"] = network

    @app.before_request
    def _keep() -> None:
        if request.path.startswith("/2010-04-01/"):
            network.requests.append(
                SentRequest(request.method, request.path, request.form.to_dict(flat=False), _auth())
            )

    @app.get(f"{API}/Recordings/<sid>.wav")
    def recording_audio(account: str, sid: str) -> Response:
        audio = network.recordings.get(sid)
        if audio is None:
            return jsonify(code=20404, message="The requested resource was not found", status=404), 404
        return Response(audio, mimetype="audio/x-wav")

    @app.delete(f"{API}/Recordings/<sid>.json")
    def recording_delete(account: str, sid: str) -> Response:
        with network.lock:
            found = network.recordings.pop(sid, None)
        if found is None:
            return jsonify(code=20404, message="The requested resource was not found", status=404), 404
        return Response(status=204)

    @app.post(f"{API}/Calls.json")
    def calls_create(account: str) -> Response:
        sid = network.new_sid("CA")
        call = {"sid": sid, "account_sid": account, "status": "queued", **request.form.to_dict(flat=True)}
        network.calls[sid] = call
        return jsonify(_call_json(call)), 201

    @app.post(f"{API}/Calls/<sid>.json")
    def calls_update(account: str, sid: str) -> Response:
        call = network.calls.get(sid)
        if call is None:
            return jsonify(code=20404, message="The requested resource was not found", status=404), 404
        call.update(request.form.to_dict(flat=True))
        if request.form.get("Status"):
            call["status"] = request.form["Status"]
        return jsonify(_call_json(call)), 200

    @app.post(f"{API}/Messages.json")
    def messages_create(account: str) -> Response:
        message = {"sid": network.new_sid("SM"), "account_sid": account, "status": "queued",
                   **request.form.to_dict(flat=True)}
        network.messages.append(message)
        return jsonify({"sid": message["sid"], "account_sid": account, "status": "queued",
                        "to": message.get("To"), "from": message.get("From"), "body": message.get("Body")}), 201

    @app.post("/_sim/recordings")
    def sim_add_recording() -> Response:
        """Simulator only: store uploaded audio as a recording and return its SID."""
        sid = network.add_recording(request.get_data())
        return jsonify(sid=sid)

    return app


def _call_json(call: dict[str, Any]) -> dict[str, Any]:
    return {"sid": call["sid"], "account_sid": call["account_sid"], "status": call["status"],
            "to": call.get("To"), "from": call.get("From")}
