"""What a webhook knows about its call, and the request helpers every handler module shares.

- :class:`Ctx` (built by :func:`current_ctx`): the CallSid, the caller's flow (language) and pace,
  whether they have heard the keys that work everywhere, and whether they chose their language;
- :func:`caller_flow` and :func:`peer_flow`: the flow a caller or a peer hears;
- :func:`public_url`: every absolute URL Twilio fetches (:meth:`Ctx.url` keeps ``lang`` and ``slow``);
- :func:`int_param` and :func:`seconds_param`: numbers from the query or the form that never raise;
- :func:`caller_gone_wrap_up`: what a peer hears when the room ends with the caller (two routes end so).

Preferences travel in each URL's query (``lang``, ``slow``, ``told``, ``undecided``), so a call
never depends on server memory; a forged or garbled query falls back to a safe value instead of
failing. A URL that loses ``told`` costs the caller one more hearing of the full block of keys,
never less.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping, Sequence, overload

from flask import request
from twilio.twiml.voice_response import VoiceResponse

from callflows import Flow, Menu, Transition
from callflows.loader import LANGUAGE_KEY
from ivr.services import services
from ivr.twiml import Speaker
from models import Peer
from models.tables import PeerRequest, RingLeg

# The widest number a query parameter may carry (ids and durations fit a database INTEGER).
MAX_PARAM = 2**31 - 1
# A paused story resumes at most this far in (no story is longer); also rules out inf and nan.
MAX_SECONDS = 6 * 3600.0


def public_url(endpoint: str, **values: object) -> str:
    """Absolute URL of ``endpoint`` on PUBLIC_BASE_URL, built like the rules build theirs (jobs included)."""
    return services().public_url(endpoint, **values)


def caller_flow(language: str | None) -> Flow:
    """The flow a caller hears in ``language`` (English when it is missing or unknown)."""
    return services().flow(language)


def peer_flow(peer: Peer | None) -> Flow:
    """The flow a peer hears: the first of their languages the line speaks, else English."""
    flows = services().flows
    for language in (peer.languages if peer else None) or []:
        if language in flows:
            return flows[language]
    return flows["en"]


@dataclass(frozen=True)
class Ctx:
    """What a request knows about the call: its SID, the caller's flow and pace.

    ``arrived_at`` is set only when the caller leaves the hold queue for a callback: their
    place in line, which the callback keeps. ``told`` is True once the caller has heard the
    full block of keys that work everywhere (later menus give a short reminder). ``undecided``
    is True when the caller said nothing at the first question: the call goes on in English,
    nothing is saved, and a line in the other language says how to switch at any menu.
    """

    call_sid: str
    flow: Flow
    slow: bool
    arrived_at: datetime | None = None
    told: bool = False
    undecided: bool = False

    @property
    def speaker(self) -> Speaker:
        """The renderer for this caller."""
        return Speaker(self.flow, self.slow)

    def url(self, endpoint: str, **values: object) -> str:
        """Absolute URL on PUBLIC_BASE_URL that keeps this caller's language and pace."""
        values.setdefault("lang", self.flow.language)
        if self.slow:
            values.setdefault("slow", 1)
        if self.told:
            values.setdefault("told", 1)
        if self.undecided:
            values.setdefault("undecided", 1)
        return public_url(endpoint, **values)

    @property
    def main_menu_url(self) -> str:
        """Where a caller goes on when nothing else applies: the flow's first menu."""
        return self.url("voice.menu", node=self.flow.start)

    def menu(self, node: str, attempt: int = 0, preface: Iterable[str] = (), simpler: bool = False,
             carry: Mapping[str, object] | None = None, full_keys: bool = False) -> VoiceResponse:
        """Say menu ``node`` of the caller's flow, answered at ``voice.answer`` (``carry`` rides in the query).

        The keys that work everywhere are said in full when the caller has not heard them yet
        or ``full_keys`` asks for it (after a wrong or missing answer, on a repeat); a caller
        who has not chosen a language also hears, then, how to switch.
        """
        full = full_keys or not self.told
        switch = self.language_switch() if full else []
        return self.say_menu(self.flow.nodes[node], "voice.answer", preface=preface, simpler=simpler,
                             full_keys=full, other_languages=switch, node=node, attempt=attempt, **(carry or {}))

    def say_menu(self, menu: Menu, endpoint: str, preface: Iterable[str] = (), simpler: bool = False,
                 full_keys: bool = False, other_languages: Sequence[tuple[Flow, str]] = (),
                 **values: object) -> VoiceResponse:
        """Say ``menu`` answered at ``endpoint``; the full block of keys when asked for or not heard yet."""
        action = self.heard_keys().url(endpoint, **values)
        return self.speaker.menu(menu, action, preface=preface, simpler=simpler,
                                 full_keys=full_keys or not self.told, other_languages=other_languages)

    def heard_keys(self) -> Ctx:
        """This context once the caller has heard the full block of keys (the URLs say so from now on)."""
        return dataclasses.replace(self, told=True)

    def language_switch(self) -> list[tuple[Flow, str]]:
        """For a caller who has not chosen a language: how to switch, said in each other language."""
        if not self.undecided:
            return []
        return [(flow, flow.text("language_switch", key=LANGUAGE_KEY))
                for flow in services().flows.values() if flow.language != self.flow.language]

    def retry_preface(self, menu: Menu, t: Transition) -> list[str]:
        """What the caller hears before a menu is asked again: nothing heard, or what was wrong and the keys there are."""
        if t.kind == "no_input":
            return [self.flow.text("no_input")]
        if t.kind != "invalid":
            return []
        if t.matched == "speech":
            sorry = self.flow.text("invalid_speech")
        else:
            sorry = self.flow.text("invalid", key=self.flow.key_name(t.matched or ""))
        if t.attempt > 1:
            return [sorry]  # the second time, every option follows with its name: no bare list of keys
        keys = [o.key for o in menu.options]
        listed = ", ".join(keys[:-1]) + f" {self.flow.text('or_word')} {keys[-1]}" if len(keys) > 1 else keys[0]
        return [sorry, self.flow.text("choices", keys=listed)]


