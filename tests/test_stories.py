"""Peer stories: topics, signed expiring audio, keys to pause, skip, replay and go back."""
from __future__ import annotations

import io
import shutil
import time
import wave
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import select

from ivr.demo import seed_demo
from ivr.webhooks.story_audio import story_audio_url
from models import PeerStory
from tests.helpers import TestCaller, require


def tone_wav(path: Path, seconds: float = 4.0, rate: int = 8000) -> Path:
    """A real, short 8 kHz PCM WAV (a quiet square wave) for stories in tests."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        value = 3000 if (n // 20) % 2 else -3000
        frames += value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(bytes(frames))
    return path


@pytest.fixture
def stories(db, tmp_path):  # type: ignore[no-untyped-def]
    rows = [
        PeerStory(title="Methadone gave me my mornings back", topic="medication", language="en",
                  transcript="I started methadone.", audio_path=str(tone_wav(tmp_path / "a.wav")),
                  status="approved", consent_given=True),
        PeerStory(title="A second story", topic="medication", language="en", transcript="My second story text.",
                  status="approved", consent_given=True),
        PeerStory(title="Draft story", topic="medication", language="en", transcript="Not yet approved.",
                  status="draft", consent_given=True),
        PeerStory(title="No consent", topic="medication", language="en", transcript="No consent yet.",
                  status="approved", consent_given=False),
    ]
    db.add_all(rows)
    db.commit()
    return rows


PLAYING_KEYS_EN = ("To talk with a peer about this story, press 1. To pause, press 2. For the next story, press 3. "
                   "To hear it again, press 4. To go back to the topics, press 5.")


def to_topic(caller: TestCaller, topic_key: str = "1") -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("2")
    caller.press(topic_key)


def test_story_plays_at_a_signed_url_inside_a_key_gather(caller: TestCaller, client, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    assert "Here is a story from a peer: Methadone gave me my mornings back." in caller.said
    assert caller.said == ("Here is a story from a peer: Methadone gave me my mornings back. " + PLAYING_KEYS_EN)
    play = caller.twiml.find("Gather/Play")
    assert play is not None
    url = urlsplit(play.text)
    assert url.scheme == "https" and url.netloc == "peerline.test"
    audio = client.get(url.path)
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    with wave.open(io.BytesIO(audio.data)) as fh:
        assert fh.getframerate() == 8000 and fh.getnframes() == 32000
    # a forged or altered token is refused
    assert client.get(url.path.replace(".wav", "x.wav")).status_code == 404


def test_media_url_expires(app_config, stories) -> None:  # type: ignore[no-untyped-def]
    from ivr import create_app

    app_config["media_url_ttl_s"] = -1  # every URL is already too old
    caller = TestCaller(create_app(app_config).test_client())
    to_topic(caller)
    url = urlsplit(caller.twiml.find("Gather/Play").text)
    assert caller.client.get(url.path).status_code == 410


def test_only_approved_consented_stories_play(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    caller.press("3")  # skip
    assert "A second story" in caller.said
    assert caller.twiml.find("Gather/Play") is None  # no audio: the text is spoken
    assert "My second story text." in caller.said
    caller.press("3")
    assert caller.said.startswith("That was the last story on this topic.")
    assert "Draft story" not in " ".join(caller.heard) and "No consent" not in " ".join(caller.heard)


def test_replay_and_back(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    first = caller.said
    caller.press("4")
    assert caller.said == first
    caller.press("5")
    assert caller.said.startswith("Which stories would you like to hear?")


def test_pause_and_resume_continue_the_same_story(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    caller.press("2")
    assert caller.said.startswith("Paused. ")
    assert int(caller.gather().get("timeout")) >= 30
    caller.press("2")
    assert "Methadone gave me my mornings back" in caller.said
    assert caller.twiml.find("Gather/Play") is not None


def test_after_a_story_the_caller_chooses_what_next(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    caller.follow()  # the story ended without a key
    assert "To talk with a peer about this story, press 1." in caller.said
    caller.press("3")
    assert "A second story" in caller.said


def test_talk_about_this_story_offers_a_way_to_a_peer(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    caller.press("1")
    # No peer is signed on in this test: the caller hears so and is offered a callback or a message at once.
    assert "call back" in caller.said and "message" in caller.said
    assert caller.twiml.find("Hangup") is None


def test_topic_without_stories_says_so(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller, "4")
    assert caller.said.startswith("There are no stories on this topic yet.")


def test_demo_seed_makes_stories_with_espeak_audio(svc, db) -> None:  # type: ignore[no-untyped-def]
    require(bool(shutil.which("espeak-ng") and shutil.which("sox")),
            "install espeak-ng and sox (apt-get install espeak-ng sox) to render story audio")
    media = Path(svc.settings.instance_path) / "media"
    assert seed_demo(db, svc.vault, media) is True
    assert seed_demo(db, svc.vault, media) is False  # only into an empty database
    rows = db.scalars(select(PeerStory).where(PeerStory.status == "approved")).all()
    assert {(s.topic, s.language) for s in rows} == {
        (t, lang) for t in ("medication", "pain", "loneliness", "stigma") for lang in ("en", "es")}
    for story in rows:
        with wave.open(story.audio_path) as fh:
            assert fh.getframerate() == 8000 and fh.getnchannels() == 1
            assert fh.getnframes() / 8000 > 3  # real speech, several seconds


# One key map while a story plays, while it is paused and after it -----------------------------

PAUSED_EN = ("Paused. To talk with a peer about this story, press 1. To go on with the story, press 2. "
             "For the next story, press 3. To hear it again, press 4. To go back to the topics, press 5.")
AFTER_EN = ("What next? To talk with a peer about this story, press 1. For the next story, press 3. "
            "To hear it again, press 4. To go back to the topics, press 5.")
FIRST = "Here is a story from a peer: Methadone gave me my mornings back."
SECOND = "Here is a story from a peer: A second story."
NOBODY_ON = "We are sorry. No peers are on shift right now, so nobody can answer live."


def global_keys(svc, language: str = "en") -> str:  # type: ignore[no-untyped-def]
    """The keys that work everywhere, as every menu says them in full."""
    return svc.flows[language].text("global_keys")


def short_keys(svc, language: str = "en") -> str:  # type: ignore[no-untyped-def]
    """The short reminder of those keys, said by menus after the first one of the call."""
    return svc.flows[language].text("global_keys_short")


def playing(caller: TestCaller) -> None:
    """The first story of a topic is playing."""
    to_topic(caller)


def paused(caller: TestCaller) -> None:
    """The first story is paused."""
    to_topic(caller)
    caller.press("2")


def after(caller: TestCaller) -> None:
    """The first story ended without a key: the choices after it."""
    to_topic(caller)
    caller.follow()


STATES = {"playing": playing, "paused": paused, "after": after}


def is_peer_about_the_story(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    # Nobody is on shift in these tests: the caller hears so and gets a callback or a message at once.
    assert caller.said.startswith(NOBODY_ON)
    assert "To get a call back, press 1." in caller.said and caller.twiml.find("Hangup") is None


def is_next(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said.startswith(SECOND) and caller.twiml.find("Gather/Play") is None


def is_again_from_the_start(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said.startswith(FIRST)
    assert "start=0" in caller.gather().get("action")  # from the beginning, not where it was paused


def is_topics(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said.startswith("Which stories would you like to hear?")


def is_person(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    # 0: any free peer; with nobody on shift, a message.
    assert caller.said == NOBODY_ON
    assert urlsplit(caller.twiml.find("Redirect").text).path == "/voice/voicemail"


def is_crisis(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.twiml.find("Dial/Number").text == "988"
    assert caller.said == "Connecting you to the crisis line now. You can also dial 9 8 8 any time."


def is_paused(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said == f"{PAUSED_EN} {global_keys(svc)}"
    assert "/voice/stories/medication/resume?" in caller.gather().get("action")


def is_paused_saying_7_is_no_choice(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said == f"Sorry, 7 is not a choice here. {PAUSED_EN} {global_keys(svc)}"


def is_resumed(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said.startswith(FIRST) and caller.twiml.find("Gather/Play") is not None
    assert "/voice/stories/medication/key?" in caller.gather().get("action")


def is_after_menu_again(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said == f"{AFTER_EN} {global_keys(svc)}"


def is_no_choice_after(caller: TestCaller, svc) -> None:  # type: ignore[no-untyped-def]
    assert caller.said.startswith("Sorry, 2 is not a choice here. You can press 1, 3, 4 or 5.")


# The same key means the same thing in every state; 2 pauses and goes on (no meaning after the end).
KEYS = {
    ("playing", "1"): is_peer_about_the_story, ("paused", "1"): is_peer_about_the_story,
    ("after", "1"): is_peer_about_the_story,
    ("playing", "2"): is_paused, ("paused", "2"): is_resumed, ("after", "2"): is_no_choice_after,
    ("playing", "3"): is_next, ("paused", "3"): is_next, ("after", "3"): is_next,
    ("playing", "4"): is_again_from_the_start, ("paused", "4"): is_again_from_the_start,
    ("after", "4"): is_again_from_the_start,
    ("playing", "5"): is_topics, ("paused", "5"): is_topics, ("after", "5"): is_topics,
    ("playing", "*"): is_paused, ("paused", "*"): is_paused, ("after", "*"): is_after_menu_again,
    ("playing", "0"): is_person, ("paused", "0"): is_person, ("after", "0"): is_person,
    ("playing", "9"): is_crisis, ("paused", "9"): is_crisis, ("after", "9"): is_crisis,
    # Another key: while playing it pauses (the place is kept); while paused it goes on.
    ("playing", "7"): is_paused_saying_7_is_no_choice, ("paused", "7"): is_resumed,
    ("playing", "#"): is_paused, ("paused", "#"): is_resumed,
}


@pytest.mark.parametrize(("state", "key"), list(KEYS), ids=[f"{s}-{k}" for s, k in KEYS])
def test_each_key_in_each_state_of_a_story(caller: TestCaller, svc, stories, state: str,  # type: ignore[no-untyped-def]
                                           key: str) -> None:
    STATES[state](caller)
    caller.press(key)
    KEYS[(state, key)](caller, svc)


def test_the_choices_after_a_story_are_named_before_their_keys(caller: TestCaller, svc, stories) -> None:  # type: ignore[no-untyped-def]
    after(caller)
    assert caller.said == f"{AFTER_EN} {short_keys(svc)}"


def test_paused_star_keeps_the_place_and_silence_goes_on_from_there(caller: TestCaller, client, svc,  # type: ignore[no-untyped-def]
                                                                    stories) -> None:
    caller.post("/voice/stories/medication/resume?i=0&start=1.5&lang=en", Digits="*")
    assert caller.said == f"{PAUSED_EN} {global_keys(svc)}"
    assert caller.gather().get("action") == "https://peerline.test/voice/stories/medication/resume?i=0&start=1.5&lang=en"
    caller.silence()  # the long wait is over: the story goes on where it stopped
    assert caller.said.startswith(FIRST)
    audio = client.get(urlsplit(caller.twiml.find("Gather/Play").text).path)
    with wave.open(io.BytesIO(audio.data)) as fh:
        assert fh.getnframes() == 32000 - 12000  # 1.5 s of the 4 s story already heard


def test_a_stray_key_while_playing_pauses_where_the_caller_was(caller: TestCaller, svc, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    key_url = urlsplit(caller.gather().get("action"))
    query = {name: values[0] for name, values in parse_qs(key_url.query).items()}
    # Pressed 10 s into the story's audio (after the spoken introduction of `lead` seconds).
    query["t0"] = str(int(time.time()) - 10 - int(query["lead"]))
    caller.post(f"{key_url.path}?{urlencode(query)}", Digits="6")
    assert caller.said == f"Sorry, 6 is not a choice here. {PAUSED_EN} {global_keys(svc)}"
    start = float(parse_qs(urlsplit(caller.gather().get("action")).query)["start"][0])
    assert 6.0 <= start <= 8.0  # a few seconds back, so the caller picks up the thread


def test_story_keys_in_spanish(client, svc, db) -> None:  # type: ignore[no-untyped-def]
    db.add(PeerStory(title="La metadona me devolvió las mañanas", topic="medication", language="es",
                     transcript="Empecé con metadona.", status="approved", consent_given=True))
    db.commit()
    caller = TestCaller(client)
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("2")
    caller.press("1")
    assert caller.said == (
        "Esta es la historia de un par: La metadona me devolvió las mañanas. "
        "Para hablar con un par sobre esta historia, oprima 1. Para pausar, oprima 2. "
        "Para la siguiente historia, oprima 3. Para oírla otra vez, oprima 4. Para volver a los temas, oprima 5. "
        "Empecé con metadona.")
    caller.press("2")
    assert caller.said == (
        "En pausa. Para hablar con un par sobre esta historia, oprima 1. Para seguir con la historia, oprima 2. "
        "Para la siguiente historia, oprima 3. Para oírla otra vez, oprima 4. Para volver a los temas, oprima 5. "
        + global_keys(svc, "es"))
    caller.press("2")
    caller.follow()
    assert caller.said == (
        "¿Y ahora? Para hablar con un par sobre esta historia, oprima 1. Para la siguiente historia, oprima 3. "
        "Para oírla otra vez, oprima 4. Para volver a los temas, oprima 5. " + short_keys(svc, "es"))


@pytest.mark.parametrize(("slow", "story_s", "paused_s"), [(False, "2", "60"), (True, "5", "120")])
def test_story_timeouts_follow_the_callers_pace(caller: TestCaller, stories, slow: bool, story_s: str,  # type: ignore[no-untyped-def]
                                                paused_s: str) -> None:
    pace = "&slow=1" if slow else ""
    caller.post(f"/voice/action/story:medication?lang=en{pace}")
    assert caller.gather().get("timeout") == story_s
    assert ("slow=1" in caller.gather().get("action")) is slow
    caller.press("2")
    assert caller.gather().get("timeout") == paused_s
    assert (caller.twiml.find("Gather/Say/prosody") is not None) is slow


@pytest.mark.parametrize("start", ["nan", "NaN", "inf", "-inf", "1e309", "-5", "abc", "99999999"])
def test_a_garbled_resume_position_still_plays_the_story(caller: TestCaller, client, stories,  # type: ignore[no-untyped-def]
                                                         start: str) -> None:
    to_topic(caller)
    caller.press("2")  # paused: the resume URL carries where the story was
    parts = urlsplit(caller.gather().get("action"))
    query = {**dict(parse_qsl(parts.query)), "start": start}
    caller.post(f"{parts.path}?{urlencode(query)}", Digits="2")  # go on
    audio = client.get(urlsplit(caller.twiml.find("Gather/Play").text).path)
    assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data[:4] == b"RIFF"


@pytest.mark.parametrize("start", [float("nan"), float("inf"), -3.0])
def test_story_audio_from_an_impossible_position_is_the_whole_story(app, client, stories,  # type: ignore[no-untyped-def]
                                                                    start: float) -> None:
    with app.test_request_context():
        url = story_audio_url(stories[0].id, start)  # signed, so only the line itself could make one
    audio = client.get(urlsplit(url).path)
    assert audio.status_code == 200 and audio.data == Path(stories[0].audio_path).read_bytes()
