"""Peer stories: topics, signed expiring audio, keys to pause, skip, replay and go back."""
from __future__ import annotations

import io
import shutil
import wave
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from ivr.demo import seed_demo
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


def to_topic(caller: TestCaller, topic_key: str = "1") -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("2")
    caller.press(topic_key)


def test_story_plays_at_a_signed_url_inside_a_key_gather(caller: TestCaller, client, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    assert "Here is a story from a peer: Methadone gave me my mornings back." in caller.said
    assert "Press 1 to talk with a peer about this story, 2 to pause, 3 to skip" in caller.said
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
    caller.press("7")
    assert caller.said.startswith("Which stories would you like to hear?")


def test_pause_and_resume_continue_the_same_story(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    caller.press("2")
    assert caller.said.startswith("Paused. Press any key when you want to go on.")
    assert int(caller.gather().get("timeout")) >= 30
    caller.press("5")
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


def test_another_key_during_a_story_offers_what_next_for_that_story(caller: TestCaller, stories) -> None:  # type: ignore[no-untyped-def]
    to_topic(caller)
    caller.press("3")  # skip to the second story
    assert "A second story" in caller.said
    caller.press("5")  # not a story key: the choices after the story
    assert caller.said.startswith("What next?")
    caller.press("2")  # hear it again: the same story of the same topic
    assert "Here is a story from a peer: A second story." in caller.said
