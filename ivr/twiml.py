"""The one place TwiML is made, with the ``twilio`` library's VoiceResponse.

Views decide what happens; this module decides how it sounds: voice, language, pace (a
slower rate, and a pause between the lines of a menu), generous timeouts, option names before
keys, and speech hints that include the words that work in every menu.

Every text said goes through :func:`speakable` (in :meth:`Speaker.say`): a key or a word
from a request, a story's title or transcript can carry characters XML 1.0 cannot (NUL,
other control characters), which would make the whole document unreadable to Twilio, and
a text can be longer than one <Say> speaks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from flask import Response
from twilio.twiml.voice_response import Gather, VoiceResponse

from callflows import Flow, Menu
from callflows.engine import global_hints, language_hints

GATHER_TIMEOUT_S = 10  # Twilio's 5 s default is too short for many of our callers
SLOW_GATHER_TIMEOUT_S = 15
STORY_END_TIMEOUT_S = 2  # after a story, a moment for a key before the choices are said
SLOW_STORY_END_TIMEOUT_S = 5
PAUSE_TIMEOUT_S = 60  # a paused story goes on by itself after this long
SLOW_PAUSE_TIMEOUT_S = 120
SLOW_RATE = "80%"
SLOW_PAUSE_S = 1  # at the slower pace, a pause between the lines of a menu
# Twilio's Polly voices speak at most 3,000 characters in one <Say> (SSML tags aside): a longer
# text is said in several, cut between words.
MAX_SAY_CHARS = 3000
# The most one text may say (a long story read aloud), so a document stays well under the
# 64 kB of TwiML that Twilio reads.
MAX_SPOKEN_CHARS = 4 * MAX_SAY_CHARS
# What XML 1.0 cannot carry (controls but tab, newline and return; surrogates; U+FFFE, U+FFFF),
# and the C1 controls and DEL it allows but no voice says.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def speakable(text: str) -> str:
    """``text`` as a <Say> can carry it: no character XML 1.0 forbids, whitespace collapsed, at most MAX_SPOKEN_CHARS."""
    return " ".join(_UNSPEAKABLE.sub(" ", text).split())[:MAX_SPOKEN_CHARS]


def say_pieces(text: str) -> list[str]:
    """The speakable ``text`` in pieces of at most MAX_SAY_CHARS, cut between words (none when nothing is left)."""
    rest = speakable(text)
    pieces = []
    while len(rest) > MAX_SAY_CHARS:
        cut = rest.rfind(" ", 0, MAX_SAY_CHARS + 1)
        if cut <= 0:  # one word longer than a <Say>: cut inside it
            cut = MAX_SAY_CHARS
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip()
    return [*pieces, rest] if rest else pieces


def to_response(twiml: VoiceResponse) -> Response:
    """A Flask response carrying TwiML as text/xml."""
    return Response(str(twiml), mimetype="text/xml")


def empty() -> VoiceResponse:
    """An empty <Response/>: nothing for Twilio to do (a status callback, where nobody listens)."""
    return VoiceResponse()


def hang_up() -> VoiceResponse:
    """End the call without a word (a callback that reached a machine, with no message allowed)."""
    twiml = VoiceResponse()
    twiml.hangup()
    return twiml


@dataclass(frozen=True)
class Speaker:
    """How the line speaks to one caller: the flow's language and voice, and their pace."""

    flow: Flow
    slow: bool = False

    @property
    def timeout(self) -> int:
        """Seconds to wait for a key or speech."""
        return SLOW_GATHER_TIMEOUT_S if self.slow else GATHER_TIMEOUT_S

    def say(self, parent: VoiceResponse | Gather, text: str) -> None:
        """Add <Say> in the caller's language (slowed with SSML prosody when asked), for the speakable text only."""
        for piece in say_pieces(text):
            if self.slow:
                say = parent.say(voice=self.flow.voice, language=self.flow.say_language)
                say.prosody(piece, rate=SLOW_RATE)
            else:
                parent.say(piece, voice=self.flow.voice, language=self.flow.say_language)

    def text(self, name: str, /, **values: object) -> str:
        """A phrase of the flow in the caller's language."""
        return self.flow.text(name, **values)

    # Documents -------------------------------------------------------------------------

    def menu(
        self,
        menu: Menu,
        action_url: str,
        preface: Iterable[str] = (),
        simpler: bool = False,
        full_keys: bool = True,
        other_languages: Sequence[tuple[Flow, str]] = (),
    ) -> VoiceResponse:
        """A menu: lines in other languages, preface, the prompt, each option named before its key, the global keys.

        ``full_keys`` says the whole block of keys that work everywhere (the first menu of a
        call, after a wrong or missing answer); otherwise a short reminder. ``simpler`` says
        the menu's one-line simple form instead of every option.
        """
        twiml = VoiceResponse()
        gather = self._gather(twiml, action_url, hints=_hints(menu, self.flow.language))
        for flow, line in other_languages:
            Speaker(flow, self.slow).say(gather, line)
        lines = list(preface)
        if simpler:
            lines.append(menu.simple)
        else:
            lines.append(menu.prompt)
            lines.extend(self.flow.text("press", label=o.label, key=o.key) for o in menu.options)
        lines.append(self.flow.text(menu.global_keys if full_keys else "global_keys_short"))
        self._lines(gather, lines)
        # If Twilio ever reaches here the gather produced nothing: treat it as no input.
        twiml.redirect(action_url, method="POST")
        return twiml

    def choose_language(self, flows: dict[str, Flow], action_url: str, prompts: list[tuple[Flow, str]]) -> VoiceResponse:
        """The first question, in every language at once: each line is said in its own language's voice.

        Twilio recognises speech in one language per <Gather>: this one listens in the speaker's
        language, with hints that name each language in both languages (and the numerals).
        """
        twiml = VoiceResponse()
        words = [*language_hints(), *(w for f in flows.values() for w in global_hints(f.language))]
        gather = self._gather(twiml, action_url, hints=", ".join(dict.fromkeys(words)))
        for i, (flow, line) in enumerate(prompts):
            if i and self.slow:
                gather.pause(length=SLOW_PAUSE_S)
            Speaker(flow, self.slow).say(gather, line)
        twiml.redirect(action_url, method="POST")
        return twiml

    def say_then_redirect(self, lines: Iterable[str], url: str) -> VoiceResponse:
        """Speak, then continue at ``url``."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        twiml.redirect(url, method="POST")
        return twiml

    def say_only(self, lines: Iterable[str]) -> VoiceResponse:
        """Speak, and nothing more (on hold, the wait document ends and the caller keeps their place)."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        return twiml

    def say_then_hangup(self, lines: Iterable[str]) -> VoiceResponse:
        """Speak, then end the call politely."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        twiml.hangup()
        return twiml

    def dial(self, lines: Iterable[str], number: str, action_url: str, caller_id: str | None = None) -> VoiceResponse:
        """Speak, then connect the caller to ``number``; ``action_url`` runs when that leg ends."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        dial = twiml.dial(action=action_url, method="POST", timeout=30, caller_id=caller_id)
        dial.number(number)
        return twiml

    def record(self, lines: Iterable[str], action_url: str, status_url: str, no_message_url: str,
               max_length: int) -> VoiceResponse:
        """Consent notice, then <Record> with # to finish and a recording status callback."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        twiml.record(
            action=action_url,
            method="POST",
            max_length=max_length,
            finish_on_key="#",
            timeout=10,
            play_beep=True,
            trim="trim-silence",
            recording_status_callback=status_url,
            recording_status_callback_method="POST",
            recording_status_callback_event="completed",
        )
        # Twilio falls through to the next verb when nothing was recorded.
        twiml.redirect(no_message_url, method="POST")
        return twiml

    def story(self, intro: str, audio_url: str | None, transcript: str, keys: Iterable[str],
              key_url: str, after_url: str) -> VoiceResponse:
        """Play a story inside a one-key gather, so a key pauses, skips or replays it."""
        twiml = VoiceResponse()
        gather = twiml.gather(
            input="dtmf", num_digits=1, action=key_url, method="POST", action_on_empty_result=False,
            timeout=SLOW_STORY_END_TIMEOUT_S if self.slow else STORY_END_TIMEOUT_S,
        )
        self.say(gather, intro)
        for line in keys:
            self.say(gather, line)
        if audio_url:
            gather.play(audio_url)
        else:
            self.say(gather, transcript)
        twiml.redirect(after_url, method="POST")
        return twiml

    def wait_for_key(self, lines: Iterable[str], action_url: str) -> VoiceResponse:
        """Say ``lines`` and wait a long while for one key (a story paused); silence goes on at ``action_url``."""
        twiml = VoiceResponse()
        gather = twiml.gather(input="dtmf", num_digits=1, action=action_url, method="POST",
                              action_on_empty_result=True,
                              timeout=SLOW_PAUSE_TIMEOUT_S if self.slow else PAUSE_TIMEOUT_S)
        for line in lines:
            self.say(gather, line)
        twiml.redirect(action_url, method="POST")
        return twiml

    # Live peer routing ------------------------------------------------------------------

    def enqueue(self, lines: Iterable[str], queue_name: str, wait_url: str, action_url: str) -> VoiceResponse:
        """Speak, then hold the caller in a Twilio queue; ``wait_url`` plays while they wait."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        twiml.enqueue(queue_name, wait_url=wait_url, wait_url_method="POST", action=action_url, method="POST")
        return twiml

    def hold(self, lines: Iterable[str], story_audio: str | None, story_text: str | None,
             options: Iterable[str], action_url: str) -> VoiceResponse:
        """A wait document: position and wait, a story, then the hold choices in one gather.

        Any key pressed during the story or the choices goes to ``action_url``; when nothing
        is pressed the document ends and Twilio fetches the waitUrl again, so the caller
        keeps their place in the queue whatever they listen to.
        """
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        gather = twiml.gather(input="dtmf", num_digits=1, timeout=self.timeout, action=action_url,
                              method="POST", action_on_empty_result=False)
        if story_audio:
            gather.play(story_audio)
        elif story_text:
            self.say(gather, story_text)
        for line in options:
            self.say(gather, line)
        return twiml

    def leave_queue(self, lines: Iterable[str]) -> VoiceResponse:
        """Speak, then <Leave> the queue (the Enqueue action URL decides what follows)."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        twiml.leave()
        return twiml

    def whisper(self, line: str, action_url: str, missed: Iterable[str]) -> VoiceResponse:
        """What a peer hears on pickup: one key to accept; nothing pressed means no answer."""
        twiml = VoiceResponse()
        gather = twiml.gather(input="dtmf", num_digits=1, timeout=self.timeout, action=action_url,
                              method="POST", action_on_empty_result=False)
        self.say(gather, line)
        self.say(gather, line)  # said twice: the first words are often lost while the phone comes to the ear
        for text in missed:
            self.say(twiml, text)
        twiml.hangup()
        return twiml

    def conference(self, lines: Iterable[str], room: str, action_url: str) -> VoiceResponse:
        """Speak, then join the private two-person room; it ends when either side hangs up."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        dial = twiml.dial(action=action_url, method="POST")
        dial.conference(room, end_conference_on_exit=True, start_conference_on_enter=True, beep=False)
        return twiml

    def survey_question(self, lines: Iterable[str], action_url: str, after_silence: Iterable[str]) -> VoiceResponse:
        """One optional keypad question (1 to 5); silence is no answer: ``after_silence``, then goodbye."""
        twiml = VoiceResponse()
        gather = twiml.gather(input="dtmf", num_digits=1, timeout=self.timeout, action=action_url, method="POST",
                              action_on_empty_result=False)
        for line in lines:
            self.say(gather, line)
        for line in after_silence:
            self.say(twiml, line)
        twiml.hangup()
        return twiml

    # In-call help (callflows.escalation) ---------------------------------------------

    def peer_conference(self, lines: Iterable[str], room: str, action_url: str) -> VoiceResponse:
        """The peer's side of the room: ``*`` steps out to the in-call menu (``action_url``) and the room stays up."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        dial = twiml.dial(action=action_url, method="POST", hangup_on_star=True)
        # Not endConferenceOnExit: the caller must never be dropped while their peer is in the menu.
        dial.conference(room, end_conference_on_exit=False, start_conference_on_enter=True, beep=False)
        return twiml

    def coach_conference(self, lines: Iterable[str], room: str, action_url: str,
                         coach: str | None) -> VoiceResponse:
        """A supervisor in the room: coaching ``coach`` (only that leg hears them) or, with None, heard by all."""
        twiml = VoiceResponse()
        for line in lines:
            self.say(twiml, line)
        dial = twiml.dial(action=action_url, method="POST", hangup_on_star=True)
        extra = {"coach": coach} if coach else {}
        dial.conference(room, end_conference_on_exit=False, start_conference_on_enter=True, beep=False, **extra)
        return twiml

    def announcement(self, lines: Iterable[str], tone: bool = False) -> VoiceResponse:
        """What a participant hears from an ``AnnounceUrl``: a short tone, or the lines."""
        twiml = VoiceResponse()
        if tone:
            twiml.play(digits="w0")  # one DTMF tone, heard by that participant only
            return twiml
        for line in lines:
            self.say(twiml, line)
        return twiml

    def keypad(self, lines: Iterable[str], action_url: str, finish_on_key: str = "#",
               num_digits: int | None = None) -> VoiceResponse:
        """Ask for digits (a PIN, an id, a one-key menu); no input comes back to ``action_url``."""
        twiml = VoiceResponse()
        gather = twiml.gather(input="dtmf", timeout=self.timeout, finish_on_key=finish_on_key,
                              num_digits=num_digits, action=action_url, method="POST",
                              action_on_empty_result=True)
        for line in lines:
            self.say(gather, line)
        twiml.redirect(action_url, method="POST")
        return twiml

    def record_prompt(self, before: Iterable[str], action_url: str) -> VoiceResponse:
        """Wrap-up's first question, the call record's outcome: one key (1-5), none coming back to ``action_url``."""
        return self.keypad([*before, self.text("record_outcome")], action_url, finish_on_key="", num_digits=1)

    # Callbacks ------------------------------------------------------------------------

    def say_slowly(self, parent: VoiceResponse | Gather, text: str) -> None:
        """A <Say> slowed with SSML whatever the caller's pace (a number read back digit by digit)."""
        for piece in say_pieces(text):
            say = parent.say(voice=self.flow.voice, language=self.flow.say_language)
            say.prosody(piece, rate="slow")

    def readback_menu(self, menu: Menu, action_url: str, before: Iterable[str], digits: str,
                      full_keys: bool = True) -> VoiceResponse:
        """A menu that first reads a number back slowly, digit by digit, so the caller can check it."""
        twiml = VoiceResponse()
        gather = self._gather(twiml, action_url, hints=_hints(menu, self.flow.language))
        for line in before:
            self.say(gather, line)
        self.say_slowly(gather, digits)
        lines = [menu.prompt, *(self.flow.text("press", label=o.label, key=o.key) for o in menu.options),
                 self.flow.text(menu.global_keys if full_keys else "global_keys_short")]
        self._lines(gather, lines)
        twiml.redirect(action_url, method="POST")
        return twiml

    def _lines(self, gather: Gather, lines: Iterable[str]) -> None:
        """Say the lines of a menu; at the slower pace, with a pause between them (time to take each one in)."""
        for i, line in enumerate(lines):
            if i and self.slow:
                gather.pause(length=SLOW_PAUSE_S)
            self.say(gather, line)

    def _gather(self, twiml: VoiceResponse, action_url: str, hints: str) -> Gather:
        return twiml.gather(
            input="dtmf speech",
            num_digits=1,
            timeout=self.timeout,
            speech_timeout="auto",
            hints=hints,
            language=self.flow.say_language,
            action=action_url,
            method="POST",
            action_on_empty_result=True,
        )


def _hints(menu: Menu, language: str) -> str:
    """The menu's own words, then the words that work in every menu (crisis, a person, repeat) in its language."""
    words: list[str] = []
    for option in menu.options:
        words.extend(option.speech)
    words.extend(global_hints(language))
    return ", ".join(dict.fromkeys(words))


def fallback(lines: Iterable[tuple[Flow, str]], crisis_number: str) -> VoiceResponse:
    """Static TwiML for when everything else is down: apologise in each language, dial crisis."""
    twiml = VoiceResponse()
    for flow, line in lines:
        Speaker(flow).say(twiml, line)
    twiml.dial(timeout=30).number(crisis_number)
    return twiml
