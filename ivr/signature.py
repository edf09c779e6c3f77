"""Webhook signatures: every webhook is checked against PUBLIC_BASE_URL + path, and its body's size first.

Twilio and SignalWire's compatibility API sign the same way (HMAC-SHA1 of the URL and the sorted
form fields, base64): Twilio with the auth token in ``X-Twilio-Signature``, SignalWire with the
project's signing key in ``X-SignalWire-Signature``. A provider that signs otherwise (Telnyx:
Ed25519 over a timestamp and the raw body) would bring its own :class:`SignatureScheme`.
"""
from __future__ import annotations

import hmac
from typing import Protocol
from urllib.parse import quote, unquote

from flask import abort, request
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import Headers, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from callflows.settings import Settings
from ivr.services import services


class SignatureScheme(Protocol):
    """How one provider's webhook signatures are checked (the seam for a provider that signs otherwise)."""

    def is_valid(self, url: str, params: MultiDict[str, str], headers: Headers) -> bool:
        """True when ``headers`` (looked up without regard to case) carry a valid signature of ``url`` and ``params``."""
        ...


class HmacSha1Scheme:
    """Twilio's scheme (SignalWire's compatibility API uses it too): HMAC-SHA1 of URL + sorted fields."""

    def __init__(self, key: str, headers: tuple[str, ...]) -> None:
        self.validator = RequestValidator(key)
        self.headers = headers  # where the signature may be, in order of preference

    def is_valid(self, url: str, params: MultiDict[str, str], headers: Headers) -> bool:
        """True when the first signature header present is valid for ``url`` and ``params``.

        Computed over ``url`` exactly as given: RequestValidator.validate rebuilds the URL through
        urlparse, which drops an empty ``;`` parameter from the last path segment (``/menu/;``),
        so a correct signature failed. Every value of a repeated form field is signed, as Twilio does.
        """
        signature = next((headers.get(h, "") for h in self.headers if headers.get(h)), "")
        if not signature:
            return False
        # Twilio signs some URLs with the default port written out (":443") and some without.
        return any(hmac.compare_digest(self.validator.compute_signature(candidate, params), signature)
                   for candidate in port_variants(url))


def port_variants(url: str) -> tuple[str, str]:
    """``url`` as given and with its default port added (or removed when it names one), nothing else changed."""
    scheme, _, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    host, colon, port = netloc.rpartition(":")
    if colon and port.isdigit() and not host.endswith("["):
        other = host  # the port removed
    else:
        other = f"{netloc}:{443 if scheme == 'https' else 80}"
    return url, f"{scheme}://{other}{slash}{tail}"


def scheme_for(settings: Settings) -> SignatureScheme | None:
    """The signature check of the configured provider, or None when no key is configured (development)."""
    key = settings.webhook_signing_key
    if not key:
        return None
    header = settings.provider.signature_header
    # SignalWire signs with the same algorithm and key whichever of the two headers carries it.
    accepted = (header,) if header == "X-Twilio-Signature" else (header, "X-Twilio-Signature")
    return HmacSha1Scheme(key, accepted)

# What url_for leaves unescaped in a path argument (werkzeug's converters): the path a webhook
# URL was given to Twilio with, percent-encoded, is the path Twilio signs.
PATH_SAFE = "!$&'()*+,/:;=@"


def requested_path() -> str:
    """The path exactly as the client wrote it in the request line (its percent-encoding, ``;`` and
    ``+`` kept), from the server's RAW_URI / REQUEST_URI; else the routed path encoded as url_for does."""
    routed = request.script_root + request.path
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    # WSGI hands the request line over as latin-1; a URL Twilio requests is ASCII (percent-encoded).
    raw = raw.encode("latin-1", "replace").decode("utf-8", "replace").partition("?")[0]
    if raw.startswith(("http://", "https://")):  # the absolute form of a request line
        raw = "/" + raw.partition("://")[2].partition("/")[2]
    # Used only when it is the path the app routed (no middleware rewrote PATH_INFO).
    if raw.startswith("/") and unquote(raw) == routed:
        return raw[len(quote(request.script_root, safe=PATH_SAFE)):] if request.script_root else raw
    return quote(request.path, safe=PATH_SAFE)  # werkzeug hands the path over decoded


def expected_url() -> str:
    """The URL Twilio signed: the public base URL, the path as requested and the raw query."""
    base = services().settings.public_base_url
    path = requested_path()
    if not request.query_string:
        return base + path
    # Bytes no URL carries (only a forged request has them) do not match, and never raise.
    return f"{base}{path}?{request.query_string.decode('utf-8', 'replace')}"


def too_large() -> bool:
    """True when the request says its body is larger than the app accepts (MAX_CONTENT_LENGTH); nothing is read."""
    limit = request.max_content_length
    return limit is not None and (request.content_length or 0) > limit


def has_valid_signature() -> bool:
    """True when the request carries a valid provider signature (or no signing key is configured).

    Checked whenever a key is configured, whatever the host name: a proxy or a
    test host is no reason to trust a request. A body larger than the app accepts is never
    read (nor trusted), whether its length was declared or only found while reading.
    """
    scheme = scheme_for(services().settings)
    if scheme is None:
        return True
    if too_large():
        return False
    try:
        params = request.form if request.method == "POST" else MultiDict()
    except RequestEntityTooLarge:  # no length declared (chunked), and more than the limit came
        return False
    return scheme.is_valid(expected_url(), params, request.headers)


def require_twilio_signature() -> None:
    """Abort with 413 for a body larger than the app accepts (unread), then 403 without a valid signature."""
    if too_large():
        abort(413)
    if not has_valid_signature():
        abort(403)
