"""Encryption at rest (Fernet) and keyed lookup hashes (HMAC) for phone numbers, audio, text.

The server must be able to read what it needs to route calls (a peer's phone), so data is
encrypted with the server's key, not with anything the server lacks. Several comma-separated
keys may be given: the first encrypts, all decrypt (key rotation through ``MultiFernet``).
"""
from __future__ import annotations

import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from models.errors import DataKeyError, DecryptError  # raised here; also importable from here


_NON_DIGITS = re.compile(r"[^0-9+]")


def normalize_number(number: str) -> str:
    """Return a phone number with spaces and punctuation removed, for stable hashing."""
    return _NON_DIGITS.sub("", number.strip())


def generate_key() -> str:
    """Return a new random data key (urlsafe base64, as Fernet expects)."""
    return Fernet.generate_key().decode("ascii")


class Vault:
    """Encrypts and decrypts values, and makes keyed hashes for lookups."""

    def __init__(self, data_key: str, lookup_key: str = "") -> None:
        keys = [k.strip() for k in (data_key or "").split(",") if k.strip()]
        if not keys:
            raise DataKeyError("PEERLINE_DATA_KEY is empty; set it to a Fernet key")
        try:
            self._primary = Fernet(keys[0].encode("ascii"))
            self._fernet = MultiFernet([self._primary, *(Fernet(k.encode("ascii")) for k in keys[1:])])
        except (ValueError, UnicodeEncodeError) as exc:
            raise DataKeyError(
                "PEERLINE_DATA_KEY must be 32 url-safe base64-encoded bytes "
                "(make one with: peerline gen-key)"
            ) from exc
        # A separate key for hashing, derived from the first data key, so that a leaked
        # hash table cannot be brute-forced over the small space of phone numbers.
        # PEERLINE_LOOKUP_KEY pins it to an earlier key while the data keys rotate, so
        # callers and peers are still found by their number (see `peerline rotate-keys`).
        source = (lookup_key or keys[0]).strip()
        self._hash_key = hashlib.sha256(b"peerline-lookup:" + source.encode("ascii")).digest()

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt bytes."""
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        """Decrypt bytes made by :meth:`encrypt`."""
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise DecryptError("stored data cannot be decrypted with the configured key") from exc

    def is_current(self, token: bytes) -> bool:
        """True when ``token`` is encrypted with the first (current) key, so rotating it would change nothing."""
        try:
            self._primary.decrypt(token)
        except InvalidToken:
            return False
        return True

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a token made with any configured key under the first key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise DecryptError("stored data cannot be decrypted with any configured key") from exc

    def encrypt_text(self, text: str) -> bytes:
        """Encrypt a string."""
        return self.encrypt(text.encode("utf-8"))

    def decrypt_text(self, token: bytes) -> str:
        """Decrypt a string made by :meth:`encrypt_text`."""
        return self.decrypt(token).decode("utf-8")

    def lookup_hash(self, value: str) -> str:
        """Keyed hash of a phone number (normalized) for lookups without storing it in clear."""
        return hmac.new(self._hash_key, normalize_number(value).encode(), hashlib.sha256).hexdigest()

    def pseudonym(self, kind: str, ident: int | str) -> str:
        """Stable research pseudonym for a row, not reversible without the key."""
        digest = hmac.new(self._hash_key, f"{kind}:{ident}".encode(), hashlib.sha256).hexdigest()
        return f"{kind[0].upper()}-{digest[:10]}"
