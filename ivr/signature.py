"""Twilio request signatures: every webhook is checked against PUBLIC_BASE_URL + path, and its body's size first."""
from __future__ import annotations

from urllib.parse import quote

from flask import abort, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import RequestEntityTooLarge

from ivr.services import services

# What url_for leaves unescaped in a path argument (werkzeug's converters): the path a webhook
# URL was given to Twilio with, percent-encoded, is the path Twilio signs.
PATH_SAFE = "!$&'()*+,/:;=@"


def expected_url() -> str:
    """The URL Twilio signed: the public base URL, the path (encoded as url_for encodes it) and the raw query."""
    base = services().settings.public_base_url
    path = quote(request.path, safe=PATH_SAFE)  # werkzeug hands the path over decoded
    if not request.query_string:
        return base + path
    # Bytes no URL carries (only a forged request has them) do not match, and never raise.
    return f"{base}{path}?{request.query_string.decode('utf-8', 'replace')}"


def too_large() -> bool:
    """True when the request says its body is larger than the app accepts (MAX_CONTENT_LENGTH); nothing is read."""
    limit = request.max_content_length
    return limit is not None and (request.content_length or 0) > limit


def has_valid_signature() -> bool:
    """True when the request carries a valid X-Twilio-Signature (or no auth token is configured).

    Checked whenever an auth token is configured, whatever the host name: a proxy or a
    test host is no reason to trust a request. A body larger than the app accepts is never
    read (nor trusted), whether its length was declared or only found while reading.
    """
    token = services().settings.twilio_auth_token
    if not token:
        return True
    if too_large():
        return False
    signature = request.headers.get("X-Twilio-Signature", "")
    try:
        params = request.form.to_dict(flat=True) if request.method == "POST" else {}
    except RequestEntityTooLarge:  # no length declared (chunked), and more than the limit came
        return False
    return bool(signature) and RequestValidator(token).validate(expected_url(), params, signature)


def require_twilio_signature() -> None:
    """Abort with 413 for a body larger than the app accepts (unread), then 403 without a valid X-Twilio-Signature."""
    if too_large():
        abort(413)
    if not has_valid_signature():
        abort(403)
