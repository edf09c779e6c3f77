"""What the phone network holds, shared by its REST server and the outbound legs it plays.

:class:`NetworkState` (calls, queues, conferences, recordings, every request received) and
:class:`SentRequest` live here, apart from the server in :mod:`simulator.phone_network` and
the legs in :mod:`simulator.legs`, so that both import this module and neither imports the
other: the server starts legs, and legs update the state.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from simulator.engine import wav_seconds

# How a simulated phone answers: a person who presses 1 at the first menu (accept) or nothing
# (ignore); a voicemail machine whose greeting ends in a beep, in silence or otherwise; a fax; a
# person answering detection cannot classify (``unknown``: says nothing at first, then presses 1
# when asked; ``unknown-silent``: never presses anything); a phone that rings out (no-answer),
# is busy, or cannot be reached (failed); ``refused``: Twilio refuses to place the call at all
# (REST error 21211, as for a number it cannot dial); ``drop``: presses 1, then the line drops
# before the room.
PEER_MODES = ("accept", "ignore", "voicemail", "no-answer", "busy", "fax", "unknown", "unknown-silent",
              "voicemail-silence", "voicemail-other", "failed", "refused", "drop")
ENDED = ("completed", "canceled", "failed", "busy", "no-answer")  # a call in one of these is over
NOT_ANSWERED = ("no-answer", "busy", "failed")  # modes whose phone never picks up
MACHINES = ("voicemail", "voicemail-silence", "voicemail-other")
DEFAULT_TIMEOUT_S = 60  # Twilio's Calls ``Timeout`` default; it allows at most 600
MAX_TIMEOUT_S = 600
# Twilio's AnsweredBy by MachineDetection mode. ``Enable`` answers as soon as it knows
# (``machine_start``); ``DetectMessageEnd`` waits for the end of the greeting and says how it ended.
ANSWERED_BY = {
    "Enable": {"voicemail": "machine_start", "voicemail-silence": "machine_start", "voicemail-other": "machine_start"},
    "DetectMessageEnd": {"voicemail": "machine_end_beep", "voicemail-silence": "machine_end_silence",
                         "voicemail-other": "machine_end_other"},
}


def answered_by(mode: str, detection: str) -> str:
    """Twilio's ``AnsweredBy`` for a phone answering as ``mode`` under ``MachineDetection=detection``."""
    if mode == "fax":
        return "fax"
    if mode.startswith("unknown"):
        return "unknown"
    return ANSWERED_BY.get(detection, ANSWERED_BY["Enable"]).get(mode, "human")


def dial_result(mode: str | None) -> str:
    """How a ``<Dial><Number>`` to a phone answering as ``mode`` ends (its ``DialCallStatus``)."""
    if mode in ("busy", "no-answer", "failed"):
        return mode
    if mode == "refused":
        return "failed"
    return "completed"

SIGNATURE_HEADERS = {"twilio": "X-Twilio-Signature", "signalwire": "X-SignalWire-Signature"}


def new_id(prefix: str, provider: str = "twilio") -> str:
    """An id as ``provider`` makes them: ``CA`` + 32 hex digits (Twilio) or a UUID (SignalWire)."""
    return str(uuid.uuid4()) if provider == "signalwire" else prefix + uuid.uuid4().hex


# Network events are the phone network's log (``peerline phone-network`` prints them).
log = logging.getLogger("simulator.phone_network")


@dataclass
class SentRequest:
    """One request the app made to the (fake) Twilio REST API."""

    method: str
    path: str
    form: dict[str, Any]
    auth: tuple[str, str] | None
    query: dict[str, list[str]] = field(default_factory=dict)  # the query string, as Twilio would parse it


@dataclass(frozen=True)
class RecordingMeta:
    """What Twilio knows about a recording besides its audio."""

    call_sid: str | None
    duration_s: int
    created_at: datetime  # aware, UTC


