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

PEER_MODES = ("accept", "ignore", "voicemail", "no-answer", "busy")  # how a simulated phone answers
ENDED = ("completed", "canceled", "failed", "busy", "no-answer")  # a call in one of these is over

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
    pace: float = 0.0  # seconds of wall time per second of audio on the outbound legs
    rewrite: dict[str, str] = field(default_factory=dict)  # public URL prefix -> where the app listens
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> sid, members, waits
    conferences: dict[str, dict[str, bool]] = field(default_factory=dict)  # name -> {sid: endConferenceOnExit}
    conference_sids: dict[str, str] = field(default_factory=dict)  # name -> CF... SID while the room is live
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)  # call sid -> muted, coaching, hold...
    peer_keys: list[str] = field(default_factory=list)  # keys the next peer who accepts presses in the call
    events: list[str] = field(default_factory=list)  # what happened on the network, for the caller's screen
    legs: list[threading.Thread] = field(default_factory=list)  # outbound legs being played

    def new_sid(self, prefix: str) -> str:
        """A Twilio-shaped SID (two letters and 32 hex digits)."""
        return prefix + uuid.uuid4().hex

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
        """Wait until every outbound leg has ended (tests call this before asserting)."""
        deadline = time.monotonic() + timeout
        for leg in list(self.legs):
            leg.join(max(0.0, deadline - time.monotonic()))

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
