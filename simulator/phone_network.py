"""A local server that speaks Twilio's REST API (the parts peerline uses).

It keeps every request it receives (method, path, form fields, auth), so tests can assert
exactly what would have been sent to Twilio, and it holds recordings and calls in memory so
whole calls with outbound legs run on one machine. Run it with ``peerline phone-network``;
the app reaches it through ``TWILIO_API_BASE_URL``.

It is also the hub of every simulated call:

- Outbound legs (``Calls.json``) ring a simulated phone in a thread of this server when
  ``peer_answers`` is set (``peerline phone-network`` sets it; the test fixture leaves it
  off until a test asks): ``accept`` answers and presses 1 at the whisper's <Gather>,
  ``ignore`` answers and presses nothing, ``voicemail`` (and ``-silence``, ``-other``) is a
  machine, ``fax`` a fax, ``unknown`` a person detection cannot classify (``AnsweredBy`` as Twilio
  documents it for the ``MachineDetection`` mode asked), ``no-answer``, ``busy`` and ``failed``
  never answer, and Twilio refuses to place a call to a ``refused`` phone (error 21211). The
  call's ``Timeout`` is honoured. Status callbacks follow Twilio: the requested
  ``StatusCallbackEvent`` events, and the final status, with a ``SequenceNumber`` per call.
- A REST update follows Twilio's Call resource: ``Status=canceled`` ends a queued or ringing
  call and leaves a call in progress alone; ``Status=completed`` ends either; a new ``Url`` or
  ``Twiml`` redirects a call in progress, is what a queued or ringing call runs when answered,
  and is refused for a call that is over (21220); an unknown call is 20404.
- A caller's ``<Dial><Number>`` ends as that number's phone answers when it is set in ``answers``
  (``busy``, ``no-answer``, ``failed``, else ``completed``), so the app's Dial ``action`` hears
  each outcome.
- It holds per-call state: queue membership (position, time, average wait), conference
  membership (``endConferenceOnExit`` ends the room for the others), and pending redirects.
  Legs learn about REST changes by polling ``GET /_sim/calls/<sid>`` between verbs: the caller
  simulator (``peerline call``) in its own process, the outbound legs here.

Simulator-only endpoints (never on Twilio): ``POST /_sim/calls`` (an inbound call begins),
``GET /_sim/calls/<sid>?since=N`` (its state, plus network events from N on),
``POST /_sim/calls/<sid>/{enqueue,dequeue,join,leave,end,dial}``, ``POST /_sim/recordings?CallSid=..&Duration=..``
(upload audio recorded during a call, get a RecordingSid), ``POST /_sim/settings``
(``peer_answers``, ``answers`` per number, ``ring_s``, ``ring_after`` per number, ``pace``).
``NetworkState.fail_next`` makes Twilio refuse the next matching request (a 500, or any error).

Conferences and their participants follow Twilio's Participants API: ``GET .../Conferences.json``
(``FriendlyName``, ``Status``), ``POST .../Conferences/<sid or name>/Participants.json`` (dials ``To``
from ``From`` into the room: ``Muted``, ``Coaching`` with ``CallSidToCoach``, ``Beep``,
``EndConferenceOnExit``, ``StatusCallback`` with the call's progress events) and
``POST .../Conferences/<sid>/Participants/<CallSid>.json`` (``Muted``, ``Coaching``, ``Hold``,
``AnnounceUrl``: the announcement is fetched and heard by that participant only). A ``<Dial
hangupOnStar="true">`` leg leaves its conference when its person presses ``*`` and goes on at the
Dial's ``action``; ``peer_keys`` (``/_sim/settings``) scripts those keys for the next peer who accepts.

Recordings are listed like Twilio lists them (``GET .../Recordings.json``): newest first, in
pages (``PageSize``, default 50; ``next_page_uri`` to the next one), filtered by ``CallSid``
and ``DateCreated`` in Twilio's three forms (``DateCreated=``, ``DateCreated<=``,
``DateCreated>=``) with a GMT date (the whole day) or a moment (``YYYY-MM-DDTHH:MM:SSZ``).
"""
from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Callable
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from flask import Flask, Response, jsonify, request

from simulator.legs import ring
from simulator.network_state import ENDED, PEER_MODES, NetworkState, RecordingMeta, SentRequest, dial_result

API = "/2010-04-01/Accounts/<account>"