@dataclass
class NetworkState:
    """What the phone network holds: requests, recordings, calls, queues, conferences, messages."""

    requests: list[SentRequest] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)  # sid -> audio; deleting one removes it
    recording_meta: dict[str, RecordingMeta] = field(default_factory=dict)  # sid -> call, duration, creation
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    # Hub settings. peer_answers None: outbound calls are only recorded, never rung.
    peer_answers: str | None = None
    answers: dict[str, str] = field(default_factory=dict)  # per phone number, overrides peer_answers
    ring_s: float = 0.3  # how long a phone rings before it is answered (or gives up)
    ring_after: dict[str, float] = field(default_factory=dict)  # per number, overrides ring_s
    pace: float = 0.0  # seconds of wall time per second of audio on the outbound legs
    # How long a called-back caller talks before hanging up, as `peerline call --talk-seconds` does
    # on a live call (None: until the other side hangs up, or the leg's cap).
    talk_s: float | None = None
    rewrite: dict[str, str] = field(default_factory=dict)  # public URL prefix -> where the app listens
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> sid, members, waits
    conferences: dict[str, dict[str, bool]] = field(default_factory=dict)  # name -> {sid: endConferenceOnExit}
    conference_sids: dict[str, str] = field(default_factory=dict)  # name -> CF... SID while the room is live
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)  # call sid -> muted, coaching, hold...
    peer_keys: list[str] = field(default_factory=list)  # keys the next peer who accepts presses in the call
    events: list[str] = field(default_factory=list)  # what happened on the network, for the caller's screen
    legs: list[threading.Thread] = field(default_factory=list)  # outbound legs being played
    # Which provider the network behaves like: "twilio", or "signalwire" (UUID ids, REST under
    # /api/laml, webhooks signed in X-SignalWire-Signature with ``signing_key``).
    provider: str = "twilio"
    signing_key: str | None = None  # what outbound legs sign with; None = the REST password, as Twilio
    # Requests Twilio will refuse, in order: (method, path suffix, HTTP status, Twilio error code, message).
    faults: list[tuple[str, str, int, int, str]] = field(default_factory=list)

    def new_sid(self, prefix: str) -> str:
        """A new id: Twilio's shape (two letters and 32 hex digits), or a UUID as SignalWire's."""
        return new_id(prefix, self.provider)

    @property
    def signature_header(self) -> str:
        """The header the network's webhooks carry their signature in."""
        return SIGNATURE_HEADERS.get(self.provider, SIGNATURE_HEADERS["twilio"])

    def add_recording(self, audio: bytes, call_sid: str | None = None, duration_s: int | None = None,
                      created_at: datetime | None = None) -> str:
        """Store audio as if Twilio had recorded it during ``call_sid``; returns its RecordingSid.

        The duration defaults to the WAV audio's length; ``created_at`` (default now) lets a
        test place a recording in the past.
        """
        sid = self.new_sid("RE")
        meta = RecordingMeta(call_sid=call_sid,
                             duration_s=round(wav_seconds(audio)) if duration_s is None else duration_s,
                             created_at=(created_at or datetime.now(timezone.utc)).astimezone(timezone.utc))
        with self.lock:
            self.recordings[sid] = audio
            self.recording_meta[sid] = meta
        return sid

    def delete_recording(self, sid: str) -> bool:
        """Remove a recording (audio and description); False when there was none."""
        with self.lock:
            self.recording_meta.pop(sid, None)
            return self.recordings.pop(sid, None) is not None

    def listed_recordings(self) -> list[tuple[str, RecordingMeta]]:
        """Every recording held, newest first, as Twilio lists them."""
        with self.lock:
            # A recording stored straight into ``recordings`` (no description) was made just now.
            held = [(sid, self.recording_meta.get(sid) or RecordingMeta(None, round(wav_seconds(audio)),
                                                                       datetime.now(timezone.utc)))
                    for sid, audio in self.recordings.items()]
        return sorted(held, key=lambda item: item[1].created_at, reverse=True)

    def event(self, line: str) -> None:
        """Note something that happened on the network (shown by ``peerline call``)."""
        with self.lock:
            self.events.append(line)
        log.info("%s", line)

    def mode_for(self, number: str) -> str | None:
        """How the phone at ``number`` answers, or None when outbound calls are not rung."""
        return self.answers.get(number) or self.peer_answers

    def fail_next(self, method: str, path_suffix: str, status: int = 500, code: int = 20500,
                  message: str = "Internal Server Error") -> None:
        """Refuse the next ``method`` request whose path ends with ``path_suffix``, as Twilio does when it fails."""
        with self.lock:
            self.faults.append((method.upper(), path_suffix, status, code, message))

    def take_fault(self, method: str, path: str) -> tuple[int, int, str] | None:
        """The refusal planned for this request, if any (each is used once)."""
        with self.lock:
            for i, (m, suffix, status, code, message) in enumerate(self.faults):
                if m == method and path.endswith(suffix):
                    del self.faults[i]
                    return status, code, message
        return None

    def rings_for(self, number: str) -> float:
        """Seconds the phone at ``number`` rings before someone (or something) picks it up."""
        return self.ring_after.get(number, self.ring_s)

    def take_peer_keys(self) -> list[str]:
        """The scripted in-call keys (``peer_keys``), handed once to the next peer who accepts a call."""
        with self.lock:
            keys, self.peer_keys = list(self.peer_keys), []
        return keys

    def conference_name(self, ident: str) -> str | None:
        """A live conference's name from its SID or its friendly name (as Twilio accepts either)."""
        if ident in self.conferences:
            return ident
        return next((name for name, sid in self.conference_sids.items() if sid == ident), None)

    def wait_for_legs(self, timeout: float = 30.0) -> None:
        """Wait until every outbound leg has ended, those placed meanwhile too (tests call this before asserting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [leg for leg in list(self.legs) if leg.is_alive()]
            if not live:
                return
            live[0].join(max(0.0, deadline - time.monotonic()))

    # Queues and conferences (callers hold the lock) ---------------------------------

    def queue_info(self, sid: str) -> dict[str, Any] | None:
        """Position, size, time and average wait of a queued call."""
        call = self.calls.get(sid) or {}
        name = call.get("queue")
        if not name or name not in self.queues:
            return None
        queue = self.queues[name]
        waits = queue["waits"]
        return {"sid": queue["sid"], "name": name, "position": queue["members"].index(sid) + 1,
                "size": len(queue["members"]), "time": int(time.monotonic() - call["queued_at"]),
                "avg": int(sum(waits) / len(waits)) if waits else 0}

    def dequeue(self, sid: str) -> int:
        """Take a call out of its queue; returns the seconds it waited."""
        call = self.calls.get(sid) or {}
        name = call.get("queue")
        if not name:
            return int(call.get("queue_time", 0))
        waited = int(time.monotonic() - call["queued_at"])
        queue = self.queues.get(name)
        if queue and sid in queue["members"]:
            queue["members"].remove(sid)
            queue["waits"].append(waited)
        call["queue"] = None
        call["queue_time"] = waited
        return waited

    def leave_conference(self, sid: str) -> None:
        """A call leaves its conference; with endConferenceOnExit the others leave too."""
        call = self.calls.get(sid) or {}
        name = call.get("conference")
        if not name:
            return
        call["conference"] = None
        members = self.conferences.get(name, {})
        end_all = members.pop(sid, False)
        self.participants.pop(sid, None)
        if end_all:
            for other in list(members):
                self.calls[other]["conference"] = None
                self.participants.pop(other, None)
            members.clear()
        if not members:
            self.conferences.pop(name, None)
            self.conference_sids.pop(name, None)
            self.event(f"conference {name} ended")
