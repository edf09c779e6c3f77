"""Database models, encryption at rest and session handling for peerline.

Plain Python: nothing here imports Flask or ``ivr``.

Exceptions raised here derive from :class:`ModelError`:

- :class:`models.crypto.DataKeyError`: the data key is missing or malformed.
- :class:`models.crypto.DecryptError`: stored ciphertext cannot be read with the key.
"""
from __future__ import annotations


class ModelError(Exception):
    """Base class for errors raised by the models package."""


from models.tables import (  # noqa: E402  (the exception above must exist first)
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
    "ModelError",
    "Peer",
    "PeerStory",
    "StaffUser",
    "Voicemail",
    "utcnow",
]