# Re-exported: tests, bench and the CLI build a network with
# ``from simulator.phone_network import NetworkState, create_phone_network``.
__all__ = ["API", "ENDED", "PEER_MODES", "NetworkState", "SentRequest", "create_phone_network"]


def _auth() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return (user, password)


def _not_found() -> tuple[Response, int]:
    return jsonify(code=20404, message="The requested resource was not found", status=404), 404


def create_phone_network(state: NetworkState | None = None) -> Flask:
    """The WSGI app of the phone network; ``app.extensions['network']`` is its state."""
    app = Flask("peerline-phone-network")
    network = state or NetworkState()
    app.extensions["network"] = network

    # SignalWire's compatibility API lives under /api/laml: served there when the network plays SignalWire.
    app.wsgi_app = _LamlPrefix(app.wsgi_app, network)  # type: ignore[method-assign]

    @app.before_request
    def _keep() -> tuple[Response, int] | None:
        if request.path.startswith("/2010-04-01/"):
            network.requests.append(
                SentRequest(request.method, request.script_root + request.path, request.form.to_dict(flat=False),
                            _auth(), request.args.to_dict(flat=False))
            )
            fault = network.take_fault(request.method, request.path)
            if fault is not None:  # a refusal a test planned (NetworkState.fail_next)
                status, code, message = fault
                return jsonify(code=code, message=message, status=status), status
        return None

    @app.get(f"{API}/Recordings/<sid>.wav")
    def recording_audio(account: str, sid: str) -> Response | tuple[Response, int]:
        """GET a recording's WAV audio, as Twilio serves it."""
        audio = network.recordings.get(sid)
        if audio is None:
            return _not_found()
        return Response(audio, mimetype="audio/x-wav")

    @app.delete(f"{API}/Recordings/<sid>.json")
    def recording_delete(account: str, sid: str) -> Response | tuple[Response, int]:
        """DELETE a recording (204), or 404 when it is already gone."""
        if not network.delete_recording(sid):
            return _not_found()
        return Response(status=204)

    @app.get(f"{API}/Recordings.json")
    def recordings_list(account: str) -> Response | tuple[Response, int]:
        """List recordings as Twilio does: newest first, filtered, one page at a time."""
        try:
            within = [_date_test(key.removeprefix("DateCreated") or "=", request.args[key])
                      for key in ("DateCreated", "DateCreated<", "DateCreated>") if key in request.args]
            page_size = int(request.args.get("PageSize", "50"))
            page = int(request.args.get("Page", "0"))
        except ValueError as exc:
            return jsonify(code=20001, message=f"Invalid parameter: {exc}", status=400), 400
        if not 1 <= page_size <= 1000 or page < 0:
            return jsonify(code=20001, message="PageSize must be 1 to 1000 and Page 0 or more", status=400), 400
        call_sid = request.args.get("CallSid")
        matching = [(sid, meta) for sid, meta in network.listed_recordings()
                    if all(test(meta.created_at) for test in within) and call_sid in (None, meta.call_sid)]
        start = page * page_size
        items = matching[start:start + page_size]
        filters = [(k, v) for k, v in request.args.items(multi=True) if k not in ("PageSize", "Page", "PageToken")]

        def page_uri(number: int) -> str:
            return f"{request.path}?{urlencode([*filters, ('PageSize', page_size), ('Page', number)])}"

        return jsonify(
            recordings=[_recording_json(account, sid, meta) for sid, meta in items],
            first_page_uri=page_uri(0),
            next_page_uri=page_uri(page + 1) if start + page_size < len(matching) else None,
            previous_page_uri=page_uri(page - 1) if page > 0 else None,
            page=page, page_size=page_size, uri=page_uri(page),
            start=start, end=start + len(items) - 1 if items else start,
        )

    @app.post(f"{API}/Calls.json")
    def calls_create(account: str) -> tuple[Response, int]:
        """Create an outbound call (Calls.json) and ring the simulated phone."""
        mode = network.mode_for(str(request.form.get("To", "")))
        if mode == "refused":
            # What Twilio answers for a number it will not dial: no call is created.
            return jsonify(code=21211, message=f"The 'To' number {request.form.get('To')} is not a valid phone number.",
                           more_info="https://www.twilio.com/docs/errors/21211", status=400), 400
        sid = network.new_sid("CA")
        call = {"sid": sid, "account_sid": account, "status": "queued", "direction": "outbound-api",
                **request.form.to_dict(flat=True),
                "events": request.form.getlist("StatusCallbackEvent"), "redirect_seq": 0}
        with network.lock:
            network.calls[sid] = call
        auth = _auth()
        if mode is not None and auth is not None:
            leg = threading.Thread(target=ring, args=(network, sid, request.host_url.rstrip("/"), auth[1], mode),
                                   name=f"leg-{sid}", daemon=True)
            network.legs.append(leg)
            leg.start()
        return jsonify(_call_json(call)), 201

    @app.get(f"{API}/Calls/<sid>.json")
    def calls_fetch(account: str, sid: str) -> Response | tuple[Response, int]:
        """Fetch a call (its status), as Twilio's Calls resource answers."""
        with network.lock:
            call = network.calls.get(sid)
            if call is None:
                return _not_found()
            return jsonify(_call_json(call))

    @app.post(f"{API}/Calls/<sid>.json")
    def calls_update(account: str, sid: str) -> Response | tuple[Response, int]:
        """Update a call: redirect it (Url/Twiml) or end or cancel it (Status)."""
        with network.lock:
            call = network.calls.get(sid)
            if call is None:
                return _not_found()
            form = request.form.to_dict(flat=True)
            if (form.get("Url") or form.get("Twiml")) and call["status"] in ENDED:
                # Twilio refuses to redirect a call that is over (error 21220), and the line's
                # "caller gone" handling relies on that refusal.
                return jsonify(code=21220, message="Call is not in-progress. Cannot redirect.",
                               status=400), 400
            # A queued or ringing call keeps a new Url or Twiml for when it is answered (the leg
            # reads them then); Status=canceled leaves a call in progress alone, as Twilio does.
            call.update({k: v for k, v in form.items() if k != "Status"})
            status = form.get("Status")
            live = call["status"] == "in-progress"
            if status in ("completed", "canceled") and call["status"] in ("queued", "ringing", "initiated"):
                # Either status stops a call that has not been answered yet.
                call["status"] = "canceled"
                network.event(f"call to {call.get('To')} canceled by the line")
            elif status == "completed" and live:
                call["status"] = "completed"
                network.dequeue(sid)
                network.leave_conference(sid)
                network.event(f"the line ends the call of {_who(call)}")
            elif (form.get("Url") or form.get("Twiml")) and live:
                # A live call runs new TwiML: it leaves any queue or conference it was in.
                call["redirect_seq"] += 1
                call["redirect"] = {"url": form.get("Url"), "method": form.get("Method", "POST"),
                                    "twiml": form.get("Twiml")}
                network.dequeue(sid)
                network.leave_conference(sid)
                network.event(f"the line redirects the call of {_who(call)}")
            return jsonify(_call_json(call)), 200

    @app.get(f"{API}/Conferences.json")
    def conferences_list(account: str) -> Response:
        """List conferences as Twilio does, filtered by ``FriendlyName`` and ``Status`` (only live rooms are held)."""
        name = request.args.get("FriendlyName")
        status = request.args.get("Status")
        with network.lock:
            rooms = [(room, network.conference_sids.setdefault(room, network.new_sid("CF")))
                     for room in network.conferences if name in (None, room)]
        if status not in (None, "in-progress"):
            rooms = []  # ended rooms are not kept
        uri = f"{request.path}?{urlencode(list(request.args.items(multi=True)))}"
        return jsonify(conferences=[{"sid": sid, "account_sid": account, "friendly_name": room,
                                     "status": "in-progress", "api_version": "2010-04-01",
                                     "uri": f"{API.replace('<account>', account)}/Conferences/{sid}.json"}
                                    for room, sid in rooms],
                       first_page_uri=uri, next_page_uri=None, previous_page_uri=None, page=0, page_size=50,
                       uri=uri, start=0, end=max(0, len(rooms) - 1))

    @app.post(f"{API}/Conferences/<conference>/Participants.json")
    def participants_create(account: str, conference: str) -> tuple[Response, int]:
        """Add a participant: dial ``To`` from ``From`` into the conference (by SID or friendly name)."""
        form = request.form.to_dict(flat=True)
        with network.lock:
            name = network.conference_name(conference) or (None if conference.startswith("CF") else conference)
        if name is None:
            return _not_found()
        if not form.get("To") or not form.get("From"):
            return jsonify(code=21201, message="To and From are required", status=400), 400
        coaching = form.get("Coaching") == "true"
        if coaching and not form.get("CallSidToCoach"):
            return jsonify(code=16020, message="CallSidToCoach is required when Coaching is true", status=400), 400
        sid = network.new_sid("CA")
        attributes = {"muted": form.get("Muted") == "true", "coaching": coaching,
                      "call_sid_to_coach": form.get("CallSidToCoach") if coaching else None,
                      "end_on_exit": form.get("EndConferenceOnExit") == "true", "hold": False,
                      "label": form.get("Label")}
        # The answered call joins the room as a <Conference> would; the leg plays this TwiML.
        twiml = _participant_twiml(name, attributes, form.get("Beep", "true"))
        call = {"sid": sid, "account_sid": account, "status": "queued", "direction": "outbound-api",
                "To": form["To"], "From": form["From"], "Twiml": twiml, "StatusCallback": form.get("StatusCallback"),
                "StatusCallbackMethod": form.get("StatusCallbackMethod", "POST"),
                "events": request.form.getlist("StatusCallbackEvent"), "redirect_seq": 0, "announce_seq": 0,
                "participant": attributes}
        with network.lock:
            network.calls[sid] = call
            network.event(f"the line adds {form['To']} to conference {name}"
                          + (" (muted)" if attributes["muted"] else "") + (" (coaching)" if coaching else ""))
        mode = network.mode_for(form["To"])
        auth = _auth()
        if mode is not None and auth is not None:
            leg = threading.Thread(target=ring, args=(network, sid, request.host_url.rstrip("/"), auth[1], mode),
                                   name=f"leg-{sid}", daemon=True)
            network.legs.append(leg)
            leg.start()
        return jsonify(_participant_json(account, network.conference_sids.get(name, ""), sid, attributes,
                                         "queued")), 201

    @app.post(f"{API}/Conferences/<conference>/Participants/<call_sid>.json")
    def participants_update(account: str, conference: str, call_sid: str) -> Response | tuple[Response, int]:
        """Update a participant: mute, coach or speak to all, hold, or play it an announcement."""
        form = request.form.to_dict(flat=True)
        with network.lock:
            name = network.conference_name(conference)
            call = network.calls.get(call_sid)
            if name is None or call is None or call.get("conference") != name:
                return _not_found()
            attributes = network.participants.setdefault(call_sid, {"muted": False, "coaching": False,
                                                                    "call_sid_to_coach": None, "hold": False})
            who = _who(call)
            if "Muted" in form:
                attributes["muted"] = form["Muted"] == "true"
                network.event(f"the line {'mutes' if attributes['muted'] else 'unmutes'} {who}")
            if "Hold" in form:
                attributes["hold"] = form["Hold"] == "true"
            if "Coaching" in form:
                attributes["coaching"] = form["Coaching"] == "true"
                if form.get("CallSidToCoach"):
                    attributes["call_sid_to_coach"] = form["CallSidToCoach"]
                if attributes["coaching"] and not attributes.get("call_sid_to_coach"):
                    return jsonify(code=16020, message="CallSidToCoach is required when Coaching is true",
                                   status=400), 400
                network.event(f"{who} {'now coaches' if attributes['coaching'] else 'now speaks to everyone'}")
            if form.get("AnnounceUrl"):
                call["announce_seq"] = int(call.get("announce_seq") or 0) + 1
                call["announce"] = {"url": form["AnnounceUrl"], "method": form.get("AnnounceMethod", "POST")}
                network.event(f"an announcement plays to {who}")
            return jsonify(_participant_json(account, network.conference_sids.get(name, ""), call_sid, attributes,
                                             "connected"))

    @app.post(f"{API}/Messages.json")
    def messages_create(account: str) -> tuple[Response, int]:
        """Send a text message (kept for assertions; nothing is delivered)."""
        message = {"sid": network.new_sid("SM"), "account_sid": account, "status": "queued",
                   **request.form.to_dict(flat=True)}
        network.messages.append(message)
        return jsonify({"sid": message["sid"], "account_sid": account, "status": "queued",
                        "to": message.get("To"), "from": message.get("From"), "body": message.get("Body")}), 201

    @app.post("/_sim/recordings")
    def sim_add_recording() -> Response:
        """Simulator only: store uploaded audio as a recording of call ``CallSid`` and return its SID."""
        sid = network.add_recording(request.get_data(), call_sid=request.args.get("CallSid"),
                                    duration_s=request.args.get("Duration", type=int))
        return jsonify(sid=sid)

    @app.post("/_sim/settings")
    def sim_settings() -> Response | tuple[Response, int]:
        """Simulator only: how simulated phones answer (``peer_answers``, ``answers``, ``ring_s``, ``ring_after``)."""
        data = request.get_json(silent=True) or {}
        mode = data.get("peer_answers")
        modes = [mode, *dict(data.get("answers") or {}).values()] if mode else list(dict(data.get("answers") or {}).values())
        if any(m not in PEER_MODES for m in modes):
            return jsonify(message=f"peer_answers must be one of {', '.join(PEER_MODES)}"), 400
        with network.lock:
            if "peer_keys" in data:
                network.peer_keys = [k.strip() for k in str(data["peer_keys"] or "").split(",") if k.strip()]
            if mode:
                network.peer_answers = mode
            network.answers.update(data.get("answers") or {})
            if "ring_s" in data:
                network.ring_s = float(data["ring_s"])
            network.ring_after.update({str(k): float(v) for k, v in dict(data.get("ring_after") or {}).items()})
            if "pace" in data:
                network.pace = float(data["pace"])
            if "talk_s" in data:
                network.talk_s = None if data["talk_s"] is None else float(data["talk_s"])
        return jsonify(peer_answers=network.peer_answers, answers=network.answers, ring_s=network.ring_s,
                       pace=network.pace, talk_s=network.talk_s)

    @app.post("/_sim/calls")
    def sim_call_begins() -> Response:
        """Simulator only: an inbound call reaches the line's number."""
        data = request.get_json(silent=True) or {}
        sid = data.get("CallSid") or network.new_sid("CA")
        with network.lock:
            network.calls[sid] = {"sid": sid, "account_sid": "", "status": "in-progress", "direction": "inbound",
                                  "From": data.get("From"), "To": data.get("To"), "redirect_seq": 0}
        return jsonify(sid=sid)

    @app.get("/_sim/calls/<sid>")
    def sim_call_state(sid: str) -> Response | tuple[Response, int]:
        """Simulator only: a call's status, pending redirect, queue and conference (and new events)."""
        with network.lock:
            call = network.calls.get(sid)
            if call is None:
                return _not_found()
            since = request.args.get("since", type=int)
            events = network.events[since:] if since is not None else []
            state = {k: call.get(k) for k in ("sid", "status", "redirect_seq", "redirect", "queue", "conference",
                                              "To", "From", "announce_seq", "announce")}
            # How many others share its conference (a scripted peer presses * only with someone there).
            state["company"] = max(0, len(network.conferences.get(call.get("conference") or "", {})) - 1)
            return jsonify(call=state,
                           participant=network.participants.get(sid),
                           queue=network.queue_info(sid), events=events, next_event=len(network.events))

    @app.post("/_sim/calls/<sid>/<op>")
    def sim_call_op(sid: str, op: str) -> Response | tuple[Response, int]:
        """Simulator only: a leg enqueues, dequeues, joins or leaves a conference, or ends."""
        data = request.get_json(silent=True) or {}
        with network.lock:
            call = network.calls.get(sid)
            if call is None:
                return _not_found()
            if op == "enqueue":
                name = str(data["queue"])
                queue = network.queues.setdefault(name, {"sid": network.new_sid("QU"), "members": [], "waits": []})
                network.dequeue(sid)
                queue["members"].append(sid)
                call["queue"], call["queued_at"] = name, time.monotonic()
                network.event(f"a caller waits in queue {name} (position {len(queue['members'])})")
                return jsonify(queue_sid=queue["sid"])
            if op == "dequeue":
                return jsonify(queue_time=network.dequeue(sid))
            if op == "join":
                name = str(data["conference"])
                network.leave_conference(sid)
                members = network.conferences.setdefault(name, {})
                members[sid] = bool(data.get("end_on_exit"))
                network.conference_sids.setdefault(name, network.new_sid("CF"))
                # A participant the API added keeps what it asked for (muted, coaching...).
                attributes = network.participants.setdefault(sid, dict(call.get("participant") or {"hold": False}))
                attributes.setdefault("muted", bool(data.get("muted")))
                attributes.setdefault("coaching", bool(data.get("coach")))
                attributes.setdefault("call_sid_to_coach", data.get("coach") or None)
                call["conference"] = name
                network.event(f"{_who(call)} joins conference {name} ({len(members)} on the line)")
                return jsonify(members=len(members))
            if op == "dial":
                number = str(data.get("number") or "")
                # Only a number set on its own (``answers``): peer_answers is how the peers' phones answer.
                status = dial_result(network.answers.get(number))
                network.event(f"{_who(call)} dials {number}: {status}")
                return jsonify(status=status)
            if op == "leave":
                network.leave_conference(sid)
                return jsonify(ok=True)
            if op == "end":
                network.dequeue(sid)
                network.leave_conference(sid)
                if call["status"] not in ENDED:
                    call["status"] = str(data.get("status") or "completed")
                call["duration"] = data.get("duration")
                return jsonify(ok=True)
        return jsonify(message=f"unknown operation {op!r}"), 404

    return app


