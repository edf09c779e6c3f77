"""Outbound legs played by the phone network: a simulated phone rings, answers (or not), plays the peer.

Runs in a thread of the phone network for each ``Calls.json`` it receives while
``peer_answers`` is set. Status callbacks follow Twilio: ``initiated``, ``ringing`` and
``answered`` when asked in ``StatusCallbackEvent``, and the final status (``completed``,
``no-answer``, ``busy``, ``failed``, ``canceled``) always, with ``CallDuration``, each with a
``SequenceNumber`` counting 0, 1, 2... per call.

The call's ``Timeout`` (Twilio's default 60 s, at most 600) is honoured: a phone that has not
picked up by then ends ``no-answer``. A phone that never answers rings the whole ``Timeout``
(scaled by the network's ``pace``; at pace 0 it gives up after its own ring time, so tests stay
quick). With ``MachineDetection`` the answer webhook carries ``AnsweredBy`` as Twilio documents
it for that mode (:func:`simulator.network_state.answered_by`).
"""
from __future__ import annotations

import time

from simulator.engine import HttpTransport, HubClient, Leg, PeerActor
from simulator.errors import SimulatorError
from simulator.network_state import DEFAULT_TIMEOUT_S, MACHINES, MAX_TIMEOUT_S, NOT_ANSWERED, NetworkState, answered_by

MACHINE_GREETING_S = 1.0  # a voicemail greeting plays before the machine "listens"


def ring(network: NetworkState, sid: str, hub_url: str, token: str, mode: str) -> None:
    """Ring the phone of outbound call ``sid`` and play it as ``mode`` says (accept, ignore, ...)."""
    call = network.calls[sid]
    to = call.get("To", "")
    transport = HttpTransport(network.rewrite, signature_header=network.signature_header)
    hub = HubClient(hub_url, want_events=False)  # network events are for the caller's screen
    # The line asks for machine detection only when it calls a caller back: that person talks
    # talk_s and hangs up, like the simulated caller of a live call (the peer waits for them).
    talk_s = network.talk_s if call.get("MachineDetection") else None
    # A participant the line added (the crisis line, a supervisor listening) is not a peer: no scripted keys.
    actor = PeerActor(mode, talk_s=talk_s, keys_source=None if call.get("participant") else network.take_peer_keys)
    leg = Leg(transport, network.signing_key or token, sid, call.get("From", ""), to, actor,
              account_sid=call["account_sid"],
              direction="outbound-api", hub=hub, network_url=hub_url, pace=network.pace, max_s=600,
              out=lambda line: _show(network, to, line), status_callback=call.get("StatusCallback"),
              status_events=("completed",))

    def progress(event: str, status: str, **more: str) -> None:
        leg.status = status
        url = call.get("StatusCallback")
        if url and (event in _events(call) or event == "completed"):
            leg.notify(url, call.get("StatusCallbackMethod", "POST"), CallStatus=status,
                       CallbackSource="call-progress-events", SequenceNumber=leg.next_sequence(),
                       Timestamp=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), **more)

    def cancelled() -> bool:
        with network.lock:
            return call["status"] == "canceled"

    try:
        network.event(f"ringing {to}")
        with network.lock:
            if call["status"] == "queued":
                call["status"] = "initiated"
        progress("initiated", "initiated")
        with network.lock:
            if call["status"] == "initiated":
                call["status"] = "ringing"
        progress("ringing", "ringing")
        timeout = _timeout(call)
        rings = network.rings_for(to)
        picks_up = mode not in NOT_ANSWERED and rings < timeout
        if mode == "busy" or mode == "failed":
            wall = min(rings, 0.1)  # a busy tone or a failed line is known at once
        elif picks_up:
            wall = rings
        else:  # rings out: the whole Timeout, at the network's pace
            wall = timeout * network.pace if network.pace else min(rings, timeout)
        deadline = time.monotonic() + wall
        while time.monotonic() < deadline and not cancelled():
            time.sleep(0.02)
        if cancelled():
            network.event(f"{to} stops ringing (canceled)")
            _end(network, sid, "canceled")
            progress("completed", "canceled", CallDuration="0")
            return
        if not picks_up:
            status = mode if mode in ("busy", "failed") else "no-answer"
            network.event(f"{to} does not answer ({status})" if status != "no-answer"
                          else f"{to} does not answer ({status} after {timeout} s)")
            _end(network, sid, status)
            progress("completed", status, CallDuration="0")
            return
        with network.lock:
            if call["status"] == "canceled":  # lost the race with a cancel: never answer
                return
            call["status"] = "in-progress"
            url, method = call.get("Url", ""), call.get("Method", "POST")
        detection = str(call.get("MachineDetection") or "")
        if detection:
            leg.extra["AnsweredBy"] = answered_by(mode, detection)
        network.event(f"{to} answers" + _what(mode))
        progress("answered", "in-progress")
        leg.status = "in-progress"
        leg.started = time.monotonic()
        if mode in MACHINES:
            time.sleep(MACHINE_GREETING_S * network.pace)
        # Twiml (inline) or Url, as Calls.create allows; the leg posts the final status callback itself.
        leg.run(None if call.get("Twiml") else url, method, twiml=call.get("Twiml"))
        network.event(f"{to} hangs up")
    except SimulatorError as exc:
        network.event(f"the leg to {to} failed: {exc}")
        _end(network, sid, "failed")
        progress("completed", "failed", CallDuration="0")
    finally:
        transport.close()
        hub.close()


def _timeout(call: dict[str, object]) -> int:
    """The call's ``Timeout`` in seconds (Twilio's default when absent, capped at its maximum)."""
    try:
        return max(1, min(int(str(call.get("Timeout") or DEFAULT_TIMEOUT_S)), MAX_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _what(mode: str) -> str:
    if mode in MACHINES:
        return " (a voicemail machine)"
    if mode == "fax":
        return " (a fax machine)"
    return ""


def _show(network: NetworkState, to: str, line: str) -> None:
    text = line.strip()
    if text.startswith('"'):
        network.event(f"{to} hears {text}")
    elif text.startswith("> you press"):
        network.event(f"{to} presses {text.removeprefix('> you press ')}")
    elif text.startswith("> (you say nothing)"):
        network.event(f"{to} presses nothing")
    elif text.startswith("  [connected"):
        network.event(f"{to} is connected")


def _events(call: dict[str, object]) -> tuple[str, ...]:
    events = call.get("events") or []
    return tuple(str(e) for e in events) if isinstance(events, list) else ()


def _end(network: NetworkState, sid: str, status: str) -> None:
    with network.lock:
        call = network.calls[sid]
        if call["status"] not in ("completed", "canceled", "failed", "busy", "no-answer"):
            call["status"] = status
        network.dequeue(sid)
        network.leave_conference(sid)
