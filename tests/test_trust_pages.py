"""What supervisors read can be trusted: triage flags that explain themselves (phrase, words,
recognizer confidence, where in the audio), negated mentions shown but not ranked as danger,
and a player that gets a fresh signed link each time it is played."""
from __future__ import annotations

import json
import re
from typing import Any

from models import Voicemail
from tests.test_dashboard import as_supervisor, audit_actions, sign_in  # noqa: F401  (fixture)


def store_flags(db: Any, svc: Any, vm: Voicemail, flags: list[dict[str, Any]], level: str) -> None:
    """Give a voicemail the flags the transcription job stores."""
    vm.risk_terms_encrypted = svc.vault.encrypt_text(json.dumps(flags))
    vm.risk_level = level
    db.commit()


def test_each_flag_shows_its_phrase_confidence_and_a_play_from_here_link(
        as_supervisor: Any, db: Any, svc: Any, dashboard_data: Any) -> None:  # noqa: F811
    vm = dashboard_data.high
    store_flags(db, svc, vm, [{"phrase": "end it all", "text": "end it all", "category": "suicide", "level": "high",
                               "language": "en", "category_level": "high", "negated_by": "", "conf": 0.41,
                               "start": 1.2, "end": 2.4}], "high")
    html = as_supervisor.get(f"/staff/voicemails/{vm.id}").get_data(as_text=True)
    flags = re.search(r'<ul class="flags" id="risk-flags".*?</ul>', html, re.S)
    assert flags
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", flags.group(0))).strip()
    assert text == ("“end it all” (suicide) heard as “end it all”: High risk; recognizer confidence 41% "
                    "(unsure, still counted as risk) Play from 0:01.2 (“end it all”)")
    link = re.search(r'<a class="seek" href="([^"]+)" data-start="1.20">', flags.group(0))
    assert link and link.group(1).startswith("/staff/audio/") and link.group(1).endswith("#t=1.2")
    # The link (without its fragment) plays the recording: a media fragment starts it at the flag.
    assert as_supervisor.get(link.group(1).split("#")[0]).data == dashboard_data.audio
    inbox = as_supervisor.get("/staff/voicemails").get_data(as_text=True)
    assert "Flags: “<span lang=\"en\">end it all</span>” 41% sure, unsure" in inbox


def test_a_negated_mention_is_shown_but_ranked_below_real_risk(
        as_supervisor: Any, db: Any, svc: Any, dashboard_data: Any) -> None:  # noqa: F811
    vm = dashboard_data.safe
    vm.language = "es"
    store_flags(db, svc, vm, [{"phrase": "quiero morir*", "text": "quiero morir", "category": "want_to_die",
                               "level": "mentioned", "language": "es", "category_level": "high",
                               "negated_by": "no", "conf": 0.93, "start": 0.4, "end": 1.1}], "mentioned")
    html = as_supervisor.get(f"/staff/voicemails/{vm.id}").get_data(as_text=True)
    assert 'id="risk-level">Risk words mentioned (negated)<' in html
    assert 'only mentioned, after “<span lang="es">no</span>”' in html
    assert '“<span lang="es">quiero morir*</span>”' in html
    inbox = as_supervisor.get("/staff/voicemails").get_data(as_text=True)
    order = [int(i) for i in re.findall(r'href="/staff/voicemails/(\d+)"', inbox)]
    assert order.index(dashboard_data.high.id) < order.index(vm.id)
    assert order.index(dashboard_data.failed.id) < order.index(vm.id)  # not yet triaged ranks above


def test_the_player_gets_a_fresh_signed_link_each_time(as_supervisor: Any, db: Any, dashboard_data: Any,  # noqa: F811
                                                        app: Any) -> None:
    vm = dashboard_data.high
    html = as_supervisor.get(f"/staff/voicemails/{vm.id}").get_data(as_text=True)
    fresh = re.search(r'data-fresh-src="([^"]+)"', html)
    assert fresh and fresh.group(1) == f"/staff/audio-link/voicemail/{vm.id}"
    assert 'class="message message-error player-error" role="alert" hidden' in html
    app.config["STAFF_AUDIO_URL_TTL"] = 600
    answer = as_supervisor.get(fresh.group(1))
    assert answer.headers["Cache-Control"] == "no-store"
    url = answer.get_json()["url"]
    assert as_supervisor.get(url).data == dashboard_data.audio
    assert as_supervisor.get("/staff/audio-link/nothing/1").status_code == 404
    assert app.test_client().get(fresh.group(1)).status_code == 302  # signed out: no link


def test_spanish_titles_and_transcripts_carry_lang_es(as_supervisor: Any, db: Any, svc: Any,  # noqa: F811
                                                      dashboard_data: Any) -> None:
    from models import PeerStory

    story = PeerStory(title="Encontrar una clínica que escucha", topic="medication", language="es",
                      transcript="Me costó tres intentos encontrar una clínica.", status="approved",
                      consent_given=True, peer_id=dashboard_data.rosa.id)
    db.add(story)
    vm = dashboard_data.safe
    vm.language, vm.model_name = "es", "vosk-model-small-es-0.42"
    vm.transcript_encrypted = svc.vault.encrypt_text("necesito hablar con alguien")
    db.commit()
    listed = as_supervisor.get("/staff/stories").get_data(as_text=True)
    assert re.search(rf'href="/staff/stories/{story.id}" lang="es">Encontrar una clínica que escucha<', listed)
    page = as_supervisor.get(f"/staff/stories/{story.id}").get_data(as_text=True)
    assert '<title lang="es">Encontrar una clínica que escucha · peerline</title>' in page
    assert '<h1 lang="es">Encontrar una clínica que escucha</h1>' in page
    assert '<p class="transcript" lang="es">Me costó tres intentos encontrar una clínica.</p>' in page
    voicemail = as_supervisor.get(f"/staff/voicemails/{vm.id}").get_data(as_text=True)
    transcript = re.search(r'<p class="transcript" id="transcript" lang="es">(.*?)</p>', voicemail, re.S)
    assert transcript and "necesito" in transcript.group(1)
