"""Twilio request signatures: every webhook is checked against PUBLIC_BASE_URL + path."""
from __future__ import annotations

from flask import abort, request
from twilio.request_validator import RequestValidator

from ivr.services import services


def expected_url() -> str:
    """The URL Twilio signed: the public base URL plus the path and query of this request."""
    base = services().settings.public_base_url
    full_path = request.full_path if request.query_string else request.path
    return base + full_path


def has_valid_signature() -> bool:
    """True when the request carries a valid X-Twilio-Signature (or no auth token is configured).

    Checked whenever an auth token is configured, whatever the host name: a proxy or a
    test host is no reason to trust a request.
    """
    token = services().settings.twilio_auth_token
    if not token:
        return True
    signature = request.headers.get("X-Twilio-Signature", "")
    params = request.form.to_dict(flat=True) if request.method == "POST" else {}
    return bool(signature) and RequestValidator(token).validate(expected_url(), params, signature)


def require_twilio_signature() -> None:
    """Abort with 403 unless the request carries a valid X-Twilio-Signature."""
    if not has_valid_signature():
        abort(403)
