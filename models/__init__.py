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
from models.metrics import PeerStatusChange, SurveyAnswer
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
# Running the line day to day (hours, closures, caller plans, call records, shifts).
from models.operations import (  # noqa: E402
    CallerBlock,
    CallerPlan,
    CallRecord,
    Closure,
    Holiday,
    OpenHours,
    Shift,
    ShiftRules,
    ShiftSignup,
    ShiftTemplate,
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
    "PeerStatusChange",
    "PeerStory",
    "StaffUser",
    "SurveyAnswer",
    "Voicemail",
    "utcnow",
    "CallerBlock",
    "CallerPlan",
    "CallRecord",
    "Closure",
    "Holiday",
    "OpenHours",
    "Shift",
    "ShiftRules",
    "ShiftSignup",
    "ShiftTemplate",
]
