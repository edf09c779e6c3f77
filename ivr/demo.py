"""Demo data for `make run`: three peers, two staff logins and eight approved peer stories."""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from models import Peer, PeerStory, StaffUser, utcnow
from models.crypto import Vault

log = logging.getLogger(__name__)

DEMO_LOGINS = (("supervisor", "supervisor-demo", "supervisor"), ("peer", "peer-demo", "peer"))
DEMO_PEERS = (
    # name, phone (demo numbers in the reserved 555-01xx range), languages, tags, PIN
    ("Sam", "+15555550101", ["en"], ["medication-based-recovery"], "1111"),
    ("Rosa", "+15555550102", ["en", "es"], ["medication-based-recovery", "chronic-pain"], "2222"),
    ("Jordan", "+15555550103", ["en"], ["mental-health"], "3333"),
)
# The demo supervisor's own phone (fictional): rung when a peer asks for help (in-call menu, 2)
# while SUPERVISOR_NUMBER is unset, and used for Listen / Coach / Join on the live board.
DEMO_SUPERVISOR_PHONE = "+15555550109"
ESPEAK_VOICES = {"en": "en-us", "es": "es-419"}
DEMO_STORIES = (
    ("medication", "en", "Methadone gave me my mornings back",
     "When I started methadone I was scared people would say I was trading one drug for another. "
     "My counselor told me it is medicine, like insulin. Two years later I have my mornings back, "
     "and I go to work. If you are thinking about medication, you deserve to try it."),
    ("pain", "en", "Living with pain without losing myself",
     "After my back injury, pills were the only thing that helped, until they took over. "
     "Now I use buprenorphine and a pain plan with my doctor. Some days still hurt. "
     "But I am honest about the pain now, and I am not alone with it."),
    ("loneliness", "en", "The first call I made",
     "I did not talk to anyone for months. The first time I called a peer line I almost hung up. "
     "The person on the other end had been where I was. We talked about nothing for ten minutes, "
     "and it was the best ten minutes of my week."),
    ("stigma", "en", "I stopped hiding my recovery",
     "At the pharmacy I used to look at the floor when I picked up my prescription. "
     "A peer told me that taking care of my health is nothing to hide. "
     "Now I look the pharmacist in the eye and say thank you."),
    ("medication", "es", "La buprenorfina me devolvió a mi familia",
     "Tenía miedo de que mi familia pensara que cambiaba una droga por otra. "
     "Mi doctora me explicó que la buprenorfina es un tratamiento. "
     "Hoy llevo a mis hijos a la escuela cada mañana. Usted también merece intentarlo."),
    ("pain", "es", "El dolor no me define",
     "Después del accidente, el dolor era todo mi día. Hoy tengo un plan con mi médico "
     "y un grupo de pares. Hay días difíciles, pero ya no los paso sola."),
    ("loneliness", "es", "Una voz al otro lado",
     "Pasé meses sin hablar con nadie. La primera vez que llamé casi colgué. "
     "La persona que contestó había vivido lo mismo. Esa conversación me dio fuerza para llamar otra vez."),
    ("stigma", "es", "Ya no me escondo",
     "Antes me daba vergüenza ir a la clínica. Un compañero me dijo que cuidar mi salud no es "
     "algo que esconder. Ahora entro con la cabeza en alto."),
)


def speak_to_wav(text: str, language: str, dest: Path) -> bool:
    """Render ``text`` with espeak-ng to 8 kHz mono PCM WAV (phone quality); False if unavailable."""
    espeak = shutil.which("espeak-ng")
    sox = shutil.which("sox")
    if not espeak or not sox:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", ESPEAK_VOICES.get(language, language), "-s", "150", "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run([sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", str(dest)], check=True, capture_output=True)
    return True


def wav_duration(path: Path) -> float:
    """Length of a WAV file in seconds."""
    with wave.open(str(path), "rb") as fh:
        return fh.getnframes() / float(fh.getframerate())


def seed_demo(session: Session, vault: Vault, media_dir: Path, with_audio: bool = True) -> bool:
    """Add demo data if the database has no peers and no staff; returns whether it seeded."""
    has_data = session.scalar(select(func.count()).select_from(Peer)) or session.scalar(
        select(func.count()).select_from(StaffUser)
    )
    if has_data:
        return False
    peers = []
    for name, phone, languages, tags, pin in DEMO_PEERS:
        peer = Peer(display_name=name, languages=languages, tags=tags, status="available",
                    pin_hash=generate_password_hash(pin))
        peer.set_phone(vault, phone)
        session.add(peer)
        peers.append(peer)
    session.flush()
    for username, password, role in DEMO_LOGINS:
        session.add(StaffUser(username=username, password_hash=generate_password_hash(password), role=role,
                              peer_id=peers[0].id if role == "peer" else None,
                              phone_encrypted=vault.encrypt_text(DEMO_SUPERVISOR_PHONE) if role == "supervisor"
                              else None))
    for index, (topic, language, title, transcript) in enumerate(DEMO_STORIES):
        story = PeerStory(title=title, topic=topic, language=language, transcript=transcript, status="approved",
                          consent_given=True, consent_at=utcnow(), peer_id=peers[index % len(peers)].id)
        session.add(story)
        session.flush()
        dest = media_dir / f"story-{story.id}.wav"
        if with_audio and speak_to_wav(transcript, language, dest):
            story.audio_path = str(dest)
            story.duration_s = wav_duration(dest)
    session.commit()
    return True
