"""Stateless web, many workers: two web servers and two workers on one database and one Redis.

Two ``peerline serve`` (gunicorn, two processes each) on different ports and two ``peerline
worker`` processes share the test database and Redis, as two hosts behind a load balancer do.
A round-robin balancer in front of them sends each step of each call to the other server than
the step before (per CallSid), so no step can lean on state kept in one web process. Callers
ring peers, hold, ask for a callback and leave a message at the same time, through the phone
network; the test then checks what a caller or a peer would notice: nobody rung twice for one
call, one callback call and no second, and the message kept.

On SQLite every process shares one database file (fine for a test, not for production); CI
runs it on PostgreSQL (TEST_DATABASE_URL) and the machine's Redis (REDIS_URL).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select

from callflows.services import Services
from models import CallbackRequest, Voicemail
from models.tables import CallbackAttempt, PeerRequest, RingLeg
from queues.connection import ALL_QUEUES
from simulator.engine import HttpTransport, HubClient, Leg, ScriptActor, new_call_sid
from tests.conftest import tone_wav
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN, TEST_ACCOUNT_SID, serving
from tests.workers import LINE_NUMBER, SpawnedWorker, wait_for, worker_env

CONNECTED = "A peer is here. Connecting you now."
PEERS = {"Sam": "+12025550101", "Rosa": "+12025550102"}


class Balancer:
    """A round-robin reverse proxy: the n-th request of a call goes to backend n mod 2."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.client = httpx.Client(timeout=30.0)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.served: dict[str, list[str]] = defaultdict(list)  # CallSid -> backend of each request, in order

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        query = environ.get("QUERY_STRING", "")
        sid = (parse_qs(body.decode()).get("CallSid") or parse_qs(query).get("CallSid") or [""])[0]
        with self.lock:
            backend = self.backends[self.counts[sid] % len(self.backends)]
            self.counts[sid] += 1
            self.served[sid].append(backend)
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_") and key not in ("HTTP_HOST", "HTTP_CONTENT_LENGTH")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        response = self.client.request(environ["REQUEST_METHOD"], backend + environ.get("REQUEST_URI", "/"),
                                       content=body, headers=headers)
        start_response(f"{response.status_code} {response.reason_phrase}",
                       [(k, v) for k, v in response.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")])
        return [response.content]


class WebServer:
    """One ``peerline serve`` (gunicorn) process group on its own port."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        exe = str(Path(sys.executable).parent / "peerline")
        with open(log, "ab") as out:
            self.process = subprocess.Popen([exe, "serve", "--port", str(port), "--workers", "2"], env=env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        """True once the server answers /healthz (it fails the test if the server died)."""
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM the gunicorn master (it stops its workers), else kill the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def free_port() -> int:
    """A free port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hosts(app_config: dict[str, Any], phone_network: Any, svc: Services, tmp_path: Path) -> Iterator[Balancer]:
    """Two web servers and two workers on the test database and Redis, behind a round-robin balancer."""
    env = worker_env(app_config, phone_network.base_url, PEER_WRAPUP_SECONDS="1")
    servers = [WebServer(env, free_port(), tmp_path / f"web{i}.log") for i in (1, 2)]
    workers = [SpawnedWorker(env, tmp_path / f"worker{i}.log") for i in (1, 2)]
    balancer = Balancer([server.url for server in servers])
    try:
        for server in servers:
            wait_for(server.ready, 120, f"web server {server.url}")
        with serving(balancer) as balancer_url:
            network = phone_network.state
            network.rewrite = {PUBLIC_BASE: balancer_url}
            network.peer_answers = "accept"
            yield balancer
            network.peer_answers = None
        for worker in workers:
            assert worker.process.poll() is None, worker.output()
    finally:
        for server in servers:
            server.stop()
        for worker in workers:
            worker.stop()


def place_call(balancer_url: str, network_url: str, number: str, script: list[str],
               audio: bytes | None = None) -> Leg:
    """A caller's leg, as the phone network plays it (not yet started)."""
    hub = HubClient(network_url)
    sid = hub.register(number, LINE_NUMBER, new_call_sid())
    return Leg(HttpTransport({PUBLIC_BASE: balancer_url}), TEST_AUTH_TOKEN, sid, number, LINE_NUMBER,
               ScriptActor(script, audio, talk_s=1.5, hold_s=150), account_sid=TEST_ACCOUNT_SID, hub=hub,
               status_callback=f"{PUBLIC_BASE}/voice/status", max_s=240)


def test_two_web_servers_and_two_workers_serve_simultaneous_calls_once_each(
        hosts: Balancer, phone_network: Any, svc: Services, db: Any, redis: Any) -> None:
    for name, phone in PEERS.items():
        make_peer(db, svc.vault, display_name=name, phone=phone)
    network = phone_network.state
    balancer_url = network.rewrite[PUBLIC_BASE]
    message = tone_wav(2.0)
    callback_number = "+12025550170"
    legs = {
        "talk-1": place_call(balancer_url, phone_network.base_url, "+12025550161", ["1", "1"]),
        "talk-2": place_call(balancer_url, phone_network.base_url, "+12025550162", ["1", "1"]),
        "talk-3": place_call(balancer_url, phone_network.base_url, "+12025550163", ["1", "1"]),
        "callback": place_call(balancer_url, phone_network.base_url, callback_number, ["1", "3", "1", "1", "2"]),
        "message": place_call(balancer_url, phone_network.base_url, "+12025550164", ["1", "4"], message),
    }
    results: dict[str, str] = {}
    threads = [threading.Thread(target=lambda k=key, leg=leg: results.__setitem__(k, leg.run(
        f"{PUBLIC_BASE}/voice/incoming")), name=key) for key, leg in legs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert results == dict.fromkeys(legs, "completed"), {k: leg.heard[-3:] for k, leg in legs.items()}

    # Every caller who asked for a peer was connected, once; nobody heard an apology.
    for key in ("talk-1", "talk-2", "talk-3"):
        assert legs[key].heard.count(CONNECTED) == 1, (key, legs[key].heard)
    for leg in legs.values():
        assert not any("Sorry" in line for line in leg.heard), leg.heard
    assert any(line.startswith("Thank you. We will call you back as soon as a peer is free")
               for line in legs["callback"].heard)
    assert "Thank you. Your message is saved. Our team will check it soon." in legs["message"].heard

    # The callback: one call to the peer, then one to the caller, however many workers and ticks ran.
    def callback_connected() -> bool:
        with svc.sessions() as session:
            return session.scalar(select(CallbackAttempt.stage)) == "connected"
    wait_for(callback_connected, 120, "the callback to connect the peer and the caller")
    with svc.sessions() as session:
        attempts = session.scalars(select(CallbackAttempt)).all()
        assert len(attempts) == 1 and attempts[0].caller_call_sid and attempts[0].peer_call_sid
        caller_leg_sid = attempts[0].caller_call_sid
        assert session.scalar(select(CallbackRequest.status)) in ("dialing", "completed")
    creates = [r.form for r in network.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    assert [form["To"] for form in creates].count([callback_number]) == 1

    # The message: kept (fetched from the network once, stored encrypted) by one of the workers.
    def message_stored() -> bool:
        with svc.sessions() as session:
            return bool(session.scalar(select(Voicemail.audio_path)))
    wait_for(message_stored, 120, "a worker to store the message")
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Voicemail)) == 1
        vm = session.scalar(select(Voicemail))
        assert svc.vault.decrypt((Path(svc.settings.instance_path) / vm.audio_path).read_bytes()) == message
    fetches = [r for r in network.requests if r.method == "GET" and r.path.endswith(f"/Recordings/{vm.recording_sid}.wav")]
    assert len(fetches) == 1

    # No double ring: each outbound call is one the database knows, each peer at most once per caller.
    with svc.sessions() as session:
        ring_legs = session.scalars(select(RingLeg)).all()
        requests = session.scalars(select(PeerRequest)).all()
    assert len(creates) == len(ring_legs) + 2  # + the callback's two legs
    assert len({(leg.request_id, leg.peer_id) for leg in ring_legs}) == len(ring_legs)
    connected = [req for req in requests if req.connected_at is not None]
    assert len(connected) == 3 and all(req.peer_id is not None for req in connected)
    # Each accepted ring leg is the one and only peer of its request.
    for req in connected:
        accepted = [leg for leg in ring_legs if leg.request_id == req.id and leg.peer_id == req.peer_id]
        assert len(accepted) == 1

    # Both web servers answered steps of every call, alternately.
    for key, leg in legs.items():
        served = hosts.served[leg.call_sid]
        assert len(served) >= 4 and set(served) == set(hosts.backends), (key, served)
    assert all(len(set(hosts.served[sid])) == 2 for sid in (caller_leg_sid, attempts[0].peer_call_sid))
    failed = [job_id for name in ALL_QUEUES for job_id in FailedJobRegistry(queue=Queue(name, connection=redis)).get_job_ids()]
    assert failed == []

    # The callback call ends (the line's REST API hangs it up) so nothing outlives the test.
    httpx.post(f"{phone_network.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls/{caller_leg_sid}.json",
               data={"Status": "completed"}, timeout=10)
    network.wait_for_legs(timeout=60)
