"""The exceptions of the ``models`` package, under one base.

- :class:`ModelError`: base class of everything raised here.
- :class:`DataKeyError`: the data key (``PEERLINE_DATA_KEY``) is missing or is not a Fernet key;
  the app and the worker cannot start without one.
- :class:`DecryptError`: stored ciphertext cannot be decrypted with any configured key (a key
  was rotated away, or the value is damaged); callers show or record that the value is
  unreadable instead of failing the whole page or job.

:mod:`models` and :mod:`models.crypto` re-export them, so ``from models.crypto import
DecryptError`` keeps working.
"""
from __future__ import annotations


class ModelError(Exception):
    """Base class for errors raised by the models package."""


class DataKeyError(ModelError):
    """The data key is missing or is not a Fernet key."""


class DecryptError(ModelError):
    """Ciphertext could not be decrypted with any configured key."""
