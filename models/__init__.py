"""Database models, encryption at rest and session handling for peerline.

Plain Python: nothing here imports Flask or ``ivr``.

Exceptions raised here derive from :class:`ModelError` (all defined in :mod:`models.errors`
and re-exported here):

- :class:`DataKeyError`: the data key is missing or malformed.
- :class:`DecryptError`: stored ciphertext cannot be read with the key.
"""
from __future__ import annotations

from models.escalation import Handoff, MonitorSession
from models.errors import DataKeyError, DecryptError, ModelError
from models.tables import (
    AuditEntry,
    Base,
    Call,
    CallEvent,
    CallbackRequest,
    Caller,
    Peer,
    PeerStory,
    StaffUser,
    Voicemail,
    utcnow,
)

__all__ = [
    "AuditEntry",
    "Base",
    "Call",
    "CallEvent",
    "CallbackRequest",
    "Caller",
    "DataKeyError",
    "DecryptError",
    "Handoff",
    "ModelError",
    "MonitorSession",
    "Peer",
    "PeerStory",
    "StaffUser",
    "Voicemail",
    "utcnow",
]