class _LamlPrefix:
    """WSGI middleware: ``/api/laml/2010-04-01/...`` reaches the API routes when the network plays SignalWire."""

    PREFIX = "/api/laml"

    def __init__(self, wsgi_app: Any, network: NetworkState) -> None:
        self.wsgi_app = wsgi_app
        self.network = network

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if self.network.provider == "signalwire" and path.startswith(self.PREFIX + "/"):
            environ = dict(environ, SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + self.PREFIX,
                           PATH_INFO=path[len(self.PREFIX):])
        return self.wsgi_app(environ, start_response)


def _who(call: dict[str, Any]) -> str:
    return "the caller" if call.get("direction") == "inbound" else str(call.get("To"))


def _date_test(op: str, raw: str) -> Callable[[datetime], bool]:
    """Twilio's ``DateCreated`` filter: ``=``, ``<`` (on or before) or ``>`` (on or after) a GMT
    date (the whole day) or a moment to the second."""
    try:
        low = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        high = low + timedelta(seconds=1)
    except ValueError:
        low = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)  # ValueError: neither form
        high = low + timedelta(days=1)
    if op == "<":
        return lambda created: created < high
    if op == ">":
        return lambda created: created >= low
    return lambda created: low <= created < high


def _recording_json(account: str, sid: str, meta: RecordingMeta) -> dict[str, Any]:
    """A recording in Twilio's JSON shape (times in RFC 2822, the duration a string)."""
    uri = f"{request.script_root}{API.replace('<account>', account)}/Recordings/{sid}.json"
    created = format_datetime(meta.created_at.replace(microsecond=0))
    return {"account_sid": account, "api_version": "2010-04-01", "call_sid": meta.call_sid, "conference_sid": None,
            "date_created": created, "date_updated": created, "start_time": created,
            "duration": str(meta.duration_s), "sid": sid, "price": None, "price_unit": "USD", "status": "completed",
            "channels": 1, "source": "RecordVerb", "error_code": None, "uri": uri, "encryption_details": None,
            "subresource_uris": {"add_on_results": uri.replace(".json", "/AddOnResults.json"),
                                 "transcriptions": uri.replace(".json", "/Transcriptions.json")},
            "media_url": f"{request.host_url.rstrip('/')}{uri.removesuffix('.json')}"}


