"""Encryption at rest for provider tokens, keyed from the shop's SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from SECRET_KEY; SECRET_KEY_FALLBACKS
still decrypt, so rotating the secret key does not lose consents (re-save to re-encrypt).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.crypto import salted_hmac

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

SALT = "django_invoicepay.vault"


def _fernet(secret: str) -> Fernet:
    from cryptography.fernet import Fernet  # on first use: a shop that never holds funds does not load it

    key = salted_hmac(SALT, "provider-token", secret=secret, algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _keys() -> MultiFernet:
    from cryptography.fernet import MultiFernet

    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(secret) for secret in secrets])


def seal(value: str) -> str:
    return _keys().encrypt(value.encode()).decode("ascii") if value else ""


def unseal(value: str) -> str:
    """The clear value; ValueError when it was sealed with a key this shop no longer has."""
    if not value:
        return ""
    from cryptography.fernet import InvalidToken

    try:
        return _keys().decrypt(value.encode("ascii")).decode()
    except InvalidToken as exc:
        raise ValueError("This token was encrypted with a SECRET_KEY that is no longer configured.") from exc