def current_ctx(lang: str | None = None, slow: bool | None = None) -> Ctx:
    """The context of this request, from its query string (or the given language and pace)."""
    flow = caller_flow(lang or request.args.get("lang"))
    if slow is None:
        slow = request.args.get("slow") == "1"
    return Ctx(call_sid=request.form.get("CallSid", ""), flow=flow, slow=slow,
               told=request.args.get("told") == "1", undecided=request.args.get("undecided") == "1")


@overload
def int_param(name: str, default: int = 0, *, low: int = 0, high: int = MAX_PARAM, form: bool = False) -> int: ...


@overload
def int_param(name: str, default: None, *, low: int = 0, high: int = MAX_PARAM, form: bool = False) -> int | None: ...


def int_param(name: str, default: int | None = 0, *, low: int = 0, high: int = MAX_PARAM,
              form: bool = False) -> int | None:
    """A whole number from the query (or the form), held within [low, high]; ``default`` when missing or garbled."""
    raw = (request.form if form else request.args).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:  # not a number, or more digits than Python converts
        return default
    return min(max(value, low), high)


def seconds_param(name: str) -> float:
    """A time offset in seconds from the query, within [0, MAX_SECONDS]; 0 when missing or garbled."""
    try:
        value = float(request.args.get(name) or 0)
    except ValueError:
        return 0.0
    if not math.isfinite(value):
        return 0.0
    return min(max(value, 0.0), MAX_SECONDS)


def caller_gone_wrap_up(speaker: Speaker, leg: RingLeg, req: PeerRequest) -> VoiceResponse:
    """The room ended with the caller: the peer hears so, and wrap-up starts with the call record (when there is one)."""
    gone = speaker.text("peer_caller_gone")
    if req.call_id is None or req.peer_id != leg.peer_id:
        return speaker.say_then_hangup([gone])
    # By keypad: the outcome (1-5), then referral yes or no (routing.leg_record, then leg_referral).
    return speaker.record_prompt([gone], public_url("routing.leg_record", leg_id=leg.id))