def _participant_twiml(room: str, attributes: dict[str, Any], beep: str) -> str:
    """What a participant's answered call does on this network: join ``room`` as the API asked."""
    coach = f' coach={quoteattr(str(attributes["call_sid_to_coach"]))}' if attributes.get("coaching") else ""
    return (f'<Response><Dial><Conference muted="{str(attributes["muted"]).lower()}"{coach} '
            f'endConferenceOnExit="{str(attributes["end_on_exit"]).lower()}" beep={quoteattr(beep)}>{escape(room)}'
            "</Conference></Dial></Response>")


def _participant_json(account: str, conference_sid: str, call_sid: str, attributes: dict[str, Any],
                      status: str) -> dict[str, Any]:
    """A participant in Twilio's JSON shape."""
    return {"account_sid": account, "call_sid": call_sid, "conference_sid": conference_sid,
            "muted": bool(attributes.get("muted")), "hold": bool(attributes.get("hold")),
            "coaching": bool(attributes.get("coaching")), "call_sid_to_coach": attributes.get("call_sid_to_coach"),
            "end_conference_on_exit": bool(attributes.get("end_on_exit")), "start_conference_on_enter": True,
            "label": attributes.get("label"), "status": status,
            "uri": f"{API.replace('<account>', account)}/Conferences/{conference_sid}/Participants/{call_sid}.json"}


def _call_json(call: dict[str, Any]) -> dict[str, Any]:
    return {"sid": call["sid"], "account_sid": call["account_sid"], "status": call["status"],
            "to": call.get("To"), "from": call.get("From")}
