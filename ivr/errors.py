"""The exceptions of the ``ivr`` package (the Flask web app), under one base.

- :class:`IvrError`: base class of everything the web app raises itself.
- :class:`AuditLogError`: code tried to change or delete an audit entry; the staff pages'
  audit log is append-only from the app (:func:`ivr.dashboard.core.install_audit_guard`
  raises it from the session's ``before_flush``, so the commit fails and nothing is changed).

What a webhook or a staff page cannot do is answered as TwiML or as an HTTP error (403, 404),
not raised; errors of the rules the app calls are in :mod:`callflows.errors`.
"""
from __future__ import annotations


class IvrError(Exception):
    """Base class of the errors raised by the web app."""


class AuditLogError(IvrError):
    """Raised when the app tries to change or delete an audit entry."""
